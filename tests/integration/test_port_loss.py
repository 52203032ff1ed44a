"""The MIDI server goes away under a playing daemon and comes back: it keeps ticking and plays again."""

from __future__ import annotations

import os
import signal
import sys
import uuid

import pytest

from firefly_midi import presets

from .conftest import (
    HERE,
    jack_env,
    jack_lsp,
    private_jackd,
    start_jackd,
    start_logged,
    start_peer,
    status_lines,
    stop_jackd,
    wait_for_port,
)
from .test_daemon_jack import all_notes_off_channels, hanging_at_the_end, heard, note_ons, note_traffic, wait_until

PEER = HERE / "peer.py"

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
        wait_for_port(env, f"{client}:out", timeout=30)
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


def start_synth(env: dict[str, str], tmp_path, daemon_client: str, name: str, *extra: str):
    """peer.py as a synth called ``name`` that hears the daemon (it connects itself unless ``--no-connect``)."""
    ready = tmp_path / f"ready-{uuid.uuid4().hex[:6]}"
    args = [sys.executable, str(PEER), "--daemon", daemon_client, "--name", name, "--seconds", "60", "--ready-file", str(ready), *extra]
    synth = start_logged(args, env, tmp_path)
    wait_until(lambda: ready.exists() or synth.popen.poll() is not None, 30, "the synth did not open its port", synth.log)
    assert synth.popen.poll() is None, synth.log()[-2000:]
    return synth


def kill_the_server_under(daemon, synth, server, connection: list[str], tmp_path) -> None:
    """Once ``synth`` hears notes and the daemon keeps ``connection`` in its state, SIGKILL the JACK
    server; return once the daemon noticed, with the synth (whose client died with it) killed."""
    state = tmp_path / "xdg_state_home" / "firefly-midi" / "state.toml"
    wait_until(lambda: len(note_ons(heard(synth))) >= 3, 30, "the synth heard no notes", daemon.log)
    wait_until(lambda: connection in presets.load_connections(state), 10, "the connection was not kept", daemon.log)
    server.send_signal(signal.SIGKILL)  # the server dies without a word, the synth's port with it
    server.wait(5)
    wait_until(lambda: "the MIDI server went away" in daemon.log(), 15, "the daemon did not notice", daemon.log)
    synth.popen.kill()  # its client died with the server: nothing to close
    synth.popen.wait(10)
    assert daemon.popen.poll() is None, f"the daemon must survive its MIDI server: {daemon.log()[-3000:]}"


def test_the_daemon_survives_the_jack_server_dying_and_plays_again_when_it_is_back(own_server, tmp_path, backend):
    """A synth connected to the daemon; the server dies (SIGKILL) and comes back, the synth with it.

    The daemon keeps ticking, reopens its ports, makes the connection again (the synth waits to be
    connected), and sends All Notes Off on every channel used before its first new note-on.  The
    daemon is held (SIGSTOP) while the server and the synth come back, so that the synth's port is
    there when the daemon reopens: what is tested is the reopen, not which of the two starts first.
    """
    env, servers = own_server
    client, synth_name = f"ffm-{uuid.uuid4().hex[:6]}", f"synth-{uuid.uuid4().hex[:6]}"
    values = presets.resolve("pulse-sine", ["swarm.freq_hz=6", "mapping.note_ms=80"])
    daemon = start_playing(env, tmp_path, client, "--backend", backend)
    old = new = None
    try:
        wait_for_ports(env, client, daemon)
        old = start_synth(env, tmp_path, client, synth_name)
        ours, theirs = f"{client}:out", f"{synth_name}:in"
        kill_the_server_under(daemon, old, servers[0], [ours, theirs], tmp_path)
        used = {line["m"][0] & 0x0F for line in note_ons(heard(old))} | {c - 1 for c in values["mapping.channels"]}
        ticks_lost = [s["ticks"] for s in status_lines(daemon.log())]

        daemon.stop(signal.SIGSTOP)
        try:
            servers.append(start_jackd(env))
            new = start_synth(env, tmp_path, client, synth_name, "--no-connect")
        finally:
            daemon.stop(signal.SIGCONT)
        wait_until(lambda: theirs in connected_to(env, ours), 20, "the connection did not come back", daemon.log)
        wait_until(lambda: len(note_ons(heard(new))) >= 3, 20, "no notes after the server came back", daemon.log)
        # the native backend plays again within a status period of its reopen: wait for the status too
        wait_until(lambda: last_port_state(daemon.log()) == "open", 15, "no status of the reopened ports", daemon.log)
    finally:
        daemon.stop()  # the synth listens on past the daemon's end: it hears every note-off
        _, log, code = daemon.finish()
        for synth in (old, new):
            if synth is not None:
                synth.stop()
    lines, _, _ = new.finish(timeout=30)
    assert code == 0, log[-3000:]
    assert "MIDI ports open again" in log
    states = [s["ports"]["state"] for s in status_lines(log)]
    assert "lost" in states and states[-1] == "open"
    messages = [line for line in lines if "m" in line]
    first_note = messages.index(note_ons(messages)[0])
    silenced = all_notes_off_channels(messages[:first_note])
    assert used <= silenced, f"All Notes Off before the first note on {sorted(silenced)}; needed {sorted(used)}: {messages[:12]}"
    assert not hanging_at_the_end(lines), "every note the synth heard start must end"
    ticks = [s["ticks"] for s in status_lines(log)]
    assert ticks == sorted(ticks) and ticks[-1] > max(ticks_lost, default=0), "it kept ticking through the gap"


