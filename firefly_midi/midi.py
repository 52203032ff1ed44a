"""MIDI status bytes and controller numbers, taken from python-rtmidi's table rather than redefined."""

from __future__ import annotations

from rtmidi.midiconstants import (
    ALL_NOTES_OFF,
    CONTROL_CHANGE,
    NOTE_OFF,
    NOTE_ON,
    SONG_CONTINUE,
    SONG_POSITION_POINTER,
    SONG_START,
    SONG_STOP,
    TIMING_CLOCK,
)

__all__ = [
    "ALL_NOTES_OFF",
    "CONTROL_CHANGE",
    "NOTE_OFF",
    "NOTE_ON",
    "REALTIME",
    "SONG_CONTINUE",
    "SONG_POSITION_POINTER",
    "SONG_START",
    "SONG_STOP",
    "TIMING_CLOCK",
]

REALTIME = 0xF8  # status bytes from here up are system real-time: they cannot live in a MIDI file
