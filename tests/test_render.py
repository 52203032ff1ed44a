"""Offline render: the file holds exactly what the mapper played, at the flashes' times, reproducibly."""

import mido
import numpy as np
import pytest

from firefly_midi import presets
from firefly_midi.render import TICKS_PER_BEAT, render, write_render
from firefly_midi.swarm import Swarm


def absolute(midi):
    """(absolute file tick, message) of every message of a type-0 file."""
    now, out = 0, []
    for message in midi.tracks[0]:
        now += message.time
        out.append((now, message))
    return out


def note_ons(midi):
    return [(t, m) for t, m in absolute(midi) if m.type == "note_on" and m.velocity > 0]


def assert_paired(midi):
    sounding = set()
    for _, m in absolute(midi):
        key = (getattr(m, "channel", None), getattr(m, "note", None))
        if m.type == "note_on" and m.velocity > 0:
            assert key not in sounding
            sounding.add(key)
        elif m.type == "note_off" or m.type == "note_on":
            sounding.remove(key)
    assert not sounding


def test_render_holds_every_note_paired_with_the_tempo(tmp_path):
    values = presets.resolve("ermentrout-800", ["swarm.n=200"])
    summary = write_render(values, 8.0, tmp_path / "out.mid")
    midi = mido.MidiFile(tmp_path / "out.mid")
    assert midi.type == 0 and midi.ticks_per_beat == TICKS_PER_BEAT
    tempos = [m.tempo for m in midi.tracks[0] if m.type == "set_tempo"]
    assert tempos == [round(1_000_000 / values["swarm.freq_hz"])]
    assert summary["notes"] > 20 and len(note_ons(midi)) == summary["notes"]
    assert_paired(midi)
    assert midi.length == pytest.approx(8.0, abs=0.01)


def test_same_arguments_same_bytes(tmp_path):
    values = presets.resolve("pulse-sine", ["swarm.n=50"])
    write_render(values, 4.0, tmp_path / "a.mid")
    write_render(values, 4.0, tmp_path / "b.mid")
    write_render({**values, "swarm.seed": 1}, 4.0, tmp_path / "c.mid")
    assert (tmp_path / "a.mid").read_bytes() == (tmp_path / "b.mid").read_bytes()
    assert (tmp_path / "a.mid").read_bytes() != (tmp_path / "c.mid").read_bytes()


def test_note_times_are_the_flash_times():
    values = presets.resolve("desync-tdma", ["mapping.clock_out=false"])  # per_firefly: one note a flash
    f = values["swarm.freq_hz"]
    swarm, flash_ticks = Swarm(values), []
    for k in range(5000):
        swarm.step()
        flash_ticks += [round((k + t) * swarm.dt * f * TICKS_PER_BEAT) for t in swarm.flashes()[1]]
    ons = note_ons(render(values, 5.0))
    assert len(ons) >= 0.95 * len(flash_ticks)
    flash_ticks = np.array(sorted(flash_ticks))
    for at, _ in ons:
        assert np.abs(flash_ticks - at).min() <= 1


def pulse_file(path, bpm, seconds):
    """A steady pulse of short notes, written at 480 ticks per beat with its own tempo."""
    midi = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0)])
    for beat in range(int(seconds * bpm / 60)):
        track.append(mido.Message("note_on", note=60, velocity=100, time=0 if beat == 0 else 420))
        track.append(mido.Message("note_off", note=60, velocity=0, time=60))
    midi.tracks.append(track)
    midi.save(path)
    return path


def test_an_input_pulse_drives_the_render(tmp_path):
    values = presets.resolve("entrain")
    pulse = pulse_file(tmp_path / "pulse.mid", 120, 12)
    alone = write_render(values, 12.0, tmp_path / "alone.mid")
    driven = write_render(values, 12.0, tmp_path / "driven.mid", input_path=pulse)
    assert alone["input_notes"] == 0 and driven["input_notes"] == 24
    assert (tmp_path / "alone.mid").read_bytes() != (tmp_path / "driven.mid").read_bytes()
    ticks_per_s = values["swarm.freq_hz"] * TICKS_PER_BEAT
    late = [t / ticks_per_s for t, _ in note_ons(mido.MidiFile(tmp_path / "driven.mid")) if t / ticks_per_s > 6]
    beats = np.unique(np.round(np.array(late) * 2))  # every note on a half-second grid: the pulse's
    assert np.abs(np.array(late) * 2 - np.round(np.array(late) * 2)).max() < 0.05
    assert len(beats) >= 11
