"""MIDI clock out: Start, 24 clocks a beat, Stop, and Song Position to continue where it stopped.

Free-running, the clock follows the swarm's live tempo (``LiveTempo``, whole cycles of its flashes).
Led by a follower that has locked (``follow.enabled``), it counts on the follower's beat grid
instead: clock number g is due when the grid reaches beat g / 24, so a DAW slaved to it plays on the
drummer's beats.  When the lead takes over, or its grid jumps (a re-lock), the next clock waits for
the first grid pulse that keeps the DAW's place in the beat (clocks sent, mod 24): the DAW's
downbeats stay on grid beats, at the cost of at most a beat's pause, never a burst.  Once aligned,
the clock keeps its own place in the beat and runs at the grid's tempo; each phase correction of the
grid (a hit a few ms early or late) is caught up over the next ``CATCH_UP_BEATS`` beats (a share of
what is left each moment, at most ``SLEW_BPM`` of tempo), not inside the one beat it lands in, so
the tempo a DAW hears beat by beat moves by a fraction of a BPM, not by the grid's phase steps.

After a Stop (a pause, a panic) the clock goes on with Song Position (the next whole sixteenth, six
clocks each) and Continue, so the DAW picks up where it was, not from bar one.
"""

from __future__ import annotations

import math
from typing import Any

from firefly_midi import midi

CLOCK, START, STOP = midi.TIMING_CLOCK, midi.SONG_START, midi.SONG_STOP
CONTINUE, SONG_POSITION = midi.SONG_CONTINUE, midi.SONG_POSITION_POINTER
MAX_CLOCKS_PER_TICK = 64  # a led clock never bursts more than this in one tick
CATCH_UP_BEATS = 2.0  # a led clock closes its phase gap to the grid over about this many beats
SLEW_BPM = 0.5  # and at most this much faster or slower than the grid's tempo
REALIGN_BEATS = 0.25  # further than this from the grid (a re-lock, a jump), the clock realigns


class ClockOut:
    """MIDI clock out, one tick at a time, into the mapper's event buffer."""

    def __init__(self) -> None:
        self.running = False
        self.pulses = 0  # clocks sent since Start: the DAW's position (Song Position counts sixteenths)
        self.lead: Any = None  # a Follower whose grid leads the clock once it has locked, or None
        self._to_next = 0.0  # free-running: clock pulses (1/24 beat) still to go before the next is due
        self._grid_next = 0  # led: the grid pulse number of the next clock
        self._aligned = False  # led: _grid_next holds the DAW's place in the beat
        self._beat = 0.0  # led: the clock's own place on the grid's beat count at time _t
        self._t = 0.0  # led: the end of the last tick it played (ticks the player skipped run at the grid's tempo)
        self._relocks = 0  # led: the lead's re-lock count when the clock last aligned

    def tick(self, events: Any, t0: float, dt: float, hz: float) -> None:
        """Start if stopped, then a clock at the exact time of every 1/24-beat crossing in [t0, t0 + dt)."""
        if not self.running:
            self._start(events, t0)
        lead = self.lead
        if lead is not None and lead.enabled and lead.ever_locked:
            self._led(events, t0, t0 + dt, lead)
            return
        self._aligned = False
        step = 24.0 * hz * dt  # pulses this tick, at the live tempo
        while self._to_next < step:
            events.push(t0 + self._to_next / step * dt, CLOCK, size=1)
            self.pulses += 1
            self._to_next += 1.0
        self._to_next -= step

    def stop(self, events: Any, t: float) -> None:
        if self.running:
            events.push(t, STOP, size=1)
            self.running = False

    def _start(self, events: Any, t0: float) -> None:
        if self.pulses == 0:
            events.push(t0, START, size=1)
        else:
            sixteenths = -(-self.pulses // 6)  # the next whole sixteenth: the count never goes back
            self.pulses = 6 * sixteenths
            events.push(t0, SONG_POSITION, sixteenths & 0x7F, (sixteenths >> 7) & 0x7F, size=3)
            events.push(t0, CONTINUE, size=1)
        self.running = True
        self._to_next = 0.0  # the first clock goes with the start
        self._aligned = False

    def _led(self, events: Any, t0: float, end: float, lead: Any) -> None:
        """The clocks of the pulses in [t0, end) of the clock's own beat, slewed toward the grid's."""
        self._beat += (t0 - self._t) / lead.period  # skipped ticks, at the grid's tempo
        behind = lead.beat_at(t0) - self._beat  # beats the clock trails the grid by
        if not self._aligned or lead.relocks != self._relocks or abs(behind) > REALIGN_BEATS:
            self._beat = lead.beat_at(t0)
            first = math.ceil(24.0 * self._beat)
            self._grid_next = first + (self.pulses - first) % 24
            self._aligned, self._relocks, behind = True, lead.relocks, 0.0
        dt = end - t0
        most = SLEW_BPM / 60.0 * dt
        catch_up = behind * dt / (CATCH_UP_BEATS * lead.period)
        beats = dt / lead.period + min(max(catch_up, -most), most)  # this tick's advance of the clock's beat
        start, self._beat, self._t = self._beat, self._beat + beats, end
        for _ in range(MAX_CLOCKS_PER_TICK):
            due = self._grid_next / 24.0
            if due >= self._beat:
                return
            events.push(t0 + max(due - start, 0.0) / beats * dt, CLOCK, size=1)
            self.pulses += 1
            self._grid_next += 1
