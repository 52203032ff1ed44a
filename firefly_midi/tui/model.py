"""The client-side view model: telemetry frames in, bounded history out.

``FrameModel.ingest(frame)`` takes one telemetry frame (a dict as in the control protocol) and keeps
what the screen draws: the latest phases, the last ``history_s`` seconds of r(t), tempo(t) and the
counters, and a scrolling flash raster of the last ``raster_s`` seconds.  Everything is pure numpy
with fixed-size buffers: no sockets, no Textual, no per-firefly Python objects, so it is cheap enough
to run for every frame even when the screen only draws the latest, and tests drive it directly.

The views it hands out (``PhaseView``, ``RasterView``, ``SeriesView``, ``StatusView``) are immutable
snapshots; the array ones compare by identity (``eq=False``) so a Textual ``reactive`` holding them
repaints whenever a new one is assigned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PHASE_SCALE = 65536.0


# The native JACK backend's counters that ctl status and the TUI show (ports.jack_native): events played
# late, the server's xruns, events lost (the TX ring full: sent too many ahead; the RX ring full: read
# too slowly), sysex dropped (by design: the output sends none, the input passes none on), and the
# notes the reflex played in their input's own cycle (firefly_midi/reflex.py)
NATIVE_COUNTERS = ("late", "xruns", "tx_full", "rx_overflow", "sysex_dropped", "reflex")
NATIVE_LOSSES = ("late", "tx_full", "rx_overflow")  # the ones the musician hears


@dataclass(frozen=True, eq=False)
class PhaseView:
    """The phases of one frame: ``phase[i]`` (0..1, NaN if silenced) belongs to firefly ``ids[i]``."""

    phase: np.ndarray
    ids: np.ndarray
    n: int
    stride: int
    grid: tuple[int, int] | None
    order_parameter: float
    mean_phase: float  # circular mean of the shown phases, 0..1


@dataclass(frozen=True, eq=False)
class RasterView:
    """Flashes binned as ``image[id_bin, time_bin]`` (oldest column first), ending at ``end_s``."""

    image: np.ndarray
    n: int
    window_s: float
    end_s: float


@dataclass(frozen=True, eq=False)
class SeriesView:
    """One quantity over time: samples ``y`` at swarm times ``t`` inside ``[end_s - window_s, end_s]``."""

    t: np.ndarray
    y: np.ndarray
    window_s: float
    end_s: float
    reference: float | None = None  # a dashed line (the nominal tempo)
    lo: float | None = None  # fixed range, or None to fit the data
    hi: float | None = None

    @property
    def last(self) -> float | None:
        return float(self.y[-1]) if self.y.size else None


@dataclass(frozen=True)
class StatusView:
    """The counters and states of the latest frame, plus rates the model derives from the history."""

    preset: str = ""
    paused: bool = False
    time_s: float = 0.0
    n: int = 0
    stride: int = 1
    shown: int = 0
    grid: tuple[int, int] | None = None
    order_parameter: float = 0.0
    tempo_bpm: float = 0.0
    nominal_tempo_bpm: float = 0.0
    drift_bpm: float = 0.0
    follow: dict[str, Any] | None = None  # following a drummer: his tempo, the band's, the phase error
    notes_out: int = 0
    notes_per_s: float = 0.0
    flashes_in: int = 0
    dropped_in: int = 0
    dropped_frames: int = 0
    flashes_lost: int = 0
    skipped_ticks: int = 0
    lateness_us: dict[str, float] = field(default_factory=dict)  # since the daemon started
    lateness_recent_us: dict[str, float] = field(default_factory=dict)  # the last seconds (window_s)
    ports: dict[str, Any] = field(default_factory=dict)
    frames: int = 0
    engine: str = "compiled"  # "numpy" while the daemon's kernels compile (handover.py)
    kernels: dict[str, Any] = field(default_factory=dict)  # their state and seconds so far


class _Series:
    """Append-only columns with amortised O(1) appends and a contiguous view of the last ``capacity`` rows."""

    def __init__(self, columns: int, capacity: int):
        self.capacity = capacity
        self.data = np.zeros((2 * capacity, columns), dtype=np.float64)
        self.end = 0

    def clear(self) -> None:
        self.end = 0

    def append(self, row: tuple[float, ...]) -> None:
        if self.end == self.data.shape[0]:
            self.data[: self.capacity] = self.data[self.capacity :]
            self.end = self.capacity
        self.data[self.end] = row
        self.end += 1

    def view(self) -> np.ndarray:
        return self.data[max(0, self.end - self.capacity) : self.end]


# Columns of the history.
T, R, TEMPO, NOMINAL, NOTES = range(5)


class FrameModel:
    """History of telemetry frames, bounded in memory and in work per frame."""

    def __init__(
        self,
        history_s: float = 30.0,
        raster_s: float = 10.0,
        raster_ids: int = 256,
        raster_bins: int = 512,
        capacity: int = 4096,
    ):
        self.history_s = history_s
        self.raster_s = raster_s
        self.raster_ids = raster_ids
        self.raster_bins = raster_bins
        self.bin_s = raster_s / raster_bins
        self._history = _Series(5, capacity)
        self._raster = np.zeros((raster_ids, raster_bins), dtype=bool)
        self._raster_n = 0
        self._end_col: int | None = None
        self._time = -math.inf
        self._phase: PhaseView | None = None
        self._status = StatusView()
        self._lost = 0
        self.frames = 0

    # ------------------------------------------------------------------------------------------------- input
    def clear(self) -> None:
        """Forget the history (the swarm was reset or its time went backwards)."""
        self._history.clear()
        self._raster[:] = False
        self._end_col = None
        self._time = -math.inf

    def ingest(self, frame: dict[str, Any]) -> None:
        """Take one telemetry frame (a dict as the control protocol sends it)."""
        t = float(frame.get("time_s", 0.0))
        n = int(frame.get("n", 0))
        if t < self._time - 1e-9:
            self.clear()
        self._time = t
        self.frames += 1
        self._lost += int(frame.get("flashes_lost", 0) or 0)
        r = float(frame.get("order_parameter", 0.0) or 0.0)
        tempo = float(frame.get("tempo_bpm", 0.0) or 0.0)
        nominal = float(frame.get("nominal_tempo_bpm", 0.0) or 0.0)
        notes = int(frame.get("notes_out", 0) or 0)
        self._history.append((t, r, tempo, nominal, notes))
        self._ingest_phase(frame, n, r)
        self._ingest_flashes(frame.get("flashes") or (), n, t)
        self._status = self._make_status(frame, n, r, tempo, nominal, notes)

    def _ingest_phase(self, frame: dict[str, Any], n: int, r: float) -> None:
        raw = np.asarray(frame.get("phase") or (), dtype=np.int64)
        phase = raw.astype(np.float32) / np.float32(PHASE_SCALE)
        phase[raw < 0] = np.nan
        stride = max(1, int(frame.get("stride", 1) or 1))
        grid = frame.get("grid")
        grid = (int(grid[0]), int(grid[1])) if grid else None
        live = phase[~np.isnan(phase)]
        if live.size:
            angle = 2.0 * np.pi * live.astype(np.float64)
            mean = math.atan2(float(np.sin(angle).mean()), float(np.cos(angle).mean())) / (2.0 * math.pi) % 1.0
        else:
            mean = 0.0
        ids = np.arange(phase.size, dtype=np.int64) * stride
        self._phase = PhaseView(phase, ids, n, stride, grid, r, mean)

    def _ingest_flashes(self, flashes: Any, n: int, t: float) -> None:
        bins, width = self.raster_bins, self.bin_s
        if n != self._raster_n:
            self._raster[:] = False
            self._raster_n = n
        end = math.floor(t / width)
        pairs = np.asarray(flashes, dtype=np.float64).reshape(-1, 2)
        if pairs.size:
            end = max(end, math.floor(float(pairs[:, 1].max()) / width))
        if self._end_col is None or end - self._end_col >= bins:
            self._raster[:] = False
        elif end > self._end_col:
            cols = np.arange(self._end_col + 1, end + 1) % bins
            self._raster[:, cols] = False
        else:
            end = self._end_col
        self._end_col = end
        if not pairs.size or n <= 0:
            return
        cols = np.floor(pairs[:, 1] / width).astype(np.int64)
        keep = (cols > end - bins) & (cols <= end)
        ids = pairs[keep, 0].astype(np.int64)
        rows = np.clip(ids * min(n, self.raster_ids) // n, 0, self.raster_ids - 1)
        self._raster[rows, cols[keep] % bins] = True

    def _make_status(self, frame: dict[str, Any], n: int, r: float, tempo: float, nominal: float, notes: int) -> StatusView:
        phase = self._phase
        return StatusView(
            preset=str(frame.get("preset", "")),
            paused=bool(frame.get("paused", False)),
            time_s=self._time,
            n=n,
            stride=phase.stride if phase else 1,
            shown=int(phase.phase.size) if phase else 0,
            grid=phase.grid if phase else None,
            order_parameter=r,
            tempo_bpm=tempo,
            nominal_tempo_bpm=nominal,
            drift_bpm=float(frame.get("drift_bpm", tempo - nominal) or 0.0),
            follow=dict(frame["follow"]) if frame.get("follow") else None,
            notes_out=notes,
            notes_per_s=self._rate(NOTES),
            flashes_in=int(frame.get("flashes_in", 0) or 0),
            dropped_in=int(frame.get("dropped_in", 0) or 0),
            dropped_frames=int(frame.get("dropped_frames", 0) or 0),
            flashes_lost=self._lost,
            skipped_ticks=int(frame.get("skipped_ticks", 0) or 0),
            lateness_us=dict(frame.get("lateness_us") or {}),
            lateness_recent_us=dict(frame.get("lateness_recent_us") or {}),
            ports=dict(frame.get("ports") or {}),
            frames=self.frames,
            engine=str(frame.get("engine", "compiled")),
            kernels=dict(frame.get("kernels") or {}),
        )

    def _rate(self, column: int, over_s: float = 2.0) -> float:
        """Increase of a counter per swarm second over the last ``over_s`` seconds."""
        rows = self._history.view()
        if rows.shape[0] < 2:
            return 0.0
        t = rows[:, T]
        first = int(np.searchsorted(t, t[-1] - over_s))
        first = min(first, rows.shape[0] - 2)
        dt = t[-1] - t[first]
        return float(rows[-1, column] - rows[first, column]) / dt if dt > 0 else 0.0

    # ------------------------------------------------------------------------------------------------ output
    @property
    def time_s(self) -> float:
        return self._time

    def phases(self) -> PhaseView | None:
        return self._phase

    def status(self) -> StatusView:
        return self._status

    def raster(self) -> RasterView:
        end = self._end_col if self._end_col is not None else 0
        shift = self.raster_bins - 1 - end % self.raster_bins
        rows = min(max(self._raster_n, 1), self.raster_ids)
        image = np.roll(self._raster[:rows], shift, axis=1)
        return RasterView(image, self._raster_n, self.raster_s, (end + 1) * self.bin_s)

    def _series(self, column: int, reference: float | None = None, lo: float | None = None, hi: float | None = None) -> SeriesView:
        rows = self._history.view()
        end = self._time if rows.shape[0] else 0.0
        first = int(np.searchsorted(rows[:, T], end - self.history_s)) if rows.shape[0] else 0
        return SeriesView(rows[first:, T].copy(), rows[first:, column].copy(), self.history_s, end, reference, lo, hi)

    def order_parameter(self) -> SeriesView:
        return self._series(R, lo=0.0, hi=1.0)

    def tempo(self) -> SeriesView:
        rows = self._history.view()
        nominal = float(rows[-1, NOMINAL]) if rows.shape[0] else None
        return self._series(TEMPO, reference=nominal)
