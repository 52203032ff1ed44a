"""Real MIDI for the integration tests: a private JACK server per test session, and real processes.

``jackd -d dummy`` runs a real JACK server without a sound card; each session starts its own under a
unique ``JACK_DEFAULT_SERVER`` name and never uses one left running.  Without jackd the tests skip,
except under ``CI=true``, where a MIDI test that would skip fails instead.
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
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(why: str) -> None:
    if ON_CI:
        pytest.fail(f"{why} (CI=true: MIDI tests must not skip)")
    pytest.skip(why)


def jack_env(server: str) -> dict[str, str]:
    return {**os.environ, "JACK_DEFAULT_SERVER": server, "JACK_NO_START_SERVER": "1", "PYTHONUNBUFFERED": "1"}


def jack_ports(env: dict[str, str]) -> list[str]:
    done = subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True, timeout=10)
    return done.stdout.split("\n") if done.returncode == 0 else []


def wait_for_port(env: dict[str, str], name: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while name not in jack_ports(env):
        if time.monotonic() > deadline:
            raise TimeoutError(f"JACK port {name} did not appear within {timeout} s; ports: {jack_ports(env)}")
        time.sleep(0.05)


# A private server: dummy driver, 64 frames at 48 kHz, synchronous (start_jackd says why) with a 200 ms
# client timeout (a client killed mid-cycle stalled a synchronous server for 5 s a cycle by default).
JACKD = ["jackd", "--no-realtime", "--sync", "--timeout", "200", "-d", "dummy", "-r", "48000", "-p", "64"]
JACKD_ASYNC = [arg for arg in JACKD if arg != "--sync"]


def start_jackd(env: dict[str, str], sync: bool = True) -> subprocess.Popen:
    """jackd with the dummy driver; waits until it serves, raises RuntimeError with its log if not.

    Its output goes to a file, never to a pipe nobody reads: jackd logs every xrun, and once a pipe
    is full it blocks, and every client of the server with it.

    ``--sync``: in jack2's default asynchronous mode a client reads what its sources wrote in the
    cycle before, so when a source misses a cycle under load the reader gets that buffer twice or
    never: MIDI events duplicated (a note-on heard twice) or lost, between any two clients.  Measured
    with 3 CPU hogs on 2 vCPUs, 30,000 events rtmidi to rtmidi in 10 s: asynchronous lost 12-61 and
    duplicated up to 26 (three runs), synchronous none (two runs; docs/reliability.md).  The tests
    measure the daemon, not that.
    """
    log_path = Path(tempfile.mkstemp(prefix=f"{env['JACK_DEFAULT_SERVER']}-", suffix=".log")[1])
    with open(log_path, "w") as log:
        server = subprocess.Popen(JACKD if sync else JACKD_ASYNC, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(env, "system:playback_1", timeout=15)
    except TimeoutError:
        server.kill()
        server.wait()
        raise RuntimeError(log_path.read_text()[-2000:]) from None
    return server


def forget_dead_servers() -> bool:
    """Drop JACK's shared-memory registry when no jackd runs at all.

    JACK keeps 8 server slots in /dev/shm and frees a dead server's slot only for a server of the same
    name, so servers that were killed (not stopped) under unique names fill it ("Too many servers
    already active").  With no jackd alive, nothing in the registry is in use.
    """
    if subprocess.run(["pgrep", "-x", "jackd"], capture_output=True).returncode == 0:
        return False
    for stale in Path("/dev/shm").glob("jack*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    return True


@pytest.fixture(scope="session")
def compiled_kernels():
    """Compile the numba kernels once, before any daemon starts: on a fresh checkout that takes a
    while, and daemons started in parallel would each compile them inside their start-up timeout."""
    # the instant path (pulse-sine) and the delayed one with rewiring (ermentrout-800, the default
    # and the soak's): a daemon compiling the latter itself outlived the soak's 120 s port wait
    warm = (
        "from firefly_midi import presets; from firefly_midi.daemon import Daemon\n"
        "for name in ('pulse-sine', 'ermentrout-800'): Daemon(presets.resolve(name))._warm_up()"
    )
    subprocess.run([sys.executable, "-c", warm], check=True, timeout=600, capture_output=True)


def private_jackd(env: dict[str, str], sync: bool = True) -> subprocess.Popen:
    """Start a private dummy server under ``env``'s name (skip, or fail on CI, when that cannot be)."""
    if not shutil.which("jackd") or not shutil.which("jack_lsp"):
        unavailable("jackd is not installed (Debian: apt-get install jackd2)")
    try:
        return start_jackd(env, sync)
    except RuntimeError as first:
        if "Too many servers" not in str(first) or not forget_dead_servers():
            unavailable(f"the private JACK server did not start: {first}")
    try:
        return start_jackd(env, sync)
    except RuntimeError as second:
        unavailable(f"the private JACK server did not start: {second}")
        raise


@pytest.fixture
def jack_server(compiled_kernels, request):
    """The environment of a private, running JACK dummy server (64 frames at 48 kHz), one per test:
    a test never meets the clients (or zombies of killed ones) another test left on a server.
    Synchronous (start_jackd says why), unless the test is marked ``async_jack``."""
    env = jack_env(f"ffm-test-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    sync = request.node.get_closest_marker("async_jack") is None
    RUNNING[env["JACK_DEFAULT_SERVER"]] = private_jackd(env, sync)
    yield env
    stop_jackd(RUNNING.pop(env["JACK_DEFAULT_SERVER"]))


RUNNING: dict[str, subprocess.Popen] = {}  # jack_server's jackd, by server name: see jackd_of


def jackd_of(env: dict[str, str]) -> subprocess.Popen:
    """The jackd process of the ``jack_server`` fixture whose environment is ``env``."""
    return RUNNING[env["JACK_DEFAULT_SERVER"]]


def stop_jackd(server: subprocess.Popen) -> None:
    """SIGTERM (a clean stop frees its registry slot), SIGKILL if it does not go within 5 s."""
    if server.poll() is not None:
        return
    server.terminate()
    try:
        server.wait(5)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


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


@pytest.fixture
def daemon(spawn, jack_server, tmp_path):
    """Start ``firefly-midi daemon`` on JACK with extra arguments; wait until its ports exist."""

    def start(*extra: str, client: str | None = None) -> Proc:
        client = client or f"ffm-{uuid.uuid4().hex[:6]}"
        proc = spawn(
            [sys.executable, "-m", "firefly_midi", "daemon", "--backend", "jack", "--client-name", client, "--status-every", "0.5", *extra]
        )
        proc.client = client
        try:
            wait_for_port(jack_server, f"{client}:out")
            if "--no-input" not in extra:
                wait_for_port(jack_server, f"{client}-in:in")  # the input opens after the output
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


def start_peer(launch: Callable[[list[str]], Proc], daemon_client: str, folder: Path, *extra: str) -> Proc:
    """Start the MIDI peer (tests/integration/peer.py) through ``launch`` against a daemon's client;
    return once it is connected (its ready file), however long a loaded machine takes to start it."""
    ready = folder / f"ready-{uuid.uuid4().hex[:6]}"
    name = f"peer-{uuid.uuid4().hex[:6]}"
    proc = launch([sys.executable, str(HERE / "peer.py"), "--daemon", daemon_client, "--name", name, "--ready-file", str(ready), *extra])
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
def peer(spawn, tmp_path):
    """Start the MIDI peer against a daemon's client; wait until connected."""
    return lambda daemon_client, *extra: start_peer(spawn, daemon_client, tmp_path, *extra)


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
