"""The fixed-tick loop: absolute deadlines, sleep-then-spin, and the loop's own lateness statistics.

Why this shape (measured on a 2-core Linux machine): ``time.sleep(tick)`` loops drift by the sleep's
overshoot every tick (about 8 % at 1 ms), and asyncio's timers are 0.5-1 ms late.  Deadlines here are
absolute (``start + k·tick`` from the monotonic clock), so lateness never accumulates; the loop
sleeps until a little before the deadline (with the kernel's timer slack lowered to 1 ns where
``prctl`` exists) and spins the rest, which gave p99 lateness under 2 µs.  A loop that falls behind
by a tick or more skips the missed ticks and counts them: it never bursts to catch up, because a
burst of ticks would play a burst of notes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
import time
from collections.abc import Callable

import numpy as np

SPIN_S = 100e-6  # sleep until this long before the deadline, then spin
_HIST_US = 20_000  # lateness histogram: 1 µs bins up to 20 ms, the rest in the last bin
_PR_SET_TIMERSLACK = 29


def lower_timer_slack() -> bool:
    """Ask Linux to wake this thread within 1 ns of its timers (default slack is 50 µs)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return libc.prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _percentiles_us(hist: np.ndarray, qs: tuple[float, ...], count: int | None = None) -> tuple[list[float], int]:
    """The ``qs``-th percentiles (0..100, to the bin) of a 1 µs histogram, and its count (its sum,
    unless given): one cumulative sum for them all, since each costs as much as the rest together."""
    cumulative = np.cumsum(hist)
    count = int(cumulative[-1]) if count is None else count
    if not count:
        return [0.0] * len(qs), 0
    ranks = [max(int(np.ceil(q / 100.0 * count)), 1) for q in qs]
    return [float(x) for x in np.searchsorted(cumulative, ranks)], count


class Lateness:
    """Lateness of each tick against its deadline, as a 1 µs histogram (recording allocates nothing).

    Besides the whole run's figures, ``recent()`` gives those of the last RECENT_S seconds or so:
    after an hour a since-start p99 hardly moves, and a musician wants to see what the tick does
    now.  Another thread than the tick's calls ``roll()`` now and then to move that window on.
    """

    RECENT_S = 5.0  # the recent window spans between half of this and all of it

    def __init__(self) -> None:
        self.hist = np.zeros(_HIST_US + 1, dtype=np.int64)
        self.count = 0
        self.max_s = 0.0
        self._marks = np.zeros((2, _HIST_US + 1), dtype=np.int64)  # copies of hist, older first
        self._marked_at = [time.monotonic()] * 2

    def record(self, late_s: float) -> None:
        us = int(late_s * 1e6)
        self.hist[us if us < _HIST_US else _HIST_US] += 1
        self.count += 1
        if late_s > self.max_s:
            self.max_s = late_s

    def percentile_us(self, q: float) -> float:
        """The q-th percentile (0..100) in µs, to the bin (values past 20 ms read as 20 ms)."""
        return _percentiles_us(self.hist, (q,), self.count)[0][0]

    def p99_since(self, mark: np.ndarray) -> dict[str, float]:
        """p99 (µs) and count of the ticks recorded since ``mark``, an earlier copy of ``hist``,
        which then becomes a copy of it now: the lateness of a window, not of the whole run (for
        the status log; not for the tick thread, it allocates)."""
        window = self.hist - mark
        mark[:] = self.hist
        (p99,), count = _percentiles_us(window, (99,))
        return {"p99": p99, "count": count}

    def roll(self, now: float) -> None:
        """Move the recent window on, every half RECENT_S (copies into buffers kept for it)."""
        if now - self._marked_at[1] >= self.RECENT_S / 2:
            self._marks[0] = self._marks[1]
            self._marks[1] = self.hist
            self._marked_at = [self._marked_at[1], now]

    def recent(self, now: float | None = None) -> dict[str, float]:
        """p50, p99 and max (µs, to the bin) of the ticks since the older mark, and how many seconds
        that is.  A mark copied while the tick records is at most a few counts behind: no harm."""
        (p50, p99, top), count = _percentiles_us(self.hist - self._marks[0], (50, 99, 100))  # 100: the last bin used
        return {
            "p50": p50,
            "p99": p99,
            "max": top,
            "count": count,
            "window_s": (time.monotonic() if now is None else now) - self._marked_at[0],
        }

    def summary(self) -> dict[str, float]:
        (p50, p99, p999), _ = _percentiles_us(self.hist, (50, 99, 99.9), self.count)
        return {
            "p50": p50,
            "p99": p99,
            "p99.9": p999,
            "max": self.max_s * 1e6,
            "count": self.count,
        }

    def reset(self) -> None:
        self.hist[:] = 0
        self.count = 0
        self.max_s = 0.0
        self._marks[:] = 0  # marks above the histogram would give the recent window negative counts
        self._marked_at = [time.monotonic()] * 2


class Clock:
    """Calls ``on_tick(k)`` every ``tick_s`` seconds on absolute deadlines, in a thread of its own.

    ``on_tick`` gets the tick number k, counted from the start including skipped ticks, so
    ``k·tick_s`` is always the wall time since start.  Lateness, skipped ticks and the share of the
    time spent inside ``on_tick`` (the loop's CPU share, spin excluded) are kept for telemetry.
    """

    def __init__(self, tick_s: float, on_tick: Callable[[int], None], spin_s: float = SPIN_S, name: str = "firefly-tick"):
        if not tick_s > 0:
            raise ValueError(f"tick must be positive, got {tick_s}")
        self.tick_s = tick_s
        self.on_tick = on_tick
        self.spin_s = spin_s
        self.lateness = Lateness()
        self.ticks = 0
        self.skipped = 0
        self.busy_s = 0.0
        self.started_at = 0.0
        self.slack_lowered = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def cpu_share(self) -> float:
        elapsed = time.monotonic() - self.started_at if self.started_at else 0.0
        return self.busy_s / elapsed if elapsed > 0 else 0.0

    def stats(self) -> dict[str, object]:
        return {
            "ticks": self.ticks,
            "skipped_ticks": self.skipped,
            "lateness_us": self.lateness.summary(),
            "lateness_recent_us": self.lateness.recent(),
            "cpu_share": self.cpu_share(),
            "tick_ms": self.tick_s * 1e3,
        }

    def _run(self) -> None:
        self.slack_lowered = lower_timer_slack()
        try:
            self._loop()
        except BaseException as exc:  # kept for the owner, who sees the clock stopped and silences the notes
            self.error = exc

    def _loop(self) -> None:
        tick, spin, stop = self.tick_s, self.spin_s, self._stop
        monotonic, sleep = time.monotonic, time.sleep
        start = self.started_at = monotonic()
        k = 0
        while not stop.is_set():
            deadline = start + k * tick
            now = monotonic()
            if deadline - now > spin:
                sleep(deadline - now - spin)
            while (now := monotonic()) < deadline:
                pass
            behind = int((now - deadline) / tick)
            if behind:  # missed whole ticks: skip them, never burst
                self.skipped += behind
                k += behind
                deadline = start + k * tick
            self.lateness.record(now - deadline)
            self.on_tick(k)
            self.busy_s += monotonic() - now
            self.ticks += 1
            k += 1
