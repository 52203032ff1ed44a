"""What a user types, run as they run it: ``python -m firefly_midi ...`` in its own process.

The offline commands (``--version``, ``presets``, ``params``, ``render``, ``tune``) need no MIDI; the
daemon's options are tried against a real daemon on the test's private JACK server, and checked
where a user would see their effect: JACK's port list and connections, the control socket, OSC
replies, the log and the files the daemon leaves.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import mido
import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

import firefly_midi
from firefly_midi import params as P
from firefly_midi import presets
from firefly_midi.control import request

from .conftest import Proc, in_port, jack_lsp, jack_ports, wait_for_port

COMMAND = [sys.executable, "-m", "firefly_midi"]


def command(*argv: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *argv], env=env, capture_output=True, text=True, timeout=timeout)


def wait_until(condition: Callable[[], object], what: str, timeout: float = 20.0) -> object:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)
    return value


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path: a control socket's path is at most 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="ffcmd-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ----------------------------------------------------------------------------------------- offline
def test_version_is_the_package_version():
    done = command("--version", timeout=30)
    assert done.returncode == 0, done.stderr
    assert firefly_midi.__version__ in done.stdout


def test_presets_lists_the_shipped_ones_and_the_users_own(tmp_path):
    mine = tmp_path / "config" / "firefly-midi" / "presets" / "my-own.toml"
    mine.parent.mkdir(parents=True)
    mine.write_text('[swarm]\nmodel = "pulse"\n')
    done = command("presets", env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}, timeout=30)
    assert done.returncode == 0, done.stderr
    shipped = {path.stem for path in presets.shipped_dir().glob("*.toml")}
    for name in [*shipped, "my-own"]:
        assert name in done.stdout, name


@pytest.mark.parametrize("markdown", [False, True])
def test_params_lists_every_parameter(markdown):
    done = command("params", *(["--markdown"] if markdown else []), timeout=30)
    assert done.returncode == 0, done.stderr
    missing = [key for key in P.PARAMS if key not in done.stdout]
    assert not missing
    if markdown:
        rows = [line for line in done.stdout.splitlines() if line.startswith("|")]
        assert len(rows) >= len(P.PARAMS) + 2  # a header, its rule, a row a key


def test_render_writes_the_notes_its_summary_counts(tmp_path, compiled_kernels):
    out = tmp_path / "take.mid"
    done = command("render", "--preset", "pulse-sine", "--set", "swarm.n=60", "--seconds", "8", "--seed", "3", "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["path"] == str(out) and summary["seconds"] == pytest.approx(8.0)
    messages = [m for m in mido.MidiFile(out).tracks[0] if not m.is_meta]
    ons = [m for m in messages if m.type == "note_on" and m.velocity > 0]
    offs = [m for m in messages if m.type == "note_off" or (m.type == "note_on" and m.velocity == 0)]
    assert len(ons) == summary["notes"] > 0
    assert len(offs) >= len(ons), "every note ends"
    again = tmp_path / "again.mid"
    command("render", "--preset", "pulse-sine", "--set", "swarm.n=60", "--seconds", "8", "--seed", "3", "-o", str(again))
    assert again.read_bytes() == out.read_bytes(), "same seed, same file"


# ------------------------------------------------------------------------------------------- tune
# Coupling alone cannot move pulse-sine's 80 BPM to 70: a run that only its budget or its cap ends.
TUNE = ["tune", "--preset", "pulse-sine", "--set", "swarm.n=40", "--seconds", "4", "--target", "tempo_bpm=70"]
TUNE += ["--vary", "swarm.coupling", "--population", "4", "--seeds", "1", "--seed", "1"]


def tune(*argv: str) -> tuple[dict, str]:
    done = command(*TUNE, *argv, "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


@pytest.mark.slow
def test_tune_checkpoints_resumes_and_restarts(tmp_path, compiled_kernels):
    """A run cut short by its budget or its cap keeps a checkpoint; the same command goes on from
    there; --restart ignores it."""
    out, checkpoint = tmp_path / "tuned.toml", tmp_path / "run.json"
    where = ["--checkpoint", str(checkpoint), "-o", str(out)]
    cut, _ = tune("--generations", "100000", "--budget-s", "10", "--jobs", "1", *where)
    assert cut["interrupted"] is False and 1 <= cut["generations"] < 100000
    assert json.loads(checkpoint.read_text())["generation"] == cut["generations"]
    assert presets.load(str(out))["swarm.model"] == "pulse"
    resumed, err = tune("--generations", str(cut["generations"] + 1), "--jobs", "2", *where)
    assert f"resuming from {checkpoint} at generation {cut['generations']}" in err
    assert resumed["generations"] == cut["generations"] + 1
    assert json.loads(checkpoint.read_text())["generation"] == resumed["generations"], "a capped run keeps its place for a larger cap"
    tune("--generations", "100000", "--budget-s", "10", *where)
    restarted, err = tune("--generations", "1", "--restart", *where)
    assert "resuming" not in err and restarted["generations"] == 1


@pytest.mark.slow
def test_tune_stops_on_its_budget_or_once_good_enough(tmp_path, compiled_kernels):
    """100,000 generations asked for; the wall-time budget, or a fitness any candidate meets, ends
    the run early with a preset written (the tuner's own tests hold the exact semantics)."""
    out = tmp_path / "tuned.toml"
    started = time.monotonic()
    budgeted, _ = tune("--generations", "100000", "--budget-s", "10", "-o", str(out))
    assert time.monotonic() - started < 120 and budgeted["generations"] < 100000
    assert presets.load(str(out))["swarm.model"] == "pulse"
    good_enough, _ = tune("--generations", "100000", "--stop-at", "1e9", "-o", str(tmp_path / "good.toml"))
    assert good_enough["generations"] <= 1, "a fitness every candidate meets ends the run at once"


# ----------------------------------------------------------------------------------- the daemon
# What these check (OSC, the log, the kept state) is the same code on every backend: each runs once,
# on the native JACK backend, which opens in a fraction of rtmidi's time (no input probe).  The MIDI
# tests (here the port names and --connect-in) run on both.
CONTROL_PLANE = pytest.mark.parametrize("backend", ["jack-native"], indirect=True)


def osc_call(port: int, address: str, *args: object, reply: bool = False, timeout: float = 5.0) -> OscMessage | None:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(builder.build().dgram, ("127.0.0.1", port))
        if reply:
            return OscMessage(sock.recv(65536))
    return None


@CONTROL_PLANE
def test_osc_port_serves_every_address(daemon, short_dir, tmp_path):
    port, sock = free_udp_port(), short_dir / "c.sock"
    proc = daemon("--fresh", "--preset", "pulse-sine", "--socket", str(sock), "--osc-port", str(port))
    status = lambda: request(sock, "status")  # noqa: E731

    def value(key: str) -> object:
        return request(sock, "get", key=key)

    osc_call(port, "/firefly/set", "swarm.coupling", 0.21)
    wait_until(lambda: value("swarm.coupling") == pytest.approx(0.21), "/firefly/set")
    osc_call(port, "/firefly/param/swarm/coupling", 0.31)
    wait_until(lambda: value("swarm.coupling") == pytest.approx(0.31), "/firefly/param/...")
    got = osc_call(port, "/firefly/get", "swarm.coupling", reply=True)
    assert got.address == "/firefly/value" and got.params[0] == "swarm.coupling" and got.params[1] == pytest.approx(0.31)
    osc_call(port, "/firefly/pause")
    wait_until(lambda: status()["paused"], "/firefly/pause")
    osc_call(port, "/firefly/resume")
    wait_until(lambda: not status()["paused"], "/firefly/resume")
    before = status()["time_s"]
    osc_call(port, "/firefly/forward", 30.0)
    wait_until(lambda: status()["time_s"] >= before + 30, "/firefly/forward")
    osc_call(port, "/firefly/reset")
    wait_until(lambda: status()["time_s"] < before + 30, "/firefly/reset")
    osc_call(port, "/firefly/panic")
    osc_call(port, "/firefly/save", "osc-take")
    saved = tmp_path / "xdg_config_home" / "firefly-midi" / "presets" / "osc-take.toml"  # the spawn fixture's folder
    wait_until(saved.is_file, "/firefly/save")
    osc_call(port, "/firefly/preset", "grid-waves")
    wait_until(lambda: status()["preset"] == "grid-waves", "/firefly/preset")
    error = osc_call(port, "/firefly/nonsense", reply=True)
    assert error.address == "/firefly/error" and error.params[0] == "unknown_command"
    error = osc_call(port, "/firefly/set", "swarm.n", reply=True)
    assert error.address == "/firefly/error" and error.params[0] == "bad_argument"
    assert presets.load(str(saved))["swarm.model"] == "pulse"
    osc_call(port, "/firefly/stop")
    _, log, code = proc.finish(timeout=30)
    assert code == 0, log[-2000:]


def test_in_and_out_port_names_and_no_input(spawn, jack_server, compiled_kernels, backend):
    client = "ffm-named"
    start = [*COMMAND, "daemon", "--fresh", "--preset", "pulse-sine", "--backend", backend, "--client-name"]
    named = spawn([*start, client, "--out-port", "play", "--in-port", "listen"])
    wait_for_port(jack_server, f"{client}:play", timeout=60)
    wait_for_port(jack_server, in_port(backend, client, "listen"))
    deaf = spawn([*start, "ffm-deaf", "--no-input"])
    wait_for_port(jack_server, "ffm-deaf:out", timeout=60)
    wait_until(lambda: "playing preset" in deaf.log(), "the --no-input daemon plays")
    ports = jack_ports(jack_server)
    assert f"{client}:out" not in ports and in_port(backend, client) not in ports
    assert not [p for p in ports if p.startswith("ffm-deaf-in:") or p.startswith("ffm-deaf:in")], ports
    for proc in (named, deaf):
        proc.stop()
        assert proc.finish()[2] == 0


def test_connect_in_wires_an_existing_output_to_the_input(daemon, jack_server):
    source = daemon("--fresh", "--preset", "pulse-sine", "--no-input", client="ffm-source")
    listener = daemon("--fresh", "--preset", "pulse-sine", "--connect-in", "ffm-source:out")

    def connected() -> bool:
        return listener.in_port in jack_lsp(jack_server, "-c", "ffm-source:out")

    wait_until(connected, "ffm-source:out connected to the listener's input")
    assert source.popen.poll() is None


@CONTROL_PLANE
def test_seed_and_log_level(daemon, short_dir):
    sock = short_dir / "s.sock"
    proc = daemon("--fresh", "--preset", "pulse-sine", "--seed", "1234", "--log-level", "debug", "--socket", str(sock))
    assert request(sock, "get", key="swarm.seed") == 1234
    assert " DEBUG " in proc.log()
    proc.stop()
    proc.finish()


@CONTROL_PLANE
def test_log_level_warning_keeps_the_info_lines_out(spawn, jack_server, short_dir, compiled_kernels, backend):
    sock = short_dir / "w.sock"
    args = [*COMMAND, "daemon", "--fresh", "--preset", "pulse-sine", "--backend", backend, "--client-name", "ffm-quiet"]
    proc = spawn([*args, "--log-level", "warning", "--status-every", "0.2", "--socket", str(sock)])
    wait_for_port(jack_server, "ffm-quiet:out", timeout=60)
    wait_until(lambda: request(sock, "status")["ticks"] > 1000, "a second of playing")
    proc.stop()
    _, log, code = proc.finish()
    assert code == 0
    assert " INFO " not in log and " status {" not in log, log[-2000:]


@CONTROL_PLANE
def test_an_unusable_kept_state_is_set_aside_and_the_default_plays(spawn, jack_server, tmp_path, compiled_kernels, backend):
    """The state file the last run kept is garbage: the daemon keeps it as state.toml.unusable (what the
    user made is not lost), says so, and plays the default preset."""
    state = tmp_path / "xdg_state_home" / "firefly-midi" / "state.toml"
    state.parent.mkdir(parents=True)
    state.write_text("preset = 5\n[swarm\n")
    proc: Proc = spawn([*COMMAND, "daemon", "--backend", backend, "--client-name", "ffm-state", "--no-input"])
    wait_until(lambda: "playing preset" in proc.log(), "the daemon plays", timeout=60)
    kept = state.with_suffix(".toml.unusable")
    assert kept.read_text() == "preset = 5\n[swarm\n"
    assert "not resuming the kept state" in proc.log()
    assert f"playing preset {presets.DEFAULT_PRESET}:" in proc.log()
    proc.stop()
    assert proc.finish()[2] == 0


def test_run_starts_a_daemon_opens_the_ui_and_q_leaves_the_daemon_playing(jack_server, tmp_path, short_dir, compiled_kernels, backend):
    """``run`` in a terminal (a pseudo-terminal here): a daemon starts in the background, the UI
    draws, ``q`` quits the UI, and the daemon plays on until it is stopped."""
    sock = short_dir / "run.sock"
    env = {**jack_server, "TERM": "xterm-256color"}
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"):
        env[name] = str(tmp_path / name.lower())
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    argv = [*COMMAND, "run", "--preset", "pulse-sine", "--backend", backend, "--socket", str(sock)]
    ui = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, env=env, start_new_session=True)
    os.close(follower)
    screen = bytearray()

    def read() -> None:  # a terminal nobody reads blocks the program that writes to it
        with contextlib.suppress(OSError):
            while chunk := os.read(leader, 65536):
                screen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_until(lambda: sock.exists() and request(sock, "status")["preset"] == "pulse-sine", "the daemon answers", timeout=120)
        wait_until(lambda: b"pulse-sine" in screen, "the UI shows the preset", timeout=60)
        os.write(leader, b"q")
        assert ui.wait(timeout=30) == 0, bytes(screen[-2000:]).decode(errors="replace")
        assert request(sock, "status")["ticks"] > 0, "the daemon plays on after the UI quits"
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, 9)
            ui.wait()
        with contextlib.suppress(Exception):
            request(sock, "stop")
        os.close(leader)
    wait_until(lambda: not sock.exists(), "the daemon stopped", timeout=30)
