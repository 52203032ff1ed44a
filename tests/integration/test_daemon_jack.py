"""The daemon on a real (private, dummy-driver) JACK server, heard by a peer in another process."""

from __future__ import annotations

import contextlib
import json
import signal
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import status_lines

pytestmark = pytest.mark.jack

NOTE_ON, NOTE_OFF, CONTROL = 0x90, 0x80, 0xB0
ALL_NOTES_OFF = 123


def note_traffic(lines: list[dict]) -> list[tuple[float, int, int, int, int]]:
    """(t, kind, channel, note, velocity) of the note messages received; note-on with velocity 0 is an off."""
    out = []
    for line in lines:
        m = line.get("m")
        if not m or len(m) != 3 or m[0] & 0xF0 not in (NOTE_ON, NOTE_OFF):
            continue
        kind = NOTE_ON if m[0] & 0xF0 == NOTE_ON and m[2] > 0 else NOTE_OFF
        out.append((line["t"], kind, m[0] & 0x0F, m[1], m[2]))
    return out


def assert_every_note_ended(lines: list[dict]) -> tuple[int, set[int]]:
    """Every note-on is answered by a note-off, never overlapping itself; returns (notes, channels)."""
    sounding: set[tuple[int, int]] = set()
    ons, channels = 0, set()
    traffic = note_traffic(lines)
    for i, (t, kind, channel, note, _) in enumerate(traffic):
        key = (channel, note)
        if kind == NOTE_ON:
            before = "\n".join(map(str, traffic[max(0, i - 12) : i + 1]))
            assert key not in sounding, f"note {note} on channel {channel + 1} started again while sounding (t={t:.3f}); heard:\n{before}"
            sounding.add(key)
            ons += 1
            channels.add(channel)
        else:
            sounding.discard(key)
    assert not sounding, f"hanging notes (channel, note): {sorted(sounding)}"
    return ons, channels


def hanging_at_the_end(lines: list[dict]) -> set[tuple[int, int]]:
    """Notes still sounding when the peer stopped; a note-off or All Notes Off (CC 123) ends them.

    Looser than ``assert_every_note_ended``: for a peer that joins a stream already playing (after the
    server came back, or its connection was made again), the first note-offs it hears may answer
    note-ons it never heard.
    """
    sounding: set[tuple[int, int]] = set()
    for line in lines:
        m = line.get("m")
        if not m or len(m) != 3:
            continue
        kind, channel = m[0] & 0xF0, m[0] & 0x0F
        if kind == 0x90 and m[2] > 0:
            sounding.add((channel, m[1]))
        elif kind in (0x80, 0x90):
            sounding.discard((channel, m[1]))
        elif kind == 0xB0 and m[1] == 123:
            sounding = {key for key in sounding if key[0] != channel}
    return sounding


def all_notes_off_channels(lines: list[dict]) -> set[int]:
    return {line["m"][0] & 0x0F for line in lines if line.get("m", [0])[0] & 0xF0 == CONTROL and line["m"][1] == ALL_NOTES_OFF}


def heard(proc) -> list[dict]:
    """The peer's JSON lines so far (a line still being written is left for the next look)."""
    lines = []
    for line in proc.out_path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            lines.append(json.loads(line))
    return lines


def note_ons(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line.get("m", [0])[0] & 0xF0 == NOTE_ON and len(line["m"]) == 3 and line["m"][2] > 0]


