"""Offline render to a MIDI file, through the same swarm and mapper code as the live daemon.

The swarm is stepped tick by tick (``Swarm.step``), each step's flashes go through ``Mapper.tick``,
and every event lands in a type-0 file at its exact time: 960 ticks per beat at the nominal tempo
(``swarm.freq_hz`` · 60 BPM, one beat per swarm cycle), file ticks = round(time_s × freq_hz × 960),
delta times taken between rounded absolute times so nothing drifts.  A final ``panic`` ends every
note.  MIDI clock (real-time messages) cannot live in a file and is left out.

An input file's note messages (read with mido, which honours its tempo map) are injected through
``InputMap`` before the step of the tick they fall in, at their sub-tick fraction.  Same values,
seconds and input give the same bytes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import mido

from firefly_midi.mapping import InputMap, Mapper
from firefly_midi.swarm import Swarm

TICKS_PER_BEAT = 960


def read_input(path: Path) -> list[tuple[float, list[int]]]:
    """(seconds, bytes) of every note message in a MIDI file, in time order."""
    notes, now = [], 0.0
    for message in mido.MidiFile(path):  # yields delta times in seconds, through the tempo map
        now += message.time
        if message.type in ("note_on", "note_off"):
            notes.append((now, message.bytes()))
    return notes


def _render(values: dict[str, Any], seconds: float, input_path: Path | None) -> tuple[mido.MidiFile, dict[str, Any]]:
    started = time.perf_counter()
    swarm = Swarm(values)
    mapper = Mapper(swarm.values, swarm)
    inputs = InputMap(swarm.values, mapper)
    incoming = read_input(input_path) if input_path else []
    beats_per_s = swarm.values["swarm.freq_hz"]
    needs_order = swarm.values["mapping.mode"] == "per_firefly" or swarm.values["mapping.cc_order"] >= 0
    ticks = max(1, round(seconds / swarm.dt))
    stamped: list[tuple[int, list[int]]] = []
    per_tick = swarm.values["input.max_per_tick"]  # as the daemon bounds what it polls per tick
    next_in = 0
    for k in range(ticks):
        handled = 0
        while next_in < len(incoming) and incoming[next_in][0] < (k + 1) * swarm.dt:
            at, message = incoming[next_in]
            if handled < per_tick:
                inputs.apply(message, min(max(at / swarm.dt - k, 0.0), 1.0), swarm)
                handled += 1
            next_in += 1
        swarm.step()
        ids, times = swarm.flashes()
        r = swarm.order_parameter() if needs_order else 0.0
        _stamp(mapper, mapper.tick(k, ids, times, r), beats_per_s, stamped)
    _stamp(mapper, mapper.panic(ticks), beats_per_s, stamped)
    midi = _midi_file(stamped, beats_per_s, swarm.values)
    summary = {
        "notes": mapper.notes_out,
        "dropped_notes": mapper.dropped_notes,
        "flashes": swarm.flashes_total,
        "events": len(stamped),
        "input_notes": inputs.accepted,
        "seconds": ticks * swarm.dt,
        "bpm": beats_per_s * 60.0,
        "wall_s": time.perf_counter() - started,
    }
    return midi, summary


def _stamp(mapper: Mapper, count: int, beats_per_s: float, out: list[tuple[int, list[int]]]) -> None:
    """Append the mapper's events as (absolute file tick, bytes), leaving out real-time messages."""
    events = mapper.events
    for i in range(count):
        message = events.message(i)
        if message[0] < 0xF8:
            out.append((round(float(events.time_s[i]) * beats_per_s * TICKS_PER_BEAT), list(message)))


def _midi_file(stamped: list[tuple[int, list[int]]], beats_per_s: float, values: dict[str, Any]) -> mido.MidiFile:
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
    return midi


def render(values: dict[str, Any], seconds: float, input_path: Path | None = None) -> mido.MidiFile:
    """Run the swarm for ``seconds`` and return what it played as a MIDI file."""
    return _render(values, seconds, input_path)[0]


def write_render(values: dict[str, Any], seconds: float, out_path: Path, input_path: Path | None = None) -> dict[str, Any]:
    """Render to ``out_path``; return a summary: notes, flashes, seconds, wall_s and more."""
    midi, summary = _render(values, seconds, input_path)
    midi.save(out_path)
    return {**summary, "path": str(out_path)}
