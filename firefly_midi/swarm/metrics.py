"""What a run of the swarm measured: synchrony, tempo, spread, emission window.

Plain numpy over recorded series; the daemon, the TUI and the tuner reuse these functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

SYNC_THRESHOLD = 0.95


def order_parameter(phase: np.ndarray) -> float:
    """r = |mean e^{2πiφ}| over the live (non-NaN) fireflies."""
    live = phase[~np.isnan(phase)]
    if live.size == 0:
        return 0.0
    return float(np.abs(np.exp(2j * np.pi * live).mean()))


def gap_cv(phase: np.ndarray) -> float | None:
    """Coefficient of variation of the gaps between neighbouring phases on the circle (0 = even)."""
    live = np.sort(phase[~np.isnan(phase)])
    if live.size < 2:
        return None
    gaps = np.diff(np.append(live, live[0] + 1.0))
    return float(gaps.std() / gaps.mean())


def sync_time(times: np.ndarray, r: np.ndarray, threshold: float = SYNC_THRESHOLD) -> float | None:
    """Earliest sample time after which r stays at or above ``threshold`` to the end (None: never)."""
    if r.size == 0 or r[-1] < threshold:
        return None
    below = np.flatnonzero(r < threshold)
    return float(times[below[-1] + 1]) if below.size else float(times[0])


def recovery_time(times: np.ndarray, r: np.ndarray, t_damage: float, r_before: float, tolerance: float = 0.02) -> float | None:
    """Seconds from ``t_damage`` until r is back to ≥ r_before − tolerance and stays so to the series' end.

    Only samples after ``t_damage`` count; 0.0 when r never fell below, None when it is below at the
    end (or there is no sample after the damage).  Pass the series up to the next damage, not beyond.
    """
    after = times > t_damage
    r_after = r[after]
    if r_after.size == 0 or r_after[-1] < r_before - tolerance:
        return None
    below = np.flatnonzero(r_after < r_before - tolerance)
    return float(times[after][below[-1] + 1] - t_damage) if below.size else 0.0


def decimate(values: np.ndarray, most: int) -> np.ndarray:
    """At most ``most`` values, evenly spaced, the first and the last always kept (a plot needs both ends)."""
    if values.size <= most:
        return values
    return values[np.linspace(0, values.size - 1, most).round().astype(np.int64)]


def emission_window(counts: np.ndarray, period_ticks: int, share: float = 0.95) -> float | None:
    """Shortest share of the period that holds ``share`` of the flashes, folded over the counts.

    ``counts`` are flashes per tick; they are folded modulo the period, then the shortest circular
    window holding ``share`` of them is found with two pointers.  1/period_ticks is the resolution.
    """
    if period_ticks < 1 or counts.size < period_ticks:
        return None
    usable = counts[-(counts.size // period_ticks) * period_ticks :]
    folded = usable.reshape(-1, period_ticks).sum(axis=0)
    total = folded.sum()
    if total == 0:
        return None
    need = share * total
    doubled = np.concatenate([folded, folded])
    best, acc, left = period_ticks, 0, 0
    for right in range(doubled.size):
        acc += doubled[right]
        while acc - doubled[left] >= need:
            acc -= doubled[left]
            left += 1
        if acc >= need:
            best = min(best, right - left + 1)
    return best / period_ticks


def mean_frequency(flashes: float, phase_sum_start: float, phase_sum_end: float, live: float, seconds: float) -> float | None:
    """Mean cycles per second of the swarm between two samples, from flashes plus phase progress.

    Counting whole cycles (flashes) plus the change in Σφ measures the unwrapped phase exactly,
    kicks included, without the ±1 cycle error of counting flashes alone.
    """
    if live <= 0 or seconds <= 0:
        return None
    return (flashes + phase_sum_end - phase_sum_start) / (live * seconds)


@dataclass
class Recorder:
    """Series a run fills in: samples every ``sample_every`` ticks, per-tick flash counts, a raster."""

    ticks: int
    sample_every: int = 10  # 0: no samples (a null recorder)
    raster_stride: int = 0  # record flashes of ids divisible by this (0 = no raster)
    raster_capacity: int = 0
    used: int = 0
    flashes: int = 0
    samples: np.ndarray = field(init=False)
    counts: np.ndarray = field(init=False)
    raster_t: np.ndarray = field(init=False)
    raster_id: np.ndarray = field(init=False)
    raster_n: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.samples = np.zeros((self.ticks // self.sample_every if self.sample_every else 0, 4))
        self.counts = np.zeros(self.ticks, dtype=np.int32)
        self.raster_t = np.zeros(self.raster_capacity)
        self.raster_id = np.zeros(self.raster_capacity, dtype=np.int64)
        self.raster_n = np.zeros(1, dtype=np.int64)

    @classmethod
    def null(cls, ticks: int) -> Recorder:
        """Flash counts only: no samples (a mean-field pass over the swarm costs more than a tick)."""
        return cls(ticks=ticks, sample_every=0)

    def rows(self) -> int:
        return self.used // self.sample_every if self.sample_every else 0

    @classmethod
    def for_run(cls, ticks: int, n: int, tick_s: float, raster: bool = False, raster_rows: int = 400) -> Recorder:
        """A recorder sampling r every ~10 ms; with a raster of at most ``raster_rows`` fireflies."""
        every = max(1, round(0.01 / tick_s))
        stride = max(1, math.ceil(n / raster_rows)) if raster else 0
        capacity = int(min(5_000_000, (n / max(stride, 1) + 1) * ticks * tick_s * 4)) if raster else 0
        return cls(ticks=ticks, sample_every=every, raster_stride=stride, raster_capacity=capacity)

    def room(self) -> int:
        return self.ticks - self.used

    def reserve(self, chunk: int) -> tuple:
        """The kernel's view of the next ``chunk`` ticks: (sample_every, sample_phase, samples, counts, raster...)."""
        return (
            self.sample_every,
            self.used % self.sample_every if self.sample_every else 0,
            self.samples[self.rows() :],
            self.counts[self.used : self.used + chunk],
            self.raster_stride,
            self.raster_t,
            self.raster_id,
            self.raster_n,
        )

    def commit(self, chunk: int, flashes: int) -> None:
        """Account for ``chunk`` ticks the kernel recorded, holding ``flashes`` flashes."""
        first_row = self.rows()
        self.used += chunk
        self.samples[first_row : self.rows(), 3] += self.flashes
        self.flashes += flashes

    # ------------------------------------------------------------------ series and summary
    def sample_times(self, tick_s: float) -> np.ndarray:
        rows = self.rows()
        return (np.arange(1, rows + 1) * self.sample_every) * tick_s

    def raster(self) -> tuple[np.ndarray, np.ndarray]:
        k = int(self.raster_n[0])
        return self.raster_t[:k], self.raster_id[:k]

    def summary(self, tick_s: float, phase: np.ndarray) -> dict:
        """The engine's metrics over this recording (see docs/models.md for their definitions)."""
        rows = self.rows()
        t = self.sample_times(tick_s)
        r = self.samples[:rows, 0]
        last_s = min(1.0, t[-1] if rows else 0.0)
        tail = t >= (t[-1] - last_s) if rows else np.zeros(0, bool)
        freq = self._mean_frequency(tick_s)
        period_ticks = round(1.0 / (freq * tick_s)) if freq else 0
        window_ticks = min(self.used, period_ticks)
        return {
            "sync_time_s": sync_time(t, r),
            "order_parameter": float(r[tail].mean()) if rows else order_parameter(phase),
            "mean_freq_hz": freq,
            "tempo_bpm": 60.0 * freq if freq else None,
            "gap_cv": gap_cv(phase),
            "emission_window": emission_window(self.counts[self.used - window_ticks : self.used], period_ticks) if period_ticks else None,
            "flashes": int(self.flashes),
        }

    def _mean_frequency(self, tick_s: float) -> float | None:
        """Mean frequency over the second half of the run (at most its last 10 s)."""
        rows = self.rows()
        if rows < 2:
            return None
        span = max(1, min(rows // 2, round(10.0 / (self.sample_every * tick_s))))
        a, b = self.samples[rows - 1 - span], self.samples[rows - 1]
        freq = mean_frequency(b[3] - a[3], a[1], b[1], b[2], span * self.sample_every * tick_s)
        return None if freq is None else float(freq)
