"""The daemon's time: the clock's deadlines, and where they play (on time.monotonic() or on JACK frames).

The tick clock counts *transport seconds*: tick k is due at ``start + k·tick``, and every event the
tick sends is dated on that same axis.  Where the ports play through a plain backend, transport
seconds are time.monotonic() (plus a constant offset, see below).  Where they play through the
native JACK client, the transport follows the server's frame counter instead: transport second t
plays at frame ``frame0 + round((t - t0)·rate)``, exactly, and the clock wakes for tick k when that
frame is due (``FrameClock.time_at``).  So a steady pulse is steady in frames, which is what a DAW
following our MIDI clock counts, even where the sound card's frames (or the dummy driver's, 4 %
slow on a loaded machine) do not run at 48 kHz of time.monotonic(); events timed on
time.monotonic() and mapped to frames one by one wandered by up to 50 frames
(docs/performance.md, MIDI clock out).

Continuity: when the transport starts or stops following a frame clock, or the frame clock jumps
(a stalled or restarted server: JACK frames are not time), the transport re-anchors so that the
clock's next wake-up is where it would have been: the music skips frames, the tick never stalls or
bursts.
"""

from __future__ import annotations

import time
from typing import Protocol

# A frame clock whose wake-up for the next tick moves by more than this against the one before is
# taken as a jump (a stalled, restarted or xrunning server), not as time: the transport re-anchors.
MAX_STEP_S = 0.25


class FrameClockLike(Protocol):
    sample_rate: int

    def frame_at(self, time_s: float) -> int: ...

    def time_at(self, frame: float) -> float: ...


class Transport:
    """Transport seconds to time.monotonic() and, while following a frame clock, to its frames.

    Threads: ``wake_at`` and ``frame`` are the tick thread's; ``follow`` and ``leave`` may come from
    another, and replace the anchor whole (one tuple), so a reader sees the old one or the new.
    """

    def __init__(self) -> None:
        self._anchor: tuple[FrameClockLike, int, float] | None = None  # (frame clock, frame0, t0)
        self._offset_s = 0.0  # time.monotonic() - transport seconds, as of the last wake-up
        self.jumps = 0  # times the frame clock jumped and the transport re-anchored

    @property
    def on_frames(self) -> bool:
        return self._anchor is not None

    def follow(self, frame_clock: FrameClockLike) -> None:
        """From now on, play on ``frame_clock``'s frames, continuing from the time it is now."""
        now = time.monotonic()
        self._anchor = (frame_clock, frame_clock.frame_at(now), now - self._offset_s)

    def leave(self) -> None:
        """Play on time.monotonic() again (the frame clock went away), continuing where it was."""
        self._anchor = None

    def frame(self, t: float) -> int | None:
        """The frame transport second ``t`` plays at; None while following no frame clock."""
        anchor = self._anchor
        if anchor is None:
            return None
        frame_clock, frame0, t0 = anchor
        return frame0 + round((t - t0) * frame_clock.sample_rate)

    def time_of(self, frame: int) -> float | None:
        """The transport second ``frame`` played at (an input's arrival); None while following no frame clock."""
        anchor = self._anchor
        if anchor is None:
            return None
        frame_clock, frame0, t0 = anchor
        return t0 + (frame - frame0) / frame_clock.sample_rate

    def wake_at(self, t: float) -> float:
        """When, on time.monotonic(), transport second ``t`` is due."""
        anchor = self._anchor
        if anchor is None:
            return t + self._offset_s
        frame_clock, frame0, t0 = anchor
        wake = frame_clock.time_at(frame0 + (t - t0) * frame_clock.sample_rate)
        if abs(wake - t - self._offset_s) > MAX_STEP_S:  # a jump of the frames, not time: skip frames
            self.jumps += 1
            wake = t + self._offset_s
            frame0 = frame_clock.frame_at(wake) - round((t - t0) * frame_clock.sample_rate)
            if self._anchor is anchor:  # not left meanwhile
                self._anchor = (frame_clock, frame0, t0)
        self._offset_s = wake - t
        return wake
