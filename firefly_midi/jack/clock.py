"""Frames and time.monotonic(): the callback publishes where it is, the Python side maps from that.

Each cycle the callback publishes (seqlock) its start frame, extended to 64 bits, the cycle's
length, ``jack_get_time()`` as it entered, and an anchor: the (frame, usecs) pair of the cycle that
entered earliest relative to its frame count over the last 25-50 ms.  The callback only ever enters
late (wake-up latency), never early, so that cycle's entry time is the best estimate of when cycle
starts really happen; the mapping from it, at the nominal sample rate, stays put from cycle to cycle
so that a steady pulse stays steady in frames (re-anchoring on every cycle's entry time would put
each cycle's wake-up jitter into the frames).  Asking libjack from Python instead
(``jack_frame_time()``) was 38 ms behind to 108 ms ahead of the callback on a loaded machine.

``jack_get_time()`` reads CLOCK_MONOTONIC_RAW on Linux (measured: 264 ms from ``time.monotonic()``'s
CLOCK_MONOTONIC on this machine, and NTP slews the two apart by up to 500 ppm), so ``FrameClock``
measures that offset itself and refreshes it.

The 32-bit frame counter wraps after 24.8 h at 48 kHz; ``extend_frame`` keeps a 64-bit count (it
holds while fewer than 2**32 frames pass between two cycles, i.e. always).
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit

from firefly_midi.errors import FireflyError
from firefly_midi.jack import layout
from firefly_midi.jack.binding import fence_acquire, fence_release

_JIT = {"cache": True, "error_model": "numpy", "nogil": True}
# The anchor is the best cycle of the last 25-50 ms: long enough to find a cycle that woke up on
# time (dozens of 64-frame cycles), short enough that a frame clock which loses time (the dummy
# driver on a loaded machine ran 3.7 % slow, losing whole cycles at xruns) is followed within 50 ms.
ANCHOR_HALF_WINDOWS_PER_S = 40


@njit(inline="always", **_JIT)
def extend_frame(previous, raw):
    """The 64-bit frame whose low 32 bits are ``raw``, at or after ``previous`` (a 64-bit frame)."""
    return previous + ((raw - previous) & 0xFFFFFFFF)


@njit(inline="always", **_JIT)
def track_anchor(st, frame, usecs):
    """Keep the earliest-entering cycle of the current and the previous half-window (an O(1) sliding
    minimum over 25-50 ms); returns the better one's (frame, usecs)."""
    rate = st[layout.SAMPLE_RATE]
    offset = usecs * rate - frame * 1_000_000  # (entry time - frame's nominal time) x rate
    if frame >= st[layout.WINDOW_END]:
        st[layout.PREVIOUS_OFFSET] = st[layout.BEST_OFFSET]
        st[layout.PREVIOUS_FRAME] = st[layout.BEST_FRAME]
        st[layout.PREVIOUS_USECS] = st[layout.BEST_USECS]
        st[layout.BEST_OFFSET] = offset + 1  # so that this cycle is taken below
        st[layout.WINDOW_END] = frame + rate // ANCHOR_HALF_WINDOWS_PER_S
    if offset < st[layout.BEST_OFFSET]:
        st[layout.BEST_OFFSET] = offset
        st[layout.BEST_FRAME] = frame
        st[layout.BEST_USECS] = usecs
    if st[layout.PREVIOUS_OFFSET] < st[layout.BEST_OFFSET]:
        return st[layout.PREVIOUS_FRAME], st[layout.PREVIOUS_USECS]
    return st[layout.BEST_FRAME], st[layout.BEST_USECS]


@njit(inline="always", **_JIT)
def publish_position(st, frame, nframes, usecs):
    """Seqlock write (the sequence is odd while the fields change) of this cycle and the anchor."""
    anchor_frame, anchor_usecs = track_anchor(st, frame, usecs)
    st[layout.POSITION_SEQ] += 1
    fence_release()
    st[layout.POSITION_FRAME] = frame
    st[layout.POSITION_NFRAMES] = nframes
    st[layout.POSITION_USECS] = usecs
    st[layout.ANCHOR_FRAME] = anchor_frame
    st[layout.ANCHOR_USECS] = anchor_usecs
    fence_release()
    st[layout.POSITION_SEQ] += 1


@njit(**_JIT)
def read_position(st, out):
    """Copy the last cycle's position consistently into ``out``: frame, nframes, usecs, anchor frame,
    anchor usecs; returns the sequence number (0: no cycle yet)."""
    while True:
        sequence = st[layout.POSITION_SEQ]
        fence_acquire()
        out[0] = st[layout.POSITION_FRAME]
        out[1] = st[layout.POSITION_NFRAMES]
        out[2] = st[layout.POSITION_USECS]
        out[3] = st[layout.ANCHOR_FRAME]
        out[4] = st[layout.ANCHOR_USECS]
        fence_acquire()
        if sequence == st[layout.POSITION_SEQ] and sequence % 2 == 0:
            return sequence