def wait_until(condition, timeout: float, what: str, log=lambda: "") -> None:
    """Poll ``condition`` until it holds; fail saying ``what`` did not happen, with ``log()``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s\n{log()[-3000:]}")
        time.sleep(0.05)


def test_notes_arrive_paired_and_sigterm_silences_everything(daemon, peer):
    proc = daemon("--preset", "pulse-sine", "--set", "mapping.note_ms=400", "--set", "swarm.freq_hz=4")
    listener = peer(proc.client, "--seconds", "30")
    # 5 notes (a chord can bring them at once), and a status line to read the scheduling from
    wait_until(lambda: len(note_ons(heard(listener))) >= 5 and status_lines(proc.log()), 20, "5 notes did not arrive", proc.log)
    proc.stop(signal.SIGTERM)
    _, log, code = proc.finish()
    listener.stop()  # after the daemon's end: it has heard every note-off
    lines, _, _ = listener.finish()
    assert code == 0, log[-3000:]
    notes, channels = assert_every_note_ended(lines)
    assert notes >= 5, f"only {notes} notes arrived; daemon log:\n{log[-2000:]}"
    assert channels <= all_notes_off_channels(lines), "All Notes Off must follow on every channel used"
    assert "every one of them ended" in log
    # This server runs without real-time priority (conftest.JACKD): a real-time tick would outrank it.
    statuses = status_lines(log)
    assert statuses and not statuses[-1]["realtime"], "the tick thread went real-time above a JACK that is not"
    assert "as JACK runs without real-time priority" in log


def test_sigterm_mid_chord_sends_the_pending_note_offs(daemon, peer):
    # Notes of 20 s: at SIGTERM every note played is still sounding, so only the daemon's shutdown can end it.
    proc = daemon("--preset", "pulse-sine", "--set", "mapping.note_ms=10000", "--set", "swarm.freq_hz=4")
    listener = peer(proc.client, "--seconds", "30")
    wait_until(lambda: len(note_ons(heard(listener))) >= 2, 20, "no notes arrived", proc.log)
    proc.stop(signal.SIGTERM)
    sigterm_at = time.monotonic() - listener.started
    _, log, code = proc.finish()
    listener.stop()  # after the daemon's end: it has heard every note-off
    lines, _, _ = listener.finish()
    assert code == 0, log[-3000:]
    traffic = note_traffic(lines)
    assert any(kind == NOTE_ON for _, kind, *_ in traffic), "no notes arrived before SIGTERM"
    offs_after = [t for t, kind, *_ in traffic if kind == NOTE_OFF and t >= sigterm_at - 0.2]
    assert offs_after, "the pending note-offs must be sent on SIGTERM"
    assert_every_note_ended(lines)


def test_sigint_also_stops_cleanly(daemon, peer):
    proc = daemon("--preset", "pulse-sine", "--set", "swarm.freq_hz=4", "--set", "mapping.note_ms=5000")
    listener = peer(proc.client, "--seconds", "30")
    wait_until(lambda: len(note_ons(heard(listener))) >= 1, 20, "no notes arrived", proc.log)
    proc.stop(signal.SIGINT)
    _, log, code = proc.finish()
    listener.stop()  # after the daemon's end: it has heard every note-off
    lines, _, _ = listener.finish()
    assert code == 0, log[-3000:]
    assert_every_note_ended(lines)


def onsets(lines: list[dict], after: float) -> np.ndarray:
    """Times of the swarm's bursts: note-ons merged when closer than 0.15 s."""
    times = sorted(t for t, kind, *_ in note_traffic(lines) if kind == NOTE_ON and t >= after)
    bursts = [t for i, t in enumerate(times) if i == 0 or t - times[i - 1] > 0.15]
    return np.array(bursts)


ENTRAIN_BPMS = (60, 120, 180)  # the ends and the middle of the range the entrain preset promises


def test_a_steady_pulse_into_in_entrains_the_swarm(daemon, peer):
    """One daemon and one drummer per tempo, all at once (30 s of playing each, not one after another).

    30 s, not less: at 20 s a CI run failed when one daemon's input opened deaf while the server
    stalled, and that daemon heard none of its drummer's notes."""
    runs = []
    for bpm in ENTRAIN_BPMS:
        socket = Path(tempfile.mkdtemp(prefix="ffm-")) / "c.sock"  # one control socket each (the default is one per user)
        proc = daemon("--preset", "entrain", "--socket", str(socket))  # about 55 BPM on its own
        runs.append((bpm, proc, peer(proc.client, "--seconds", "30", "--pulse-bpm", str(bpm), "--pulse-after", "0.5")))
    tempos = {}
    for bpm, proc, listener in runs:
        lines, _, _ = listener.finish(timeout=60)
        proc.stop()
        _, log, code = proc.finish()
        assert code == 0, log[-3000:]
        statuses = status_lines(log)
        assert statuses and statuses[-1]["flashes_in"] > 0, "the daemon must count the incoming notes as flashes"
        bursts = onsets(lines, after=20.0)
        assert len(bursts) >= 5, f"too few bursts in the last 10 s at {bpm} BPM: {bursts}"
        tempos[bpm] = 60.0 / np.median(np.diff(bursts))
    off = {bpm: round(tempo, 1) for bpm, tempo in tempos.items() if tempo != pytest.approx(bpm, rel=0.03)}
    assert not off, f"swarm tempo against the pulse's (BPM): {off}; all: {tempos}"
