"""The MIDI server goes away under a playing daemon and comes back: it keeps ticking and plays again."""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid

import pytest

from .conftest import jack_env, private_jackd, start_jackd, start_logged, start_peer, status_lines, stop_jackd, wait_for_port
from .test_daemon_jack import hanging_at_the_end, note_traffic

pytestmark = pytest.mark.jack


def own_env(prefix: str, tmp_path) -> dict[str, str]:
    """The environment of a JACK server name of the test's own, and of state folders in tmp_path."""
    env = jack_env(f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"):
        env[name] = str(tmp_path / name.lower())
    return env


def start_playing(env: dict[str, str], tmp_path, client: str, *extra: str):
    args = ["--client-name", client, "--preset", "pulse-sine", "--status-every", "0.25", "--set", "swarm.freq_hz=6"]
    return start_logged([sys.executable, "-m", "firefly_midi", "daemon", *args, "--set", "mapping.note_ms=80", *extra], env, tmp_path)


def wait_for_ports(env: dict[str, str], client: str, daemon) -> None:
    try:
        wait_for_port(env, f"{client}:out", timeout=15)
    except TimeoutError as exc:
        pytest.fail(f"{exc}; daemon log:\n{daemon.log()[-4000:]}")


@pytest.fixture
def own_server(compiled_kernels, tmp_path):
    """A private JACK server for a test that kills it and starts it again under the same name."""
    env = own_env("ffm-loss", tmp_path)
    servers = [private_jackd(env)]
    yield env, servers
    for server in servers:
        stop_jackd(server)


def test_the_daemon_survives_the_jack_server_dying_and_plays_again_when_it_is_back(own_server, tmp_path):
    env, servers = own_server
    client = f"ffm-{uuid.uuid4().hex[:6]}"
    daemon = start_playing(env, tmp_path, client, "--backend", "jack")
    peer = None
    try:
        wait_for_port(env, f"{client}:out")
        servers[0].send_signal(signal.SIGKILL)  # the server dies without a word
        servers[0].wait(5)
        time.sleep(1.5)
        assert daemon.popen.poll() is None, f"the daemon must survive its MIDI server: {daemon.log()[-3000:]}"
        servers.append(start_jackd(env))
        wait_for_ports(env, client, daemon)
        # once connected, however long the loaded machine takes to start it: then 3 s of notes
        peer = start_peer(lambda args: start_logged(args, env, tmp_path), client, tmp_path, "--seconds", "30")
        time.sleep(3.0)
    finally:
        daemon.stop()  # the peer listens on past the daemon's end: it hears every note-off
        _, log, code = daemon.finish()
        if peer is not None:
            peer.stop()
    lines, err, _ = peer.finish(timeout=30)
    assert code == 0, log[-3000:]
    assert "the MIDI server went away" in log
    assert "MIDI ports open again" in log
    states = [s["ports"]["state"] for s in status_lines(log)]
    assert "lost" in states and states[-1] == "open"
    notes = [t for t, kind, *_ in note_traffic(lines) if kind == 0x90]
    assert len(notes) >= 3, f"no notes after the server came back: {err[-1000:]}\ndaemon log:\n{log[-3000:]}"
    assert not hanging_at_the_end(lines), "every note the peer heard start must end"
    ticks = [s["ticks"] for s in status_lines(log)]
    assert ticks == sorted(ticks) and ticks[-1] > 1000, "it kept ticking through the gap"


def test_a_daemon_started_before_the_jack_server_opens_its_ports_once_the_server_starts(compiled_kernels, tmp_path):
    """The musician starts firefly-midi, then JACK: the ports appear, with no restart of the daemon."""
    env = own_env("ffm-late", tmp_path)
    client = f"ffm-{uuid.uuid4().hex[:6]}"
    daemon = start_playing(env, tmp_path, client)  # the default backend: the one a musician gets
    server = peer = None
    try:
        deadline = time.monotonic() + 60
        while "playing preset" not in daemon.log():
            assert daemon.popen.poll() is None and time.monotonic() < deadline, daemon.log()[-3000:]
            time.sleep(0.1)
        time.sleep(1.5)  # a few of its once-a-second looks find no server
        assert "no MIDI backend could be opened" in daemon.log() and "when a JACK server starts" in daemon.log()
        server = start_jackd(env)
        wait_for_ports(env, client, daemon)
        peer = start_peer(lambda args: start_logged(args, env, tmp_path), client, tmp_path, "--seconds", "30")
        time.sleep(3.0)
        lines, err = [], ""
    finally:
        daemon.stop()
        _, log, code = daemon.finish()
        if peer is not None:
            peer.stop()
            lines, err, _ = peer.finish(timeout=30)
        if server is not None:  # on every path: a jackd left running would load the rest of the suite
            stop_jackd(server)
    assert code == 0, log[-3000:]
    assert "a JACK server started: MIDI ports open on jack" in log, log[-3000:]
    states = [s["ports"]["state"] for s in status_lines(log)]
    assert states[0] == "none" and states[-1] == "open", states
    notes = [t for t, kind, *_ in note_traffic(lines) if kind == 0x90]
    assert len(notes) >= 3, f"no notes once the server started: {err[-1000:]}\ndaemon log:\n{log[-3000:]}"
    assert not hanging_at_the_end(lines), "every note the peer heard start must end"
