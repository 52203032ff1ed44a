"""`firefly-midi daemon` and `firefly-midi ctl` as real processes, talking over the control socket.

The daemons run portless (JACK_DEFAULT_SERVER names no server), so no JACK is needed here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from firefly_midi.control import request, start_daemon_in_background


@pytest.fixture
def folder():
    path = Path(tempfile.mkdtemp(prefix="ffcli-", dir="/tmp"))  # short: a socket path is at most 107 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def env(compiled_kernels):
    return {**os.environ, "JACK_DEFAULT_SERVER": f"firefly-no-such-server-{os.getpid()}", "JACK_NO_START_SERVER": "1"}


@pytest.fixture
def start(env):
    """Portless daemons: the backend only fails to open, and the ctl tests run once (on rtmidi's, as
    before); the background start below runs on both, a portless native daemon included."""
    procs: list[subprocess.Popen] = []

    def run(sock: Path, wait: bool = True) -> subprocess.Popen:
        args = [sys.executable, "-m", "firefly_midi", "daemon", "--fresh", "--preset", "pulse-sine", "--backend", "jack"]
        log_path = sock.parent / f"daemon-{len(procs)}.log"  # a file, not a pipe nobody reads while it runs
        with open(log_path, "w") as log:
            proc = subprocess.Popen([*args, "--socket", str(sock)], env=env, stdout=log, stderr=log, text=True)
        proc.log_path = log_path
        procs.append(proc)
        if wait:
            deadline = time.monotonic() + 60
            while ctl(env, sock, "get", "swarm.n").returncode != 0:
                assert proc.poll() is None, log_path.read_text()[-2000:]
                assert time.monotonic() < deadline, "the daemon's socket did not answer within 60 s"
                time.sleep(0.1)
        return proc

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def ctl(env: dict, sock: Path, *argv: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "firefly_midi", "ctl", "--socket", str(sock), *argv]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)


def test_ctl_drives_a_running_daemon_and_stops_it(folder, env, start):
    sock = folder / "control.sock"
    daemon = start(sock)
    assert oct(sock.stat().st_mode & 0o777) == oct(0o600)
    status = json.loads(ctl(env, sock, "status", "--json").stdout)
    assert status["preset"] == "pulse-sine" and status["ticks"] > 0

    assert ctl(env, sock, "set", "swarm.coupling", "0.2").returncode == 0
    refused = ctl(env, sock, "set", "swarm.coupling", "lots")
    assert refused.returncode == 2 and "swarm.coupling" in refused.stderr
    assert ctl(env, sock, "forward", "10").returncode == 0
    assert ctl(env, sock, "pause").stdout.strip() == "paused"
    assert ctl(env, sock, "resume").stdout.strip() == "playing"
    assert ctl(env, sock, "panic").stdout.strip() == "every note ended"
    assert ctl(env, sock, "reset").stdout.strip() == "the swarm was drawn afresh"
    watched = ctl(env, sock, "watch", "--fps", "30", "--count", "2")
    assert watched.returncode == 0 and [line.split()[0] for line in watched.stdout.splitlines()] == ["t", "t"]
    assert "pulse-sine" in ctl(env, sock, "presets").stdout.split()
    assert ctl(env, sock, "save", "cli-kept").stdout.startswith("saved ")
    learned = ctl(env, sock, "learn", "swarm.coupling", "0", "1")
    assert learned.returncode == 0 and "swarm.coupling (0.0..1.0)" in learned.stdout
    assert ctl(env, sock, "unlearn", "swarm.coupling").stdout.strip() == "forgot 0 controller(s) bound to swarm.coupling"
    assert ctl(env, sock, "preset", "grid-waves").returncode == 0

    second = start(sock, wait=False)
    assert second.wait(60) == 1
    assert f"another firefly-midi daemon is running on {sock} (pid {daemon.pid})" in second.log_path.read_text()
    assert daemon.poll() is None and ctl(env, sock, "get", "swarm.n").returncode == 0

    assert ctl(env, sock, "stop").returncode == 0
    assert daemon.wait(30) == 0
    assert not sock.exists()
    gone = ctl(env, sock, "status")
    assert gone.returncode == 3 and f"no firefly-midi daemon on {sock}" in gone.stderr


def test_a_killed_daemon_leaves_a_socket_the_next_one_replaces(folder, env, start):
    sock = folder / "control.sock"
    first = start(sock)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    assert sock.exists() and ctl(env, sock, "status").returncode == 3
    start(sock)
    assert ctl(env, sock, "get", "swarm.n").returncode == 0


def test_run_starts_a_daemon_in_the_background_once_and_it_outlives_the_caller(env, folder, monkeypatch, backend):
    sock = folder / "c.sock"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        assert start_daemon_in_background(sock, ["--fresh", "--preset", "pulse-sine", "--backend", backend]) is True
        assert request(sock, "status")["preset"] == "pulse-sine"
        assert start_daemon_in_background(sock, []) is False, "a daemon already answers: start none"
    finally:
        request(sock, "stop")
    deadline = time.monotonic() + 10
    while sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not sock.exists(), "a stopped daemon removes its socket"


def test_the_installed_command_names_itself_in_the_hint_not_its_path(folder):
    """A venv that is not activated runs as .venv/bin/firefly-midi: the hint still says what to type."""
    script = Path(sys.executable).parent / "firefly-midi"
    assert script.is_file(), "the package is installed (pip install -e .), so its console script is there"
    nowhere = folder / "nobody.sock"
    done = subprocess.run([str(script), "ctl", "--socket", str(nowhere), "status"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and not done.stdout
    assert done.stderr.strip() == f"firefly-midi ctl: no firefly-midi daemon on {nowhere}; start one with `firefly-midi run`"
