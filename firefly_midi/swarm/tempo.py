"""The swarm's live tempo, measured from flash counts alone, allocation-free, one update per tick.

Every firefly flashes once per cycle, so n_live flashes make one cycle of the swarm, whatever the
model and whether it is synchronised or spread out.  Counting the flashes in a fixed window and
dividing by n_live · window (the plain rule) is exact for a spread swarm but, for a synchronised one,
the window holds a whole number of bursts: at 1 Hz over 4 s that is 4 or 5 bursts, a 25% wobble.

So the window is trimmed to whole cycles instead: with C(t) the cumulative flash count, take the
newest flash (number C_now) and the flash m·n_live earlier, the oldest one still in the window; the
time between them is exactly m cycles.  Both ends sit at the same place within a burst, so the burst
width cancels, and a spread swarm gives the same answer as the plain rule.  Times inside a tick are
interpolated from the counts (error well under a tick over m cycles of seconds).

Until the history holds one whole cycle the tempo is the last one measured, or the nominal
``swarm.freq_hz`` before any: a swarm's first burst alone says nothing about its period.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def _time_of_count(cum, oldest, filled, count):
    """Position in ticks (from the oldest entry) at which the cumulative count reached ``count``.

    ``cum`` is a ring of cumulative counts at the end of each tick; entry 0 (the oldest) must be
    below ``count`` and the newest at or above it.  Interpolated linearly inside the tick.
    """
    size = cum.size
    lo, hi = 1, filled - 1  # the smallest chronological index a with cum[a] >= count
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[(oldest + mid) % size] >= count:
            hi = mid
        else:
            lo = mid + 1
    before = cum[(oldest + lo - 1) % size]
    after = cum[(oldest + lo) % size]
    return lo - 1 + (count - before) / (after - before)


@njit(nogil=True, cache=True)
def whole_cycles_hz(cum, newest, filled, n_live, dt):
    """Cycles per second over the whole cycles the ring holds, or 0.0 when it holds none."""
    if n_live <= 0 or filled < 2:
        return 0.0
    size = cum.size
    oldest = (newest - filled + 1) % size
    c_now = cum[newest]
    m = (c_now - cum[oldest] - 1) // n_live  # the earlier flash must lie inside the ring
    if m < 1:
        return 0.0
    start = _time_of_count(cum, oldest, filled, c_now - m * n_live)
    end = _time_of_count(cum, oldest, filled, c_now)
    if end <= start:
        return 0.0
    return m / ((end - start) * dt)


class LiveTempo:
    """Mean flash frequency of the live fireflies over the last ``window_s`` seconds."""

    def __init__(self, n_live: int, dt: float, window_s: float = 4.0, nominal_hz: float = 1.0):
        self.n_live = int(n_live)
        self.dt = float(dt)
        self.nominal_hz = float(nominal_hz)
        self._cum = np.zeros(max(2, round(window_s / dt)), dtype=np.int64)
        self._newest = 0
        self._filled = 1  # entry 0 holds the count before the first tick
        self._total = 0
        self._last_hz = 0.0
        self._fresh = False  # hz is recomputed once per tick at most, when asked
        self.cycles_hz = whole_cycles_hz  # or its interpreted twin, while the kernels compile (Mapper.use_engine)

    def update(self, flash_count: int) -> None:
        """Record one tick's flash count."""
        self._total += flash_count
        self._newest = (self._newest + 1) % self._cum.size
        self._cum[self._newest] = self._total
        if self._filled < self._cum.size:
            self._filled += 1
        self._fresh = False

    @property
    def hz(self) -> float:
        """The live tempo in cycles (beats) per second."""
        if not self._fresh:
            measured = self.cycles_hz(self._cum, self._newest, self._filled, self.n_live, self.dt)
            if measured > 0.0:
                self._last_hz = measured
            self._fresh = True
        return self._last_hz if self._last_hz > 0.0 else self.nominal_hz

    @property
    def bpm(self) -> float:
        return self.hz * 60.0

    def reset(self) -> None:
        self._cum[:] = 0
        self._newest, self._filled, self._total, self._last_hz, self._fresh = 0, 1, 0, 0.0, False