# The constant latency between an event's due time and its frame: it covers a 1 ms tick, the tick
# thread's wake-up jitter on an ordinary kernel (~1-2 ms) and one 64-frame period at 48 kHz
# (1.3 ms), since an event must be on the ring before the cycle holding its frame starts.  A larger
# JACK period needs more: lookahead >= tick + jitter + period.
DEFAULT_LOOKAHEAD_MS = 5.0
OFFSET_REFRESH_S = 0.5  # how often the MONOTONIC - MONOTONIC_RAW offset is measured again
# The mapping in use follows the anchor with a slow loop, not in steps.  Live, a hit is dated and a
# clock is placed through the same mapping, so a step in it (the dummy driver's frame clock loses
# 30 ms at an xrun on a loaded machine) went into one beat of MIDI clock: 5 BPM in frames, what a DAW
# hears (benchmarks/follow_diagnose.py).  The loop learns how fast the frame clock loses time
# (DRIFT_GAIN, fading over DRIFT_MEMORY_S) and closes what is left at most SLEW_US_PER_S faster: a
# 30 ms step is spread over about 10 s at under 0.6 % of tempo.  Meanwhile events go out up to the
# step later than the lookahead asks, never early; a frame clock that gains time (events would be
# late) or a mapping further behind than CATCH_UP_US is followed at once.
SLEW_US_PER_S = 2_000.0
DRIFT_GAIN = 0.05  # per s²: the drift rate's share of what is left, learnt each second
DRIFT_MEMORY_S = 10.0  # the learnt drift fades over this long once the mapping has caught up
MAX_DRIFT = 0.05  # the frame clock may lose at most 5 % (the loaded dummy driver lost 3.7 %)
CATCH_UP_US = 250_000.0


def prepare(st: np.ndarray, sample_rate: int) -> None:
    """Before activation: the sample rate, and no anchor yet (any cycle beats these offsets)."""
    st[layout.SAMPLE_RATE] = sample_rate
    st[layout.BEST_OFFSET] = st[layout.PREVIOUS_OFFSET] = np.iinfo(np.int64).max


class NoCycleYet(FireflyError, RuntimeError):
    """The callback has not run yet: there is no position to map times from."""


def monotonic_minus_raw_us() -> float:
    """time.monotonic() - CLOCK_MONOTONIC_RAW in µs, from the tightest of three bracketed readings."""
    best = (float("inf"), 0.0)
    for _ in range(3):
        before = time.monotonic()
        raw = time.clock_gettime(time.CLOCK_MONOTONIC_RAW)
        after = time.monotonic()
        best = min(best, (after - before, ((before + after) / 2 - raw) * 1e6))
    return best[1]


class FrameClock:
    """Maps time.monotonic() seconds to 64-bit frames and back, from what the callback publishes."""

    def __init__(self, state: np.ndarray, sample_rate: int = 48_000) -> None:
        self.state = state
        self.sample_rate = sample_rate
        self._position = np.zeros(5, dtype=np.int64)
        self._offset_us = 0.0
        self._offset_at = -float("inf")
        self._zero_us = float("nan")  # raw µs at frame 0 of the mapping in use (slewed toward the anchor's)
        self._zero_at = 0.0  # time.monotonic() when it was last moved
        self._drift = 0.0  # µs a second the frame clock is learnt to lose

    def warm_up(self) -> None:
        """Compile (or load) the jitted reader now, not on the tick's first call."""
        read_position(np.zeros(layout.HEADER, dtype=np.int64), self._position)

    def position(self) -> tuple[int, int, int]:
        """The last cycle's (start frame, nframes, jack_get_time() at its entry)."""
        self._read()
        frame, nframes, usecs = self._position[:3]
        return int(frame), int(nframes), int(usecs)

    def frame_at(self, time_s: float) -> int:
        """The frame that plays at ``time_s`` (time.monotonic())."""
        zero_us = self._mapping()
        raw_us = time_s * 1e6 - self._offset_us
        return round((raw_us - zero_us) * self.sample_rate / 1e6)

    def time_at(self, frame: int) -> float:
        """When ``frame`` plays, on time.monotonic()."""
        raw_us = self._mapping() + frame * 1e6 / self.sample_rate
        return (raw_us + self._offset_us) / 1e6

    def _mapping(self) -> float:
        """Raw µs at frame 0: the anchor's, followed slowly when it moves later (the clock lost time)."""
        anchor_frame, anchor_usecs = self._read()
        target = anchor_usecs - anchor_frame * 1e6 / self.sample_rate
        now = time.monotonic()
        behind, elapsed = target - self._zero_us, now - self._zero_at
        self._zero_at = now
        if behind < 0.0 or behind > CATCH_UP_US or behind != behind:  # gained time, too far, or the first read
            self._zero_us = target
            return target
        self._drift += (DRIFT_GAIN * behind - self._drift / DRIFT_MEMORY_S) * elapsed
        self._drift = min(max(self._drift, 0.0), MAX_DRIFT * 1e6)
        self._zero_us += min(behind, (self._drift + SLEW_US_PER_S) * elapsed)
        return self._zero_us

    def now_frame(self) -> int:
        return self.frame_at(time.monotonic())

    def _read(self) -> tuple[int, int]:
        if read_position(self.state, self._position) == 0:
            raise NoCycleYet("the JACK callback has not run yet")
        now = time.monotonic()
        if now - self._offset_at > OFFSET_REFRESH_S:
            self._offset_us, self._offset_at = monotonic_minus_raw_us(), now
        return int(self._position[3]), int(self._position[4])
