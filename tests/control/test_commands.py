"""The commands do what the spec says, on a daemon (the shared one, or the test's own where the test
changes its preset, pause state or life), and the spec is the one table ctl, OSC and the docs show."""

from __future__ import annotations

import argparse
from pathlib import Path

from firefly_midi import control, presets
from firefly_midi.control import request
from firefly_midi.ctl import add_ctl_parser, ctl_markdown

from .support import OWN_N, N, eventually, first_frame, paused, status, unsent


def test_get_set_round_trip_is_visible_in_status(path, daemon):
    assert request(path, "set", key="swarm.coupling", value=0.25) == 0.25
    assert request(path, "set", key="swarm.coupling", value="0.2") == 0.2  # text, as on the command line
    eventually(lambda: request(path, "get", key="swarm.coupling") == 0.2)  # applied at the next tick
    eventually(lambda: request(path, "status")["params"]["swarm.coupling"] == 0.2)
    everything = request(path, "get")
    assert everything["swarm.n"] == N and everything["swarm.coupling"] == 0.2
    assert request(path, "set", key="mapping.channels", value=[1, 2]) == [1, 2]
    assert request(path, "set", key="mapping.channels", value="1") == [1]


def test_save_then_load_the_saved_preset(own):
    _, path = own
    request(path, "set", key="swarm.coupling", value=0.2)
    eventually(lambda: request(path, "get", key="swarm.coupling") == 0.2)
    saved = request(path, "save", name="ctl-saved")
    assert Path(saved["path"]) == presets.user_dir() / "ctl-saved.toml" and Path(saved["path"]).is_file()
    assert request(path, "presets")["ctl-saved"] == saved["path"]
    request(path, "set", key="swarm.coupling", value=0.3)
    eventually(lambda: request(path, "get", key="swarm.coupling") == 0.3)
    assert request(path, "preset", name="ctl-saved") == {"preset": "ctl-saved"}
    now = eventually(lambda: (s := status(path))["preset"] == "ctl-saved" and s)
    assert now["n"] == OWN_N and now["params"]["swarm.coupling"] == 0.2


def test_pause_holds_the_swarm_forward_runs_it_ahead_resume_plays_on(own):
    _, path = own
    paused(path)
    held = status(path)
    later = eventually(lambda: (s := status(path))["ticks"] > held["ticks"] + 10 and s)
    assert later["time_s"] == held["time_s"], "the clock ticks, the swarm does not step"
    assert request(path, "forward", seconds=10) == {"seconds": 10}
    eventually(lambda: status(path)["time_s"] >= held["time_s"] + 10)
    assert request(path, "resume") == {}
    ahead = eventually(lambda: not (s := status(path))["paused"] and s)
    eventually(lambda: status(path)["time_s"] > ahead["time_s"])


def test_panic_sends_all_notes_off_on_every_channel_used(own):
    _, path = own
    eventually(lambda: status(path)["notes_out"] > 0, timeout=10)  # channel 3, its only one, has played
    paused(path)  # nothing sounds now, and nothing new will: the count holds still
    before = unsent(path)
    assert request(path, "panic") == {}
    eventually(lambda: unsent(path) > before)
    ticks = status(path)["ticks"]
    eventually(lambda: status(path)["ticks"] > ticks + 10)
    assert unsent(path) == before + 1, "no note to end: one All Notes Off, on channel 3"


def test_reset_draws_the_same_start_again(own):
    _, path = own
    paused(path)
    request(path, "forward", seconds=10)
    eventually(lambda: status(path)["time_s"] >= 10)
    moved = first_frame(path)["phase"]
    assert request(path, "reset") == {}
    eventually(lambda: status(path)["time_s"] == 0)
    start = first_frame(path)["phase"]
    request(path, "forward", seconds=5)
    eventually(lambda: status(path)["time_s"] >= 5)
    request(path, "reset")
    eventually(lambda: status(path)["time_s"] == 0)
    assert first_frame(path)["phase"] == start != moved


def test_stop_asks_the_daemon_to_exit(own):
    daemon, path = own
    assert request(path, "stop") == {}
    assert daemon.stopped.is_set()  # run_forever would now silence everything and return 0


def test_the_tables_in_docs_are_the_command_spec():
    from firefly_midi.osc import osc_markdown

    docs = (Path(__file__).parents[2] / "docs" / "control.md").read_text()
    for name, table in (("commands", control.commands_markdown()), ("ctl", ctl_markdown()), ("OSC", osc_markdown())):
        assert table in docs, f"docs/control.md's {name} table differs from the spec; it should read:\n{table}"


def test_ctl_and_osc_offer_the_commands_of_the_spec():
    from firefly_midi.osc import OSC_COMMANDS

    parser = argparse.ArgumentParser(prog="firefly-midi")
    ctl_parser = add_ctl_parser(parser.add_subparsers(dest="command"))
    subcommands = next(a for a in ctl_parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(subcommands) == {c.name for c in control.COMMANDS.values() if c.ctl} | {"watch"}
    assert set(OSC_COMMANDS) == {f"/firefly/{c.name}" for c in control.COMMANDS.values() if c.osc}
    assert {"subscribe", "unsubscribe"}.isdisjoint(subcommands) and "/firefly/subscribe" not in OSC_COMMANDS
