"""`firefly-midi ctl` with its real parser against a real daemon: what it prints, and its exit codes."""

from __future__ import annotations

import json
import re
import sys
import time

from firefly_midi import control, presets
from firefly_midi.control import request

from .support import SPEC_FRAME_FIELDS, N, ctl, eventually, status, unsent


def test_ctl_exit_codes(path, folder, capsys):
    assert ctl(path, "set", "swarm.coupling", "0.2") == 0
    assert capsys.readouterr().out.strip() == "swarm.coupling = 0.2"
    assert ctl(path, "get", "swarm.n") == 0
    assert capsys.readouterr().out.strip() == str(N)

    assert ctl(path, "set", "swarm.coupling", "1000") == 2
    captured = capsys.readouterr()
    assert "swarm.coupling must be a number in 0..100" in captured.err and not captured.out
    assert ctl(path, "preset", "no-such-preset") == 2
    assert "no preset named 'no-such-preset'" in capsys.readouterr().err

    nowhere = folder / "nobody-here.sock"
    assert ctl(nowhere, "status") == 3
    assert f"no firefly-midi daemon on {nowhere}" in capsys.readouterr().err


def test_the_no_daemon_hint_names_the_command_not_a_guessed_path(folder, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(folder / "venv" / "bin" / "firefly-midi"), "ctl", "status"])
    monkeypatch.chdir(folder)
    assert ctl(folder / "nobody-here.sock", "status") == 3
    err = capsys.readouterr().err
    assert err.startswith("firefly-midi ctl: no firefly-midi daemon on ") and err.rstrip().endswith("start one with `firefly-midi run`")
    assert "venv" not in err


def test_ctl_presets_save_and_preset(own, capsys):
    _, path = own
    assert ctl(path, "presets") == 0
    listed = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines())
    assert listed == request(path, "presets") and "pulse-sine" in listed
    assert ctl(path, "save", "ctl-kept") == 0
    assert capsys.readouterr().out.strip() == f"saved {presets.user_dir() / 'ctl-kept.toml'}"
    assert ctl(path, "--json", "presets") == 0
    assert json.loads(capsys.readouterr().out)["ctl-kept"] == str(presets.user_dir() / "ctl-kept.toml")
    assert ctl(path, "preset", "ctl-kept") == 0
    assert capsys.readouterr().out.strip() == "switching to preset ctl-kept"
    eventually(lambda: status(path)["preset"] == "ctl-kept")
    assert ctl(path, "save", "../escape") == 2
    assert "preset name" in capsys.readouterr().err


def test_ctl_pause_panic_reset_resume(own, capsys):
    _, path = own
    eventually(lambda: status(path)["notes_out"] > 0, timeout=10)
    assert ctl(path, "pause") == 0
    assert capsys.readouterr().out.strip() == "paused"
    eventually(lambda: status(path)["paused"])
    before = unsent(path)
    assert ctl(path, "panic") == 0
    assert capsys.readouterr().out.strip() == "every note ended"
    eventually(lambda: unsent(path) == before + 1)  # All Notes Off on channel 3
    assert ctl(path, "forward", "5") == 0
    assert capsys.readouterr().out.strip() == "forwarding 5 s"
    eventually(lambda: status(path)["time_s"] >= 5)
    assert ctl(path, "reset") == 0
    assert capsys.readouterr().out.strip() == "the swarm was drawn afresh"
    eventually(lambda: status(path)["time_s"] == 0)
    assert ctl(path, "resume") == 0
    assert capsys.readouterr().out.strip() == "playing"
    eventually(lambda: not status(path)["paused"] and status(path)["time_s"] > 0)


def test_ctl_learnbeats_arms_note_learning(own, capsys):
    daemon, path = own
    assert ctl(path, "learnbeats", "3") == 0
    assert capsys.readouterr().out.strip() == "play 3 different drums on the input: they will be the beats"
    eventually(lambda: daemon.player.note_learner.count == 3)
    assert ctl(path, "learnbeats", "0") == 2, "at least one note"


def test_ctl_learn_and_unlearn(own, capsys):
    _, path = own
    assert ctl(path, "learn", "swarm.coupling", "0", "0.5") == 0
    assert capsys.readouterr().out.strip() == "move a controller on the input to bind it to swarm.coupling (0.0..0.5)"
    assert ctl(path, "learn", "swarm.model") == 2
    assert "swarm.model" in capsys.readouterr().err
    binding = {"cc": 74, "channel": 0, "key": "swarm.coupling", "lo": 0.0, "hi": 0.5}
    assert ctl(path, "set", "learn", json.dumps([binding])) == 0
    capsys.readouterr()
    eventually(lambda: request(path, "get", key="learn") == [binding])
    assert ctl(path, "unlearn", "swarm.coupling") == 0
    assert capsys.readouterr().out.strip() == "forgot 1 controller(s) bound to swarm.coupling"
    eventually(lambda: request(path, "get", key="learn") == [])
    assert ctl(path, "--json", "unlearn", "swarm.coupling") == 0
    assert json.loads(capsys.readouterr().out) == {"removed": 0}


def test_ctl_timeout_bounds_the_wait_for_a_silent_daemon(daemon, folder, capsys):
    silent = control.serve(daemon, folder / "silent.sock")  # claimed, not started: it accepts, nobody replies
    try:
        for argv in (("--timeout", "0.5", "status"), ("watch", "--timeout", "0.5", "--count", "1")):
            started = time.monotonic()
            assert ctl(silent.path, *argv) == 3
            assert time.monotonic() - started < 3.0
            err = capsys.readouterr().err
            assert err.strip() == f"firefly-midi ctl: the firefly-midi daemon on {silent.path} did not answer within 0.5 s"
    finally:
        silent.close()


def test_ctl_status_json_and_human(path, capsys):
    assert ctl(path, "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["n"] == N and {"order_parameter", "tempo_bpm", "lateness_us", "ports", "ticks"} <= set(status)
    assert ctl(path, "--json", "get", "swarm.n") == 0
    assert json.loads(capsys.readouterr().out) == N
    assert ctl(path, "status") == 0
    human = capsys.readouterr().out
    assert "fireflies" in human and "bpm" in human and "lateness" in human
    assert len(human.splitlines()) <= 8


def test_ctl_watch_prints_frames(path, capsys):
    assert ctl(path, "watch", "--fps", "60", "--count", "3", "--json") == 0
    frames = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(frames) == 3 and all(set(f) >= SPEC_FRAME_FIELDS for f in frames)


def test_ctl_watch_prints_a_summary_line_a_frame(path, capsys):
    assert ctl(path, "watch", "--fps", "60", "--count", "4") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    summary = re.compile(r"t +\d+\.\d\d s  r [01]\.\d{3}  tempo +\d+\.\d bpm  flashes +\d+  notes \d+  dropped frames \d+")
    assert all(summary.fullmatch(line) for line in lines), lines
    times = [float(line.split()[1]) for line in lines]
    assert times == sorted(times)


def test_ctl_is_wired_into_the_command_line(path, capsys):
    from firefly_midi import cli

    assert cli.main(["ctl", "--socket", str(path), "get", "swarm.n"]) == 0
    assert capsys.readouterr().out.strip() == str(N)
    assert cli.main(["ctl", "--socket", str(path), "set", "swarm.n", "0"]) == 2
