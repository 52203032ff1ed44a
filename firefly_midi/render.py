"""Offline render to a MIDI file, through the same ``Player`` as the live daemon.

The player is ticked as the daemon ticks it, and every event lands in a type-0 file at its exact
time: 960 ticks per beat at the nominal tempo (``swarm.freq_hz`` · 60 BPM, one beat per swarm
cycle), file ticks = round(time_s × freq_hz × 960), delta times taken between rounded absolute times
so nothing drifts.  A final ``silence`` ends every note.  MIDI clock (real-time messages) and Song
Position cannot live in a file and are left out.

An input file's messages (read with mido, which honours its tempo map) are heard in the tick they
fall in, at their sub-tick fraction, exactly as the daemon hears its input port.  Same values,
seconds and input give the same bytes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import mido

from firefly_midi.player import Player

TICKS_PER_BEAT = 960
SYSTEM = 0xF0  # status bytes from here up are system messages: clock, Start, Song Position...


def read_input(path: Path) -> list[tuple[float, list[int]]]:
    """(seconds, bytes) of every note message in a MIDI file, in time order."""
    notes, now = [], 0.0
    for message in mido.MidiFile(path):  # yields delta times in seconds, through the tempo map
        now += message.time
        if message.type in ("note_on", "note_off"):
            notes.append((now, message.bytes()))
    return notes


class TimedInput:
    """Messages at known times, handed to the player tick by tick (an ``InputSource``)."""

    def __init__(self, timed: list[tuple[float, list[int]]], dt: float):
        self.timed, self.dt = timed, dt
        self.next = 0
        self.k = 0  # the tick being played: messages before its end are due

    def poll(self) -> tuple[list[int], float] | None:
        if self.next >= len(self.timed) or self.timed[self.next][0] >= (self.k + 1) * self.dt:
            return None
        at, message = self.timed[self.next]
        self.next += 1
        return message, min(max(at / self.dt - self.k, 0.0), 1.0)


def play_offline(player: Player, ticks: int, source: TimedInput | None = None) -> list[tuple[float, list[int]]]:
    """Tick ``player`` ``ticks`` times, then silence it: every event as (time_s, bytes), in order."""
    source = source or TimedInput([], player.swarm.dt)
    played: list[tuple[float, list[int]]] = []
    for k in range(ticks):
        source.k = k
        _collect(player, player.tick(k, source), played)
    _collect(player, player.silence(), played)
    return played


def _collect(player: Player, count: int, out: list[tuple[float, list[int]]]) -> None:
    events = player.events
    out.extend((float(events.time_s[i]), list(events.message(i))) for i in range(count))


def _render(
    values: dict[str, Any], seconds: float, input_path: Path | None, engine: str = "compiled"
) -> tuple[mido.MidiFile, dict[str, Any]]:
    started = time.perf_counter()
    player = Player(values, engine=engine)
    swarm = player.swarm
    ticks = max(1, round(seconds / swarm.dt))
    timed = read_input(input_path) if input_path else []
    played = play_offline(player, ticks, TimedInput(timed, swarm.dt))
    beats_per_s = player.values["swarm.freq_hz"]
    midi, stamped = _midi_file(played, beats_per_s, player.values)
    summary = {
        "notes": player.mapper.notes_out,
        "dropped_notes": player.mapper.dropped_notes,
        "flashes": swarm.flashes_total,
        "events": len(stamped),
        "input_notes": player.counts.flashes,
        "seconds": ticks * swarm.dt,
        "bpm": beats_per_s * 60.0,
        "wall_s": time.perf_counter() - started,
    }
    return midi, summary


def _midi_file(played: list[tuple[float, list[int]]], beats_per_s: float, values: dict[str, Any]) -> tuple[mido.MidiFile, list]:
    """The played channel messages at 960 ticks a beat of ``beats_per_s`` (MIDI clock and Song Position live in no file)."""
    stamped = [(round(t * beats_per_s * TICKS_PER_BEAT), m) for t, m in played if m[0] < SYSTEM]
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=f"firefly-midi {values['swarm.model']} n={values['swarm.n']}", time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=round(1_000_000 / beats_per_s), time=0))
    previous = 0
    for at, message in stamped:
        track.append(mido.Message.from_bytes(message, time=at - previous))
        previous = at
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(track)
    return midi, stamped


def render(values: dict[str, Any], seconds: float, input_path: Path | None = None) -> mido.MidiFile:
    """Run the swarm for ``seconds`` and return what it played as a MIDI file."""
    return _render(values, seconds, input_path)[0]


def write_render(
    values: dict[str, Any], seconds: float, out_path: Path, input_path: Path | None = None, engine: str = "compiled"
) -> dict[str, Any]:
    """Render to ``out_path``; return a summary: notes, flashes, seconds, wall_s and more.  ``engine``:
    "numpy" starts at once where numba would first compile the kernels (the same notes: ``Swarm``)."""
    midi, summary = _render(values, seconds, input_path, engine)
    midi.save(out_path)
    return {**summary, "path": str(out_path)}


def write_replay(recording: Path, out_path: Path, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """Play a ``daemon --record`` session again (over ``values``: another preset) into ``out_path``."""
    from firefly_midi.replay import load, recorded_values, replay

    started = time.perf_counter()
    header, _ = load(recording)
    values = values or recorded_values(header)
    played = replay(recording, values)
    midi, stamped = _midi_file(played, values["swarm.freq_hz"], values)
    midi.save(out_path)
    notes = sum(1 for _, m in stamped if m[0] & 0xF0 == 0x90 and m[2] > 0)
    seconds = played[-1][0] if played else 0.0
    return {"recorded_preset": header["preset"], "notes": notes, "events": len(stamped), "seconds": seconds,
            "wall_s": time.perf_counter() - started, "path": str(out_path)}  # fmt: skip
