"""The fixed-tick loop: absolute deadlines, sleep-then-spin, and the loop's own lateness statistics.

Why this shape (measured on a 2-core Linux machine): ``time.sleep(tick)`` loops drift by the sleep's
overshoot every tick (about 8 % at 1 ms), and asyncio's timers are 0.5-1 ms late.  Deadlines here are
absolute (``start + k·tick`` from the monotonic clock), so lateness never accumulates; the loop
sleeps until a little before the deadline (with the kernel's timer slack lowered to 1 ns where
``prctl`` exists) and spins the rest, which gave p99 lateness under 2 µs.  A loop that falls behind
by a tick or more skips the missed ticks and counts them: it never bursts to catch up, because a
burst of ticks would play a burst of notes.

Two things keep that true on a busy or virtual machine, where a sleep can overshoot by far more
than 0.1 ms (seen here on a 2-vCPU KVM guest: median 40 µs, p99 ~130 µs, p99.9 ~250 µs):
- the spin adapts: every ADAPT_TICKS ticks, the loop counts the sleeps that woke after the deadline
  and lengthens the spin if more than LATE_WAKES_SHARE did, shortens it when none did, between
  SPIN_S and MAX_SPIN_S (pure arithmetic on counters: nothing allocated).  Only on real-time
  scheduling: there a late wake is the machine's timer, and spinning longer buys punctuality; on
  ordinary scheduling it is contention for the CPU, which a longer spin would only feed;
- the thread asks for real-time scheduling (SCHED_FIFO at priority 1: above every ordinary
  thread, below JACK's own real-time threads, so it never delays an audio cycle), and goes back
  to ordinary scheduling if its ticks keep it busy most of the time (``OVERLOAD_SHARE``): an
  overloaded real-time thread would starve the rest of the machine.  Without the right (no
  rtprio limit: on Debian, join the ``audio`` group) it stays ordinary and says so in ``stats()``;
  the owner also keeps it ordinary (``realtime=False``) where a real-time tick would outrank the
  MIDI server's own threads: a JACK server running without real-time priority.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
import threading
import time
from collections.abc import Callable

import numpy as np

from firefly_midi.transport import Transport

SPIN_S = 100e-6  # sleep until this long before the deadline, then spin (the least spin)
MAX_SPIN_S = 300e-6  # the most spin the loop adapts to
SPIN_STEP_S = 20e-6  # how far one adaptation moves the spin
ADAPT_TICKS = 1000  # ticks between adaptations of the spin
ADAPT_MAX_S = 1.0  # or this long, when ticks overrun: an overloaded loop runs few of them
LATE_WAKES_SHARE = 0.002  # more sleeps than this overshooting the deadline lengthen the spin
REALTIME_PRIORITY = 1  # SCHED_FIFO priority of the tick thread: the lowest real-time one
OVERLOAD_SHARE = 0.9  # busier than this over an adaptation window: back to ordinary scheduling
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


def adapt_spin(spin_s: float, late_wakes: int, wakes: int, least_s: float = SPIN_S) -> float:
    """The spin for the next window, from how many of this window's ``wakes`` sleeps woke too late."""
    if late_wakes > LATE_WAKES_SHARE * wakes:
        return min(spin_s + SPIN_STEP_S, MAX_SPIN_S)
    if late_wakes == 0:
        return max(spin_s - SPIN_STEP_S / 4, least_s)  # back down slowly: one bad window lengthens at once
    return spin_s


def ask_realtime() -> bool:
    """Put the calling thread on SCHED_FIFO at REALTIME_PRIORITY; False where that is not allowed."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
    except (AttributeError, OSError):  # no such call (macOS, Windows) or no right to it
        return False
    return True


def leave_realtime() -> None:
    """Put the calling thread back on ordinary scheduling."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


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
    ``k·tick_s`` is always the transport time since start: wall time, or the JACK frames' time where
    the ports follow a server's frame clock (``transport``, firefly_midi/transport.py).  Lateness, skipped ticks and the share of the
    time spent inside ``on_tick`` (the loop's CPU share, spin excluded) are kept for telemetry.
    """

    def __init__(
        self,
        tick_s: float,
        on_tick: Callable[[int], None],
        spin_s: float = SPIN_S,
        name: str = "firefly-tick",
        realtime: bool = True,
        transport: Transport | None = None,
    ):
        if not tick_s > 0:
            raise ValueError(f"tick must be positive, got {tick_s}")
        self.tick_s = tick_s
        self.on_tick = on_tick
        self.transport = transport if transport is not None else Transport()
        self.spin_s = spin_s
        self.lateness = Lateness()
        self.ticks = 0
        self.skipped = 0
        self.busy_s = 0.0
        self.started_at = 0.0
        self.slack_lowered = False
        self.wants_realtime = realtime  # ask for SCHED_FIFO at start (the owner may say no before start())
        self.realtime = False  # the tick thread runs on SCHED_FIFO (see the module's doc)
        self.overloaded = False  # it did, and left it because its ticks kept it too busy
        self.late_wakes = 0  # sleeps that woke after their deadline, since the start
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
            "spin_us": self.spin_s * 1e6,
            "late_wakes": self.late_wakes,
            "realtime": self.realtime,
            "realtime_wanted": self.wants_realtime,
            "left_realtime_overloaded": self.overloaded,
        }

    def _run(self) -> None:
        self.slack_lowered = lower_timer_slack()
        self.realtime = self.wants_realtime and ask_realtime()
        try:
            self._loop()
        except BaseException as exc:  # kept for the owner, who sees the clock stopped and silences the notes
            self.error = exc

    def _loop(self) -> None:
        tick, stop, least = self.tick_s, self._stop, self.spin_s
        monotonic, sleep, wake_at = time.monotonic, time.sleep, self.transport.wake_at
        start = self.started_at = monotonic()
        k = 0
        self._wakes = self._late = 0
        self._window_since, self._window_busy = start, self.busy_s
        while not stop.is_set():
            deadline = wake_at(start + k * tick)
            now = monotonic()
            if deadline - now > self.spin_s:
                sleep(deadline - now - self.spin_s)
                self._wakes += 1
                if monotonic() > deadline:
                    self._late += 1
            while (now := monotonic()) < deadline:
                pass
            behind = int((now - deadline) / tick)
            if behind:  # missed whole ticks: skip them, never burst
                self.skipped += behind
                k += behind
                deadline = wake_at(start + k * tick)
            self.lateness.record(now - deadline)
            self.on_tick(k)
            done = monotonic()
            self.busy_s += done - now
            self.ticks += 1
            k += 1
            if self.ticks % ADAPT_TICKS == 0 or done - self._window_since >= ADAPT_MAX_S:
                self._adapt(least, done)

    def _adapt(self, least_s: float, now: float) -> None:
        """Every ADAPT_TICKS ticks (ADAPT_MAX_S at most): the spin from the late sleeps, real time dropped if overloaded."""
        self.late_wakes += self._late
        if self.realtime:  # on ordinary scheduling a late wake is contention, which more spin would feed
            self.spin_s = adapt_spin(self.spin_s, self._late, self._wakes, least_s)
        if self.realtime and self.busy_s - self._window_busy > OVERLOAD_SHARE * (now - self._window_since):
            leave_realtime()
            self.realtime, self.overloaded = False, True
        self._wakes = self._late = 0
        self._window_since, self._window_busy = now, self.busy_s
