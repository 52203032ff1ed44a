"""What the tick publishes for watchers (TUI, ctl, OSC): recent flashes and phase snapshots.

The tick thread writes; readers on other threads copy.  Nothing here makes the tick wait: the flash
ring is a fixed pair of arrays the tick overwrites in place, and a reader that falls behind by more
than the ring holds is told how many flashes it lost instead of holding the writer back.  A phase
snapshot is read while the tick may be writing it; a torn read mixes two adjacent ticks, which a
picture drawn at 30 fps cannot show.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import numpy as np

from firefly_midi import params as P
from firefly_midi.swarm import topology

RING = 1 << 16
MAX_FLASHES_PER_FRAME = 4096


class FlashRing:
    """The last RING flashes as (id, swarm time), written by one thread, read by any."""

    def __init__(self, capacity: int = RING):
        self.ids = np.zeros(capacity, dtype=np.int64)
        self.times = np.zeros(capacity, dtype=np.float64)
        self.capacity = capacity
        self.written = 0  # flashes ever pushed; slot = written % capacity

    def push(self, ids: np.ndarray, fractions: np.ndarray, tick: int, dt: float) -> None:
        """Add one tick's flashes (ids and sub-tick fractions of tick ``tick``)."""
        n = ids.size
        if n == 0:
            return
        if n > self.capacity:  # keep the newest; the older ones count as written (readers see them lost)
            self.written += n - self.capacity
            ids, fractions, n = ids[-self.capacity :], fractions[-self.capacity :], self.capacity
        start = self.written % self.capacity
        first = min(n, self.capacity - start)
        self.ids[start : start + first] = ids[:first]
        self.times[start : start + first] = (tick + fractions[:first]) * dt
        if first < n:
            self.ids[: n - first] = ids[first:]
            self.times[: n - first] = (tick + fractions[first:]) * dt
        self.written += n

    def since(self, cursor: int, limit: int = MAX_FLASHES_PER_FRAME) -> tuple[list[list[float]], int, int]:
        """Flashes after ``cursor`` (-1: none yet, start now) → ([[id, t], ...], new cursor, lost)."""
        end = self.written
        if cursor < 0:
            return [], end, 0
        oldest = max(cursor, end - self.capacity)
        lost = oldest - cursor
        if end - oldest > limit:
            lost += end - oldest - limit
            oldest = end - limit
        slots = np.arange(oldest, end) % self.capacity
        ids, times = self.ids[slots], self.times[slots]
        overwritten = self.written - self.capacity - oldest  # the writer lapped us while we copied
        if overwritten > 0:
            ids, times, lost = ids[overwritten:], times[overwritten:], lost + overwritten
        return [[int(i), round(float(t), 4)] for i, t in zip(ids, times, strict=True)], end, lost


def phase_snapshot(phase: np.ndarray, points: int, grid: bool) -> dict[str, object]:
    """At most ``points`` phases as ints 0..65535 (-1 for a silenced firefly), and how they were picked.

    A grid is thinned in both directions so the picture keeps its lattice: ``grid`` gives the thinned
    (rows, cols), read row-major.  Otherwise every ``stride``-th firefly is shown.
    """
    n = phase.size
    if grid:
        rows, cols = topology.grid_shape(n)
        stride = max(1, math.ceil(math.sqrt(n / max(points, 1))))
        padded = np.full(rows * cols, np.nan)
        padded[:n] = phase
        picked = padded.reshape(rows, cols)[::stride, ::stride]
        shape: list[int] | None = list(picked.shape)
        picked = picked.ravel()
    else:
        stride = max(1, math.ceil(n / max(points, 1)))
        picked, shape = phase[::stride], None
    quantised = np.where(np.isnan(picked), -1, np.floor(np.nan_to_num(picked) * 65536.0).clip(0, 65535)).astype(np.int64)
    return {"stride": stride, "grid": shape, "phase": quantised.tolist()}


