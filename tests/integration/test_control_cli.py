"""`firefly-midi daemon` and `firefly-midi ctl` as real processes, talking over the control socket.

The daemons run portless (JACK_DEFAULT_SERVER names no server), so no JACK is needed here.  Skipped
until the command line wires `daemon --socket` and `ctl`.
"""

from __future__ import annotations

import argparse
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

from firefly_midi import cli


def _wired() -> bool:
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    return "ctl" in commands and "--socket" in commands["daemon"].format_help()


pytestmark = pytest.mark.skipif(not _wired(), reason="cli.py does not wire `daemon --socket` and `ctl` yet")


@pytest.fixture
def folder():
    path = Path(tempfile.mkdtemp(prefix="ffcli-", dir="/tmp"))  # short: a socket path is at most 107 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def env():
    return {**os.environ, "JACK_DEFAULT_SERVER": f"firefly-no-such-server-{os.getpid()}", "JACK_NO_START_SERVER": "1"}


@pytest.fixture
def start(env):
    procs: list[subprocess.Popen] = []

    def run(sock: Path, wait: bool = True) -> subprocess.Popen:
        args = [sys.executable, "-m", "firefly_midi", "daemon", "--fresh", "--preset", "pulse-sine", "--backend", "jack"]
        proc = subprocess.Popen([*args, "--socket", str(sock)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        if wait:
            deadline = time.monotonic() + 60
            while ctl(env, sock, "get", "swarm.n").returncode != 0:
                assert proc.poll() is None, proc.communicate()[1][-2000:]
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
    assert ctl(env, sock, "preset", "grid-waves").returncode == 0

    second = start(sock, wait=False)
    assert second.wait(60) == 1
    assert f"another firefly-midi daemon is running on {sock} (pid {daemon.pid})" in second.stderr.read()
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
