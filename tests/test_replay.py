"""daemon --record, render --replay: a live session with a drummer and commands replays exactly."""

from __future__ import annotations

import json
import time
from collections import deque

import mido
import pytest

from firefly_midi import params as P
from firefly_midi import presets
from firefly_midi.cli import main
from firefly_midi.daemon import Daemon
from firefly_midi.player import Player
from firefly_midi.ports import PortConfig, Ports
from firefly_midi.replay import RecordingError, replay
from firefly_midi.testing import drummers as D

pytestmark = pytest.mark.timeout(120)


class Tap(Ports):
    """Ports that keep what the daemon sends and hand it what the test plays (they open nothing)."""

    def __init__(self):
        super().__init__(PortConfig())
        self.log: list[list[int]] = []
        self.heard: deque[list[int]] = deque()

    def open(self) -> None:
        self.state, self.problem = "none", "test tap"

    def send(self, message, time_s=None) -> None:
        self.log.append(list(message))

    def poll(self):
        return (self.heard.popleft(), 0.0) if self.heard else None


class Heard(deque):
    """One tick's input, as a player polls it."""

    def poll(self):
        return self.popleft() if self else None


def wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.002)
    return condition()


def live_session(path, preset: str = "follow-drummer") -> tuple[Daemon, list[list[int]]]:
    """A daemon recording to ``path`` hears a drummer for 6 s of swarm time, with commands on the way."""
    daemon = Daemon(presets.resolve(preset, ["clock.tick_ms=5"]), preset)
    tap = daemon.ports = Tap()
    daemon.record(path)
    drummer = D.play("live", lambda t: 110.0, 6.0)
    daemon.start()
    try:
        for i, (at, message) in enumerate(drummer.hits):
            assert wait_for(lambda at=at: daemon.swarm.time_s >= at), "the daemon did not play"
            tap.heard.append(message)
            if i == len(drummer.hits) // 2:
                daemon.set("mapping.velocity_max", 90)  # a command on the tick, halfway
        daemon.pause()
        daemon.resume()
        daemon.learn_beats(2, 4.0)  # the drummer has stopped: a kick and a snare are the beats from now on
        assert wait_for(lambda: daemon.player.note_learner.count == 2)
        tap.heard.extend([[0x99, D.KICK, 100], [0x99, D.SNARE, 100]])
        assert wait_for(lambda: daemon.values["follow.notes"] == (D.KICK, D.SNARE))
        assert wait_for(lambda: daemon.swarm.time_s >= 6.5)
    finally:
        daemon.stop()
    return daemon, tap.log


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    path = tmp_path_factory.mktemp("record") / "set.jsonl"
    daemon, sent = live_session(path)
    return path, daemon, sent


def test_a_recorded_session_replays_the_same_notes_order_and_clock(session):
    path, daemon, sent = session
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["preset"] == "follow-drummer" and lines[-1]["end"] and lines[-1]["lost"] == 0
    assert sum("m" in line for line in lines) > 50, "the drummer's hits are in the recording"
    assert {line["do"] for line in lines if "do" in line} >= {"all_notes_off", "set", "pause", "resume", "silence", "learnbeats", "latency"}
    assert daemon.player.follower.locked
    assert daemon.player.follower.lead_s == pytest.approx(0.005), "live, the beats lead by the daemon's latency: a 5 ms tick here"
    replayed = [m for _, m in replay(path)]
    assert sum(m[0] == 0xF8 for m in sent) > 100, "the session sent MIDI clock"
    assert [0xFB] in sent and any(m[0] == 0xF2 for m in sent), "after the pause: Song Position and Continue"
    assert replayed == sent, "render --replay plays exactly what the daemon sent"


def test_render_replay_writes_the_session_to_a_midi_file(session, tmp_path, capsys):
    path, _, sent = session
    out = tmp_path / "again.mid"
    assert main(["render", "--replay", str(path), "-o", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["recorded_preset"] == "follow-drummer"
    in_file = [m.bytes() for m in mido.MidiFile(out) if not m.is_meta]
    assert in_file == [m for m in sent if m[0] < 0xF0], "every channel message, in order (no clock, Song Position)"


def test_the_same_drummer_replays_over_another_preset(session):
    path = session[0]
    other = presets.resolve("entrain", ["clock.tick_ms=5"])
    notes = [m for _, m in replay(path, other) if m[0] & 0xF0 == 0x90]
    assert notes and all(m[1] in range(45, 70) for m in notes), "entrain's notes (A2 minor, two octaves)"


def test_a_file_that_is_not_a_recording_is_refused(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"hello": 1}\n')
    with pytest.raises(RecordingError, match="not a firefly-midi recording"):
        replay(path)


def test_ticks_the_live_clock_skipped_are_skipped_in_the_replay(tmp_path):
    """A jump in the recording replays as the same jump: the player catches up silently, as it did live."""
    values = presets.resolve("follow-drummer", ["clock.tick_ms=5"])
    path = tmp_path / "jump.jsonl"
    header = {"recording": 1, "preset": "follow-drummer", "seed": 0, "values": P.jsonable(values)}
    hits = [(k, [0x99, 36, 100], 0.5) for k in range(0, 1200, 120)]
    lines = [header, *({"k": k, "m": m, "f": f} for k, m, f in hits), {"k": 700, "jump": 650}, {"k": 1199, "end": True}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    player, played = Player(values), []
    for k in [*range(0, 651), *range(700, 1200)]:
        count = player.tick(k, Heard([(m, f) for at, m, f in hits if at == k]))
        played += player.events.as_list()[:count]
    count = player.silence()
    played += player.events.as_list()[:count]
    assert player.caught_up_ticks > 0
    assert replay(path) == played