def following(player: Any) -> dict[str, Any] | None:
    """The drummer's tempo, the band's (the follower's grid) and the last on-grid hit's offset, or
    None when not following."""
    follower = player.follower
    if not follower.enabled:
        return None
    return {
        "locked": follower.locked,
        "band_bpm": follower.bpm if follower.ever_locked else None,
        "drummer_bpm": follower.drummer_bpm or None,
        "phase_error_ms": 1000.0 * follower.last_error_s,
        "hits": follower.heard,
        "relocks": follower.relocks,
        "lead_ms": 1000.0 * follower.lead_s,  # follow.lead_ms plus the daemon's own latency, live
    }


def status(daemon: Any) -> dict[str, Any]:
    """A daemon's snapshot for ``ctl status``, logs and tests (read from any thread)."""
    player, clock = daemon.player, daemon.clock.stats()
    swarm, mapper, values, counts = player.swarm, player.mapper, player.values, player.counts
    return {
        "preset": daemon.preset,
        "params": P.jsonable(values),
        "n": swarm.n,
        "model": values["swarm.model"],
        "time_s": swarm.time_s,
        "order_parameter": player.r,
        "tempo_bpm": 60.0 * mapper.tempo.hz,
        "nominal_tempo_bpm": 60.0 * values["swarm.freq_hz"],
        "follow": following(player),
        "notes_out": mapper.notes_out,
        "dropped_notes": mapper.dropped_notes,
        "flashes_in": counts.flashes,
        "ignored_in": counts.ignored,
        "other_in": counts.other,
        "dropped_in": counts.dropped,
        "dropped_external": swarm.dropped_external,
        "errors": daemon.errors,
        "longest_commands_us": daemon.ticks.longest_commands_s * 1e6,
        "caught_up_ticks": player.caught_up_ticks,
        "lost_ticks": player.lost_ticks,
        "behind_ticks": player.behind_ticks,
        "paused": player.paused,
        **daemon.engines.status(),
        **clock,
        "ports": ports_status(daemon),
    }


def ports_status(daemon: Any) -> dict[str, Any]:
    """The ports' status; on the native JACK client with the notes its reflex played (firefly_midi/reflex.py)."""
    ports = daemon.ports.status()
    native = ports.get("native") if isinstance(ports, dict) else None
    if isinstance(native, dict):
        native["reflex"] = daemon.ticks.reflex.played
    return ports


def frame(daemon: Any, cursor: int, points: int) -> tuple[dict[str, Any], int]:
    """A picture of a daemon's swarm now, and the flashes since ``cursor`` (-1: from now on)."""
    flashes, cursor, lost = daemon.ticks.flash_ring.since(cursor)
    player, clock = daemon.player, daemon.clock.stats()
    swarm, values = player.swarm, player.values
    tempo_hz, nominal_hz = player.mapper.tempo.hz, values["swarm.freq_hz"]
    picture = {
        "time_s": swarm.time_s,
        "preset": daemon.preset,
        "paused": player.paused,
        "n": swarm.n,
        **phase_snapshot(swarm.state.phase, points, values["swarm.topology"] == "grid"),
        "flashes": flashes,
        "flashes_lost": lost,
        "order_parameter": player.r,
        "tempo_bpm": 60.0 * tempo_hz,
        "nominal_tempo_bpm": 60.0 * nominal_hz,
        "drift_bpm": 60.0 * (tempo_hz - nominal_hz),
        "follow": following(player),
        "notes_out": player.mapper.notes_out,
        "flashes_in": player.counts.flashes,
        "dropped_in": player.counts.dropped,
        "lateness_us": clock["lateness_us"],
        "lateness_recent_us": clock["lateness_recent_us"],
        "skipped_ticks": clock["skipped_ticks"],
        "ports": ports_status(daemon),
        **daemon.engines.status(),
    }
    return picture, cursor


def log_status(snapshot: dict[str, Any], lateness_window_us: dict[str, float]) -> None:
    """One status line in the log, as JSON, without the parameters."""
    line = {k: v for k, v in snapshot.items() if k != "params"}
    line["lateness_window_us"] = lateness_window_us
    logging.getLogger("firefly_midi.daemon").info("status %s", json.dumps(line))