def test_a_synth_back_after_the_daemon_reopened_is_connected_again(own_server, tmp_path, backend):
    """The other order: the daemon reopens first, the synth's port comes back later.  The daemon keeps
    trying the connection it kept (for 30 s) and makes it once the port is there."""
    env, servers = own_server
    client, synth_name = f"ffm-{uuid.uuid4().hex[:6]}", f"synth-{uuid.uuid4().hex[:6]}"
    daemon = start_playing(env, tmp_path, client, "--backend", backend)
    old = new = None
    try:
        wait_for_ports(env, client, daemon)
        old = start_synth(env, tmp_path, client, synth_name)
        ours, theirs = f"{client}:out", f"{synth_name}:in"
        kill_the_server_under(daemon, old, servers[0], [ours, theirs], tmp_path)
        servers.append(start_jackd(env))
        wait_until(lambda: "MIDI ports open again" in daemon.log(), 30, "the ports did not reopen", daemon.log)
        assert theirs not in connected_to(env, ours)
        new = start_synth(env, tmp_path, client, synth_name, "--no-connect")
        wait_until(lambda: theirs in connected_to(env, ours), 20, "the connection did not come back", daemon.log)
        wait_until(lambda: len(note_ons(heard(new))) >= 2, 20, "no notes after the synth came back", daemon.log)
    finally:
        daemon.stop()
        _, log, code = daemon.finish()
        for synth in (old, new):
            if synth is not None:
                synth.stop()
    lines, _, _ = new.finish(timeout=30)
    assert code == 0, log[-3000:]
    assert "whose other port came back" in log, log[-3000:]
    assert not hanging_at_the_end(lines), "every note the synth heard start must end"


def test_a_server_killed_while_the_ports_open_counts_as_lost_and_they_reopen(own_server, tmp_path, backend):
    """Killed as soon as the output appears, while the input is still being probed: the open fails on
    a dead server, which is a loss to wait out, not "no MIDI" for good."""
    env, servers = own_server
    client = f"ffm-{uuid.uuid4().hex[:6]}"
    daemon = start_playing(env, tmp_path, client, "--backend", backend)
    try:
        wait_for_ports(env, client, daemon)
        servers[0].send_signal(signal.SIGKILL)
        servers[0].wait(5)
        wait_until(lambda: "went away" in daemon.log() or daemon.popen.poll() is not None, 15, "no loss noticed", daemon.log)
        servers.append(start_jackd(env))
        wait_until(lambda: "MIDI ports open again" in daemon.log() or daemon.popen.poll() is not None, 30, "no reopen", daemon.log)
        wait_for_ports(env, client, daemon)
        reopened = lambda: last_port_state(daemon.log()) == "open" or daemon.popen.poll() is not None  # noqa: E731
        wait_until(reopened, 15, "no status of the reopened ports", daemon.log)
    finally:
        daemon.stop()
        _, log, code = daemon.finish()
    assert code == 0, log[-3000:]
    assert "no MIDI backend could be opened" not in log, log[-3000:]  # a loss, not "no MIDI" for good
    states = [s["ports"]["state"] for s in status_lines(log)]  # (a reopen holds the status lines up: no "lost")
    assert "none" not in states and states[-1] == "open", states


def last_port_state(log: str) -> str | None:
    lines = status_lines(log)
    return lines[-1]["ports"]["state"] if lines else None


def connected_to(env: dict[str, str], port: str) -> list[str]:
    """The ports connected to ``port``, from ``jack_lsp -c``."""
    return [line.strip() for line in jack_lsp(env, "-c", port).splitlines() if line.startswith(" ")]


def test_a_daemon_started_before_the_jack_server_opens_its_ports_once_the_server_starts(compiled_kernels, tmp_path, backend):
    """The musician starts firefly-midi, then JACK: the ports appear, with no restart of the daemon."""
    env = own_env("ffm-late", tmp_path)
    client = f"ffm-{uuid.uuid4().hex[:6]}"
    # jack: the default backend, the one a musician gets (auto: ALSA, then JACK); or the native one
    daemon = start_playing(env, tmp_path, client, *(() if backend == "jack" else ("--backend", backend)))
    server = peer = None
    try:
        wait_until(lambda: "playing preset" in daemon.log() or daemon.popen.poll() is not None, 60, "no play", daemon.log)
        # a few of its once-a-second looks find no server (a status line every 0.25 s)
        portless = lambda: [s for s in status_lines(daemon.log()) if s["ports"]["state"] == "none"]  # noqa: E731
        wait_until(lambda: len(portless()) >= 8 or daemon.popen.poll() is not None, 30, "no portless status", daemon.log)
        assert daemon.popen.poll() is None, daemon.log()[-3000:]
        assert "no MIDI backend could be opened" in daemon.log() and "when a JACK server starts" in daemon.log()
        server = start_jackd(env)
        wait_for_ports(env, client, daemon)
        peer = start_peer(lambda args: start_logged(args, env, tmp_path), client, tmp_path, "--seconds", "30", backend=backend)
        wait_until(lambda: len(note_ons(heard(peer))) >= 3, 30, "no notes once the server started", daemon.log)
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
    assert f"a JACK server started: MIDI ports open on {backend}:" in log, log[-3000:]
    states = [s["ports"]["state"] for s in status_lines(log)]
    assert states[0] == "none" and states[-1] == "open", states
    notes = [t for t, kind, *_ in note_traffic(lines) if kind == 0x90]
    assert len(notes) >= 3, f"no notes once the server started: {err[-1000:]}\ndaemon log:\n{log[-3000:]}"
    assert not hanging_at_the_end(lines), "every note the peer heard start must end"
