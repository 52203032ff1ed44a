"""Real MIDI for the integration tests: a private JACK server per test session, and real processes.

``jackd -d dummy`` runs a real JACK server without a sound card; each session starts its own under a
unique ``JACK_DEFAULT_SERVER`` name and never uses one left running.  Without jackd the tests skip,
except under ``CI=true``, where a MIDI test that would skip fails instead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from firefly_midi.testing.jackserver import (  # noqa: F401  (jack_lsp, jack_ports, stop_jackd, wait_for_port: for the tests)
    JackUnavailable,
    jack_env,
    jack_lsp,
    jack_ports,
    start_jackd,
    stop_jackd,
    wait_for_port,
)

HERE = Path(__file__).parent
ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
JACK_BACKENDS = ("jack", "jack-native")  # python-rtmidi's JACK backend, and the native client (docs/jack-native.md)


def unavailable(why: str) -> None:
    if ON_CI:
        pytest.fail(f"{why} (CI=true: MIDI tests must not skip)")
    pytest.skip(why)


@pytest.fixture(scope="session")
def compiled_kernels():
    """Compile the numba kernels once, before any daemon starts: on a fresh checkout that takes a
    while, and daemons started in parallel would each compile them inside their start-up timeout."""
    # the instant path (pulse-sine) and the delayed one with rewiring (ermentrout-800, the default
    # and the soak's): a daemon compiling the latter itself outlived the soak's 120 s port wait
    warm = (
        "from firefly_midi import presets; from firefly_midi.lifecycle import warm_up\n"
        "for name in ('pulse-sine', 'ermentrout-800'): warm_up(presets.resolve(name))"
    )
    subprocess.run([sys.executable, "-c", warm], check=True, timeout=600, capture_output=True)


def private_jackd(env: dict[str, str], sync: bool = True) -> subprocess.Popen:
    """Start a private dummy server under ``env``'s name, or a dead server's (start_jackd renames
    ``env`` then); skip, or fail on CI, when that cannot be."""
    try:
        return start_jackd(env, sync)
    except JackUnavailable as why:
        unavailable(str(why))
        raise


@pytest.fixture
def jack_server(compiled_kernels, request):
    """The environment of a private, running JACK dummy server (64 frames at 48 kHz), one per test:
    a test never meets the clients (or zombies of killed ones) another test left on a server.
    Synchronous (jackd_command says why), unless the test is marked ``async_jack``."""
    env = jack_env(f"ffm-test-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    sync = request.node.get_closest_marker("async_jack") is None
    server = private_jackd(env, sync)
    RUNNING[env["JACK_DEFAULT_SERVER"]] = server  # the name it runs under, perhaps a dead server's
    yield env
    stop_jackd(RUNNING.pop(env["JACK_DEFAULT_SERVER"], server))
    server.log.close()


RUNNING: dict[str, subprocess.Popen] = {}  # jack_server's jackd, by server name: see jackd_of


def jackd_of(env: dict[str, str]) -> subprocess.Popen:
    """The jackd process of the ``jack_server`` fixture whose environment is ``env``."""
    return RUNNING[env["JACK_DEFAULT_SERVER"]]


@dataclass
class Proc:
    """A child process whose JSON lines (stdout) and log (stderr) are collected.

    Both go to files, never to pipes: a pipe nobody reads fills (a daemon logs, a peer prints every
    message) and then blocks the child's next write, and with it whatever that thread was doing.
    """

    popen: subprocess.Popen
    out_path: Path
    err_path: Path
    lines: list[dict] = field(default_factory=list)

    def finish(self, timeout: float = 20.0) -> tuple[list[dict], str, int]:
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # say what it was doing: the end of its log
            self.popen.kill()
            self.popen.wait()
            pytest.fail(f"{self.popen.args[1:4]} did not exit within {timeout} s; its log ends:\n{self.log()[-4000:]}")
        out = self.out_path.read_text(errors="replace")
        self.lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return self.lines, self.log(), self.popen.returncode

    def log(self) -> str:
        return self.err_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)


def start_logged(args: list[str], env: dict[str, str], folder: Path) -> Proc:
    """Start ``args`` with stdout and stderr in files under ``folder``."""
    stem = folder / uuid.uuid4().hex[:8]
    out_path, err_path = stem.with_suffix(".out"), stem.with_suffix(".err")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        popen = subprocess.Popen(args, env=env, stdout=out, stderr=err, text=True)
    return Proc(popen, out_path, err_path)


@pytest.fixture
def spawn(jack_server, tmp_path):
    """Start processes on the private JACK server; whatever is left running is killed afterwards.

    Their config, state and runtime folders are the test's own, never the user's.
    """
    started: list[subprocess.Popen] = []
    env = dict(jack_server)
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"):
        env[name] = str(tmp_path / name.lower())
    env["PYTHONFAULTHANDLER"] = "1"  # a crash leaves every thread's stack in the log

    def start(args: list[str]) -> Proc:
        proc = start_logged(args, env, tmp_path)
        started.append(proc.popen)
        return proc

    yield start
    # SIGTERM first, so that peers and daemons close their JACK clients: one killed outright stalls
    # the synchronous server for seconds and jack2 drops others' events meanwhile (the next test's)
    running = [popen for popen in started if popen.poll() is None]
    for popen in running:
        popen.terminate()
    for popen in running:
        try:
            popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


@pytest.fixture(params=JACK_BACKENDS)
def backend(request) -> str:
    """The JACK backend a test's daemons play through: each test that takes it runs on both.  A test
    about one backend only says so with ``@pytest.mark.parametrize("backend", [...], indirect=True)``."""
    return request.param


def in_port(backend: str, client: str, name: str = "in") -> str:
    """The daemon's input port as other JACK clients see it.  The output is ``CLIENT:out`` on both
    backends; rtmidi opens the input as a JACK client of its own (``CLIENT-in``), the native backend
    as a second port of its one client."""
    return f"{client}:{name}" if backend == "jack-native" else f"{client}-in:{name}"


@pytest.fixture
def daemon(spawn, jack_server, backend):
    """Start ``firefly-midi daemon`` on JACK (the ``backend`` fixture's) with extra arguments; wait
    until its ports exist.  The Proc it returns knows its ``client``, ``backend`` and ``in_port``."""

    def start(*extra: str, client: str | None = None) -> Proc:
        client = client or f"ffm-{uuid.uuid4().hex[:6]}"
        args = ["daemon", "--backend", backend, "--client-name", client, "--status-every", "0.5", *extra]
        proc = spawn([sys.executable, "-m", "firefly_midi", *args])
        proc.client, proc.backend, proc.in_port = client, backend, in_port(backend, client)
        try:
            wait_for_port(jack_server, f"{client}:out", timeout=60)
            if "--no-input" not in extra:
                wait_for_port(jack_server, proc.in_port)  # rtmidi: the input opens after the output
            # and it plays: until then the input may still be probed (or opened again, if it opened
            # deaf), and what a test sends meanwhile is the probe's to drop (59 of 60 notes, in CI)
            deadline = time.monotonic() + 20
            while "playing preset" not in proc.log():
                if proc.popen.poll() is not None or time.monotonic() > deadline:
                    raise TimeoutError
                time.sleep(0.02)
        except TimeoutError:
            proc.popen.kill()
            proc.popen.wait()
            pytest.fail(f"the daemon did not open its ports and play: {proc.log()[-3000:]}")
        return proc

    return start


def start_peer(launch: Callable[[list[str]], Proc], daemon_client: str, folder: Path, *extra: str, backend: str = "jack") -> Proc:
    """Start the MIDI peer (tests/integration/peer.py) through ``launch`` against a daemon's client
    on ``backend``; return once it is connected (its ready file), however long a loaded machine takes."""
    ready = folder / f"ready-{uuid.uuid4().hex[:6]}"
    name = f"peer-{uuid.uuid4().hex[:6]}"
    where = ["--daemon", daemon_client, "--daemon-in", in_port(backend, daemon_client)]
    proc = launch([sys.executable, str(HERE / "peer.py"), *where, "--name", name, "--ready-file", str(ready), *extra])
    deadline = time.monotonic() + 20
    while not ready.exists():
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            proc.popen.kill()
            proc.popen.wait()
            pytest.fail(f"the peer did not connect: {proc.log()[-2000:]}")
        time.sleep(0.02)
    proc.started = time.monotonic()
    proc.name = name  # its JACK client: NAME:in hears the daemon's out
    return proc


@pytest.fixture
def peer(spawn, tmp_path, backend):
    """Start the MIDI peer against a daemon's client (on the ``backend`` fixture's backend); wait until connected."""
    return lambda daemon_client, *extra: start_peer(spawn, daemon_client, tmp_path, *extra, backend=backend)


def status_lines(log: str) -> list[dict]:
    """The daemon's ``status {json}`` log lines, parsed; each also holds ``logged_at``, the epoch
    time of its log line (logging's local-time stamp, as ``time.time()`` would give)."""
    lines = []
    for line in log.splitlines():
        if " status {" not in line:
            continue
        status = json.loads(line.split(" status ", 1)[1])
        status["logged_at"] = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        lines.append(status)
    return lines
