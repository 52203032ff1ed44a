"""What comes in: ``InputMap`` turns incoming note-ons into flashes the swarm sees (``Swarm.inject``),
and ``ClockIn`` measures the tempo of incoming MIDI clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from firefly_midi import midi
from firefly_midi.mapping import Mapper, checked

CLOCK, START, STOP = midi.TIMING_CLOCK, midi.SONG_START, midi.SONG_STOP


@dataclass
class InputCounts:
    """What became of the incoming messages: one counter per fate, shared by everything that hears."""

    flashes: int = 0  # note-ons the swarm saw
    ignored: int = 0  # messages that do nothing here (or arrived while paused)
    other: int = 0  # clock messages and controllers bound by MIDI learn
    dropped: int = 0  # over input.max_per_tick, or the swarm's queue of external flashes was full


class InputMap:
    """What an incoming MIDI message does: note-ons become flashes the swarm sees."""

    def __init__(self, values: dict[str, Any], mapper: Mapper, counts: InputCounts | None = None):
        self.mapper = mapper
        self.counts = counts or InputCounts()
        self.update(values)

    def update(self, values: dict[str, Any]) -> None:
        v = checked(values)
        self.enabled = v["input.enabled"]
        wanted = v["input.channels"]
        self._channel_ok = [not wanted or (c + 1) in wanted for c in range(16)]
        self.note_min, self.note_max = v["input.note_min"], v["input.note_max"]
        self.strength = v["input.strength"]
        self.velocity_scaled = v["input.velocity_scaled"]
        self.by_voice = v["input.target"] == "voice"

    def apply(self, message: Sequence[int], time_frac: float, swarm: Any) -> bool:
        """Inject ``message`` if it is a note-on that counts; False for anything else, never raising."""
        note_on = self.note_on(message)
        if note_on is None:
            self.counts.ignored += 1
            return False
        note, velocity = note_on
        strength = self.strength * (velocity / 127.0 if self.velocity_scaled else 1.0)
        targets = self.mapper.members_near(note) if self.by_voice else None
        if not swarm.inject(time_frac, strength, targets):
            self.counts.dropped += 1  # refused by the swarm: its queue of external flashes was full
            return False
        self.counts.flashes += 1
        return True

    def note_on(self, message: Any) -> tuple[int, int] | None:
        """(note, velocity) of a note-on that passes the filters, else None."""
        if not self.enabled:
            return None
        try:
            if len(message) != 3:
                return None
            status, note, velocity = message[0], message[1], message[2]
        except (TypeError, KeyError, IndexError):
            return None
        if not all(isinstance(b, int | np.integer) for b in (status, note, velocity)):
            return None
        if not (0x90 <= status <= 0x9F and 0 <= note <= 127 and 0 < velocity <= 127):
            return None
        if not self._channel_ok[status & 0x0F] or not self.note_min <= note <= self.note_max:
            return None
        return int(note), int(velocity)


class ClockIn:
    """Tempo of incoming MIDI clock: beats per second from the median of the last 24 intervals."""

    GAP_S = 2.0

    def __init__(self) -> None:
        self._intervals = np.zeros(24)
        self._scratch = np.zeros(24)
        self.reset()

    def reset(self) -> None:
        self._clocks = 0
        self._last: float | None = None

    def feed(self, time_s: float) -> None:
        """One 0xF8 arrived at ``time_s``; a gap over 2 s (or time going back) starts afresh."""
        if self._last is not None and not 0.0 <= time_s - self._last <= self.GAP_S:
            self.reset()
        if self._last is not None:
            self._intervals[(self._clocks - 1) % 24] = time_s - self._last
        self._clocks += 1
        self._last = time_s

    def handle(self, message: Sequence[int], time_s: float) -> bool:
        """Take a raw clock (0xF8), start (0xFA) or stop (0xFC) message; False for anything else."""
        try:
            status = message[0] if len(message) == 1 else None
        except (TypeError, KeyError, IndexError):
            return False
        if status == CLOCK:
            self.feed(time_s)
        elif status in (START, STOP):
            self.reset()
        else:
            return False
        return True

    def stop(self) -> None:
        self.reset()

    def tempo_hz(self, now: float | None = None) -> float | None:
        """Beats per second, or None before 24 clocks (or when the last is over 2 s before ``now``)."""
        if self._clocks < 24 or (now is not None and self._last is not None and now - self._last > self.GAP_S):
            return None
        used = min(self._clocks - 1, 24)
        window = self._scratch[:used]
        window[:] = self._intervals[:used]
        window.sort()
        median = 0.5 * (window[(used - 1) // 2] + window[used // 2])
        return 1.0 / (24.0 * median) if median > 0.0 else None
