"""The daemon in-process: it plays without MIDI, applies commands at the tick, survives errors, ends notes.

These tests run the real daemon and tick thread with the port layer left portless (no MIDI backend
can be opened here), recording what would have been sent.  tests/integration/ does the same against
real JACK ports from other processes.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque

import pytest

from firefly_midi import automation, presets
from firefly_midi import params as P
from firefly_midi.daemon import Daemon
from firefly_midi.ports import PortConfig, Ports


class Tap(Ports):
    """Ports that record every message they are asked to send, and hear what a test injects (they open nothing)."""

    def __init__(self):
        super().__init__(PortConfig())
        self.log: list[tuple[float, list[int]]] = []
        self.heard: deque[list[int]] = deque()

    def open(self) -> None:
        self.state, self.problem = "none", "test tap"

    def send(self, message, time_s=None) -> None:
        self.log.append((time.monotonic(), list(message)))

    def inject(self, message: list[int]) -> None:
        self.heard.append(message)

    def poll(self):
        return (self.heard.popleft(), 0.0) if self.heard else None


def make(preset: str = "pulse-sine", **overrides) -> Daemon:
    values = presets.resolve(preset, [f"{k}={v}" for k, v in overrides.items()])
    daemon = Daemon(values, preset)
    daemon.ports = Tap()
    return daemon


def playing(daemon: Daemon, seconds: float) -> Daemon:
    """Start the daemon and let it play ``seconds`` of swarm time (longer on a loaded machine)."""
    daemon.start()
    assert wait_for(lambda: daemon.swarm.time_s >= seconds, timeout=10 + 10 * seconds), "the daemon did not play"
    return daemon


def wait_for(condition, timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds: tests wait on what happened, not on how long it took."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


def sounding_after(log: list[tuple[float, list[int]]]) -> set[tuple[int, int]]:
    sounding = set()
    for _, m in log:
        if len(m) == 3 and m[0] & 0xF0 == 0x90 and m[2] > 0:
            sounding.add((m[0] & 15, m[1]))
        elif len(m) == 3 and (m[0] & 0xF0 == 0x80 or m[0] & 0xF0 == 0x90):
            sounding.discard((m[0] & 15, m[1]))
        elif len(m) == 3 and m[0] & 0xF0 == 0xB0 and m[1] == 123:
            sounding = {key for key in sounding if key[0] != m[0] & 15}
    return sounding


def test_without_any_midi_backend_the_daemon_still_plays(monkeypatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "firefly-midi-no-such-server")
    values = presets.resolve("pulse-sine", ["swarm.freq_hz=8"])
    daemon = Daemon(values, "pulse-sine", PortConfig(backend="jack"))
    playing(daemon, 0.6)
    status = daemon.status()
    daemon.stop()
    assert status["ports"]["state"] == "none"
    assert "jack" in status["ports"]["problem"]
    assert status["ticks"] > 0
    assert status["notes_out"] > 0 and status["ports"]["unsent"] > 0


def test_stop_ends_every_note_and_sends_all_notes_off_on_used_channels():
    daemon = playing(make("pulse-sine", **{"swarm.freq_hz": 8, "mapping.note_ms": 5000}), 0.8)
    daemon.stop()
    log = daemon.ports.log
    assert any(m[0] & 0xF0 == 0x90 for _, m in log)
    assert not sounding_after(log)
    used = {m[0] & 15 for _, m in log if m[0] & 0xF0 == 0x90}
    assert used <= {m[0] & 15 for _, m in log if m[0] & 0xF0 == 0xB0 and m[1] == 123}


def test_set_is_checked_in_the_caller_and_applied_at_the_next_tick():
    daemon = playing(make(), 0.1)
    try:
        with pytest.raises(P.ParamError, match=r"swarm\.coupling"):
            daemon.set("swarm.coupling", -1)
        daemon.set("swarm.coupling", 0.5)
        assert wait_for(lambda: daemon.swarm.values["swarm.coupling"] == 0.5)
        assert daemon.clock.running
    finally:
        daemon.stop()


def test_an_error_inside_the_tick_silences_notes_and_playing_goes_on():
    daemon = playing(make("pulse-sine", **{"swarm.freq_hz": 8, "mapping.note_ms": 5000}), 0.5)
    try:

        def broken():
            raise RuntimeError("a bug in a command")

        daemon.submit(broken)
        time.sleep(0.1)
        assert daemon.errors == 1
        assert daemon.clock.running
        ticks = daemon.clock.ticks
        time.sleep(0.1)
        assert daemon.clock.ticks > ticks
        silenced_at = next(t for t, m in daemon.ports.log if m[0] & 0xF0 == 0xB0 and m[1] == 123)
        assert not sounding_after([(t, m) for t, m in daemon.ports.log if t <= silenced_at])
    finally:
        daemon.stop()


def test_preset_switch_silences_the_old_preset_first():
    daemon = playing(make("pulse-sine", **{"swarm.freq_hz": 8, "mapping.note_ms": 5000}), 0.5)
    try:
        switch_at = time.monotonic()
        daemon.load(presets.resolve("ermentrout-800"), "ermentrout-800")
        deadline = time.monotonic() + 5
        while daemon.swarm.n != 800 and time.monotonic() < deadline:  # applied at the next tick
            time.sleep(0.01)
        assert daemon.preset == "ermentrout-800" and daemon.swarm.n == 800
        log = daemon.ports.log
        panic = next(i for i, (t, m) in enumerate(log) if t >= switch_at and m[0] & 0xF0 == 0xB0 and m[1] == 123)
        assert not sounding_after(log[: panic + 1]), "the old preset's notes must all end at the switch"
    finally:
        daemon.stop()


def test_automation_ramps_a_parameter_over_time():
    values = presets.resolve("pulse-sine")
    values["automation"] = automation.check_ramps([{"key": "swarm.freq_hz", "from": 2.0, "to": 1.0, "seconds": 0.5}])
    daemon = Daemon(values, "ramp")
    daemon.ports = Tap()
    playing(daemon, 0.0)
    try:
        assert wait_for(lambda: daemon.swarm.time_s >= 0.25)  # the ramp runs on swarm time, however loaded the machine
        middle = daemon.values["swarm.freq_hz"]
        assert wait_for(lambda: daemon.swarm.time_s >= 0.6)
        assert 1.2 < middle < 1.8
        assert daemon.values["swarm.freq_hz"] == pytest.approx(1.0)
        assert daemon.swarm.values["swarm.freq_hz"] == pytest.approx(1.0)
    finally:
        daemon.stop()


def test_control_calls_pause_resume_reset_and_forward():
    daemon = playing(make("pulse-sine", **{"swarm.freq_hz": 8}), 0.2)
    try:
        daemon.pause()
        time.sleep(0.05)
        assert daemon.paused and not sounding_after(daemon.ports.log)
        frozen = daemon.swarm.time_s
        time.sleep(0.05)
        assert daemon.swarm.time_s == frozen
        daemon.resume()
        daemon.forward(10.0)
        time.sleep(0.1)
        assert daemon.swarm.time_s > frozen + 10.0
        with pytest.raises(ValueError, match="forward"):
            daemon.forward(0)
        daemon.reset()
        time.sleep(0.05)
        assert daemon.swarm.time_s < 1.0
        assert daemon.clock.running
    finally:
        daemon.stop()


def test_telemetry_frames_carry_phases_and_every_flash_once():
    daemon = playing(make("pulse-sine", **{"swarm.freq_hz": 8, "swarm.n": 200}), 0.05)
    try:
        frame, cursor = daemon.telemetry_frame(-1, 64)
        assert frame["flashes"] == [] and len(frame["phase"]) <= 64 and frame["stride"] == 4
        assert all(-1 <= q < 65536 for q in frame["phase"])
        seen = 0
        for _ in range(10):
            time.sleep(0.05)
            frame, cursor = daemon.telemetry_frame(cursor, 64)
            seen += len(frame["flashes"])
            assert frame["flashes_lost"] == 0
            assert all(0 <= i < 200 for i, _ in frame["flashes"])
        assert seen > 0
        assert seen <= daemon.swarm.flashes_total
        assert set(frame) >= {"order_parameter", "tempo_bpm", "nominal_tempo_bpm", "drift_bpm", "notes_out", "lateness_us", "ports"}
    finally:
        daemon.stop()


def test_grid_frames_keep_the_lattice():
    daemon = make("grid-waves", **{"swarm.n": 10_000})
    frame, _ = daemon.telemetry_frame(-1, 2500)
    rows, cols = frame["grid"]
    assert rows * cols == len(frame["phase"]) <= 2500 and rows == cols == 50


def test_state_is_kept_and_resumed(tmp_path):
    state = tmp_path / "state.toml"
    daemon = make("grid-waves")
    daemon.state_path = state
    daemon.set("swarm.coupling", 0.33)
    daemon.set("mapping.channels", "2,3")
    preset, values = presets.load_state(state)
    assert preset == "grid-waves"
    assert values["swarm.coupling"] == 0.33 and values["mapping.channels"] == (2, 3)
    assert values["swarm.topology"] == "grid"
    assert "swarm.topology" not in state.read_text(), "only the tweaks are kept, on top of the preset"


def test_saved_presets_load_back_identically():
    daemon = make("ermentrout-800", **{"mapping.scale": "dorian", "swarm.coupling": 0.02})
    path = daemon.save_preset("my-swarm")
    assert path.parent == presets.user_dir()
    assert presets.resolve("my-swarm") == {**daemon.values}
    with pytest.raises(P.ParamError, match="preset name"):
        daemon.save_preset("../escape")


def test_learn_refuses_keys_a_knob_cannot_move():
    daemon = make("pulse-sine")
    with pytest.raises(P.ParamError, match="numeric"):
        daemon.learn("swarm.model")
    with pytest.raises(P.ParamError, match=r"swarm\.coupling"):
        daemon.learn("swarm.coupling", 0, 1000)


def test_start_sends_all_notes_off_on_every_channel_the_preset_plays_before_any_note():
    daemon = make("pulse-sine", **{"mapping.channels": "1,2,10", "mapping.cc_channel": 16, "swarm.freq_hz": 8})
    playing(daemon, 0.3)
    daemon.stop()
    log = [m for _, m in daemon.ports.log]
    first_note = next(i for i, m in enumerate(log) if m[0] & 0xF0 == 0x90)
    silenced = {m[0] & 15 for m in log[:first_note] if m[0] & 0xF0 == 0xB0 and m[1] == 123}
    assert silenced == {0, 1, 9, 15}


def test_port_connections_are_kept_with_the_state(tmp_path):
    state = tmp_path / "state.toml"
    daemon = make("pulse-sine")
    daemon.state_path = state
    daemon.connections = [["firefly-midi:out", "synth:midi_in"], ["firefly-midi-in:in", "drums:out"]]
    daemon.save_state()
    assert presets.load_connections(state) == daemon.connections
    assert presets.load_state(state)[0] == "pulse-sine"
    state.write_text('connections = "not a list"\n')
    assert presets.load_connections(state) == []


def test_changing_the_mapping_while_playing_cuts_nothing_and_leaves_nothing_hanging():
    daemon = playing(make("pulse-sine", **{"swarm.freq_hz": 8, "mapping.note_ms": 300, "mapping.clock_out": True}), 0.4)
    try:
        changed_at = time.monotonic()
        for key, value in (("mapping.velocity_max", 90), ("mapping.scale", "dorian"), ("mapping.voices", 7), ("mapping.channels", "2")):
            daemon.set(key, value)
            time.sleep(0.15)
        after = [m for t, m in daemon.ports.log if t >= changed_at]
        assert not any(m[0] & 0xF0 == 0xB0 and m[1] == 123 for m in after), "a mapping change sent All Notes Off"
        assert 0xFC not in [m[0] for m in after], "a mapping change stopped the MIDI clock"
        assert any(m[0] & 0xF0 == 0x90 and m[0] & 15 == 1 for m in after), "the new channel plays"
    finally:
        daemon.stop()
    assert not sounding_after(daemon.ports.log)  # every note, old layout or new, got its note-off


def test_while_the_ports_open_a_signal_kills_outright_and_the_handlers_come_back_after():
    """Opening JACK ports can block inside libjack; a Python handler would then never run."""
    seen = {}

    class Recording(Tap):
        def open(self) -> None:
            seen["during"] = signal.getsignal(signal.SIGTERM)
            super().open()

    def ours(*_):
        pass

    kept = signal.signal(signal.SIGTERM, ours)
    daemon = make("pulse-sine")
    daemon.ports = Recording()
    try:
        daemon.start()
        assert seen["during"] is signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        daemon.stop()
        signal.signal(signal.SIGTERM, kept)


def test_midi_learn_binds_the_next_controller_and_the_state_keeps_it(tmp_path):
    daemon = playing(make("pulse-sine"), 0.05)
    try:
        daemon.state_path = tmp_path / "state.toml"
        daemon.learn("swarm.coupling", 0.0, 1.0)
        daemon.ports.inject([0x90, 60, 100])  # notes do not bind
        daemon.ports.inject([0xB3, 74, 0])  # CC 74 on channel 4: bound
        assert wait_for(lambda: daemon.values["learn"] == (automation.Binding(74, "swarm.coupling", 0.0, 1.0, 4),))
        daemon.ports.inject([0xB3, 74, 64])
        assert wait_for(lambda: daemon.swarm.values["swarm.coupling"] == pytest.approx(64 / 127))
        daemon.save_state()
        _, kept = presets.load_state(daemon.state_path)
        assert kept["learn"] == daemon.values["learn"], "bindings are kept with the state (and saved in presets)"
        assert daemon.unlearn("swarm.coupling") == 1
        assert wait_for(lambda: daemon.values["learn"] == ())
    finally:
        daemon.stop()


def test_learnt_beats_are_kept_with_the_state(tmp_path):
    daemon = playing(make("follow-drummer"), 0.05)
    try:
        daemon.state_path = tmp_path / "state.toml"
        assert daemon.learn_beats(2, 4.0) == {"count": 2, "seconds": 4.0}
        assert wait_for(lambda: daemon.player.note_learner.count == 2), "armed at the next tick"
        for note in (37, 37, 39):
            daemon.ports.inject([0x99, note, 100])
        assert wait_for(lambda: daemon.values["follow.notes"] == (37, 39))
        daemon.save_state()
        _, kept = presets.load_state(daemon.state_path)
        assert kept["follow.notes"] == (37, 39), "kept like a set"
    finally:
        daemon.stop()


def test_a_set_racing_midi_learn_keeps_the_binding_in_the_saved_state(tmp_path, monkeypatch):
    """``set`` (a control thread) and MIDI learn (the tick) both change what the state keeps.  Here
    the learn lands while the set is checking its value: neither change may be lost."""
    daemon = playing(make("pulse-sine"), 0.05)
    daemon.learn("swarm.noise", 0.0, 0.01)
    check = P.check_consistency

    def slow_check(values):  # the setter's check lasts until the tick has bound the controller
        if threading.current_thread().name == "setter":
            daemon.ports.inject([0xB0, 20, 64])
            wait_for(lambda: daemon.values["learn"] != ())
        check(values)

    monkeypatch.setattr(P, "check_consistency", slow_check)
    setter = threading.Thread(target=daemon.set, args=("swarm.coupling", 0.15), name="setter")
    try:
        setter.start()
        setter.join(20)
        assert wait_for(lambda: daemon.values["swarm.coupling"] == 0.15)
    finally:
        daemon.stop()
    assert daemon.values["learn"] == (automation.Binding(20, "swarm.noise", 0.0, 0.01, 1),)
    daemon.state_path = tmp_path / "state.toml"
    daemon.save_state()
    _, kept = presets.load_state(daemon.state_path)
    assert kept["swarm.coupling"] == 0.15
    assert kept["learn"] == daemon.values["learn"], "the set racing the learn dropped the binding from the saved state"


def test_preset_switches_at_ten_thousand_fireflies_are_built_off_the_tick():
    """The tick only swaps what a control thread built: 20 switches cost it less than half a tick (10 ms)."""
    daemon = make("pulse-sine", **{"swarm.n": 10_000, "clock.tick_ms": 10, "swarm.freq_hz": 2})
    playing(daemon, 0.05)
    try:
        for i in range(20):
            name = ("grid-waves", "pulse-sine")[i % 2]
            daemon.load(presets.resolve(name, ["swarm.n=10000"]), name)
            topology = presets.resolve(name)["swarm.topology"]
            assert wait_for(lambda name=name, topology=topology: daemon.preset == name and daemon.values["swarm.topology"] == topology)
        status = daemon.status()
    finally:
        daemon.stop()
    assert status["longest_commands_us"] < 5_000, f"a switch held the tick for {status['longest_commands_us']:.0f} µs"
    assert status["lateness_us"]["max"] < 10_000, f"a tick was late by more than a tick: {status['lateness_us']}"


def test_a_reshaping_set_is_drawn_off_the_tick_and_keeps_the_notes():
    daemon = playing(make("pulse-sine", **{"swarm.freq_hz": 8, "mapping.note_ms": 5000, "swarm.n": 2000}), 0.3)
    try:
        daemon.set("swarm.n", 50)
        assert wait_for(lambda: daemon.swarm.n == 50)
    finally:
        daemon.stop()
    assert not sounding_after(daemon.ports.log)
