"""Render equals live: every shipped preset, played by the daemon on a real JACK server and heard by a
synth in another process, gives the same notes in the same order as ``render`` of the same values.

One daemon plays them one after another at one tick length (a switch keeps the running tick):
paused, switched to the preset (a fresh swarm and mapper, as render starts), resumed for three
seconds of swarm time, paused again.  Each pause ends in All
Notes Off, which splits the synth's log into one stretch per preset.  A stretch in which the daemon
itself reports skipped ticks (played silently to keep wall time) is played again: that is the
machine falling behind, not the pipeline differing.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest

from firefly_midi import presets
from firefly_midi.control import request
from firefly_midi.player import Player
from firefly_midi.render import play_offline

pytestmark = [pytest.mark.jack, pytest.mark.timeout(600)]

PLAY_S = 3.0
TRIES = 4
TICK_MS = 10  # the daemon's tick for all of them (render uses the same): shorter ones skip ticks on a loaded 2-core machine


def is_all_notes_off(m: list[int]) -> bool:
    return m[0] & 0xF0 == 0xB0 and m[1] == 123


def note_messages(messages: list[list[int]]) -> list[list[int]]:
    """Notes and controllers (r on a CC), without All Notes Off and clock: what the mapping plays."""
    return [m for m in messages if 0x80 <= m[0] <= 0xBF and not is_all_notes_off(m)]


def stretches(messages: list[list[int]]) -> list[list[list[int]]]:
    """The mapping's messages between All Notes Off blocks, in order (empty ones left out)."""
    out, current = [], []
    for m in messages:
        if is_all_notes_off(m):
            if current:
                out.append(current)
            current = []
        elif note_messages([m]):
            current.append(m)
    if current:
        out.append(current)
    return out


def up_to_last_note_on(notes: list[list[int]]) -> list[list[int]]:
    last = max((i for i, m in enumerate(notes) if m[0] & 0xF0 == 0x90 and m[2] > 0), default=-1)
    return notes[: last + 1]


def rendered(name: str) -> list[list[int]]:
    player = Player(presets.resolve(name, [f"clock.tick_ms={TICK_MS}"]))
    return note_messages([m for _, m in play_offline(player, round((PLAY_S + 1.0) / player.swarm.dt))])


def play(socket: Path, name: str) -> bool:
    """Play ``name`` from its start for PLAY_S of swarm time; True if no tick was skipped meanwhile."""
    request(socket, "pause")
    request(socket, "preset", name=name)
    deadline = time.monotonic() + 30
    while request(socket, "status")["preset"] != name or request(socket, "status")["time_s"] > 0.0:
        assert time.monotonic() < deadline, "the switch never landed"
        time.sleep(0.02)
    before = request(socket, "status")
    request(socket, "resume")
    while (now := request(socket, "status"))["time_s"] < PLAY_S:
        assert time.monotonic() < deadline, f"{name} did not play {PLAY_S} s of swarm time"
        time.sleep(0.2)
    request(socket, "pause")
    return now["caught_up_ticks"] == before["caught_up_ticks"] and now["lost_ticks"] == before["lost_ticks"]


def test_every_shipped_preset_plays_live_what_it_renders(daemon, peer):
    socket = Path(tempfile.mkdtemp(prefix="ffm-")) / "c.sock"
    proc = daemon("--preset", "pulse-sine", "--fresh", "--socket", str(socket), "--no-input", "--set", f"clock.tick_ms={TICK_MS}")
    request(socket, "pause")
    listener = peer(proc.client, "--seconds", "600")
    names = sorted(p.stem for p in presets.shipped_dir().glob("*.toml"))
    kept: list[str] = []  # the preset of each stretch the synth will hear, in order
    valid: list[bool] = []
    for name in names:
        for _ in range(TRIES):
            valid.append(play(socket, name))
            kept.append(name)
            if valid[-1]:
                break
    request(socket, "stop")
    listener.stop()
    lines, _, _ = listener.finish(timeout=60)
    heard = stretches([line["m"] for line in lines if "m" in line])
    assert len(heard) == len(kept), f"{len(heard)} stretches heard for {len(kept)} played: {kept}"
    checked = {}
    for name, ok, live in zip(kept, valid, heard, strict=True):
        if not ok:
            continue
        live = up_to_last_note_on(live)
        offline = rendered(name)
        assert live, f"{name}: no note in {PLAY_S} s"
        assert live == offline[: len(live)], f"{name}: live and render differ from note {first_difference(live, offline)}"
        checked[name] = sum(m[0] & 0xF0 == 0x90 for m in live)
    assert set(checked) == set(names), f"presets never played without skipped ticks: {set(names) - set(checked)}"
    assert sum(checked.values()) >= 60, checked


def first_difference(a: list[list[int]], b: list[list[int]]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
