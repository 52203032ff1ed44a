"""A private JACK server for the tests and the benchmarks: ``jackd -d dummy`` under a unique name.

The server runs without a sound card (dummy driver, 64 frames at 48 kHz by default), under its own
``JACK_DEFAULT_SERVER`` name with ``JACK_NO_START_SERVER=1``, so a test or benchmark never talks to a
server somebody else left running and never lets libjack spawn one behind its back.

    env = jack_env(f"my-{os.getpid()}")
    server = start_jackd(env)          # may rename env's server: see start_jackd
    ...
    stop_jackd(server)
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from typing import IO

from firefly_midi.errors import FireflyError


class JackUnavailable(FireflyError, RuntimeError):
    """jackd is missing or the private server did not start."""


def jack_env(server: str) -> dict[str, str]:
    """``os.environ`` for a child that must reach the server named ``server`` and no other."""
    return {**os.environ, "JACK_DEFAULT_SERVER": server, "JACK_NO_START_SERVER": "1", "PYTHONUNBUFFERED": "1"}


def jack_tool(env: dict[str, str], *argv: str, timeout: float = 30.0) -> subprocess.CompletedProcess | None:
    """Run a JACK command-line tool (``jack_lsp``, ``jack_connect``...); None when it never answered.

    A tool that meets a client leaving the server can hang inside libjack (seen on a loaded 2-core
    machine with short-lived clients coming and going): one that does not answer within 5 s is
    killed and run again, until ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=5)
        except subprocess.TimeoutExpired:
            continue
    return None


def jack_lsp(env: dict[str, str], *args: str, timeout: float = 30.0) -> str:
    """What ``jack_lsp *args`` prints, or "" when it fails (no server) or never answers."""
    done = jack_tool(env, "jack_lsp", *args, timeout=timeout)
    return done.stdout if done is not None and done.returncode == 0 else ""


def jack_ports(env: dict[str, str]) -> list[str]:
    return [line for line in jack_lsp(env).split("\n") if line]


def wait_for_port(env: dict[str, str], name: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while name not in jack_ports(env):
        if time.monotonic() > deadline:
            raise TimeoutError(f"JACK port {name} did not appear within {timeout} s; ports: {jack_ports(env)}")
        time.sleep(0.05)


def connect(env: dict[str, str], source: str, destination: str, timeout: float = 30.0) -> None:
    """Connect two ports, trying again until ``timeout``: a loaded server can refuse for seconds."""
    deadline = time.monotonic() + timeout
    while (done := jack_tool(env, "jack_connect", source, destination, timeout=timeout)) is None or done.returncode != 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"could not connect {source} -> {destination}; ports: {jack_ports(env)}")
        time.sleep(0.05)


def dead_server_names(registry: str = "/dev/shm/jack-shm-registry") -> list[str]:
    """Names of servers in JACK's shared registry whose process is gone.

    jackd2 keeps 8 server slots in that registry and frees a dead server's slot only when a server
    of the same name starts again.  A jackd that dies without cleaning up (SIGKILL, SIGPIPE) under a
    unique name leaks its slot for good; after 8 such deaths every new server fails with "Too many
    servers already active".  Starting under a dead server's name takes its slot back, and touches
    no other process's server (deleting the registry would pull it from under live ones).
    """
    try:
        with open(registry, "rb") as f:
            data = f.read(8192)
    except OSError:
        return []
    names = []
    for m in re.finditer(rb"jack-\d+:([^:\x00]+):", data):
        if m.start() < 4:
            continue
        pid = struct.unpack_from("<i", data, m.start() - 4)[0]
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            names.append(m.group(1).decode(errors="replace"))
        except (PermissionError, OverflowError):
            pass
    return names


def jackd_command(sync: bool = True, realtime: bool = False, rate: int = 48_000, frames: int = 64) -> list[str]:
    """The command line of a private server.

    ``--sync``: in jack2's default asynchronous mode a client reads what its sources wrote in the
    cycle before, so when a source misses a cycle under load the reader gets that buffer twice or
    never: MIDI events duplicated (a note-on heard twice) or lost, between any two clients.  Measured
    with 3 CPU hogs on 2 vCPUs, 30,000 events rtmidi to rtmidi in 10 s: asynchronous lost 12-61 and
    duplicated up to 26 (three runs), synchronous none (two runs; docs/reliability.md).  The tests
    and benchmarks measure the daemon, not that.  ``--timeout 200``: a client killed mid-cycle
    stalled a synchronous server for 5 s a cycle with the default client timeout.
    ``realtime``: real-time priority, as the README asks musicians to run jackd.
    """
    return [
        "jackd",
        "--realtime" if realtime else "--no-realtime",
        *(("--sync",) if sync else ()),
        *("--timeout", "200"),
        *("-d", "dummy", "-r", str(rate), "-p", str(frames)),
    ]


def stop_process(proc: subprocess.Popen, grace: float = 20.0) -> int | None:
    """SIGTERM, then SIGKILL if it does not go within ``grace`` s; its exit code, None when killed."""
    if proc.poll() is not None:
        return proc.returncode
    proc.terminate()
    try:
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def stop_jackd(server: subprocess.Popen) -> None:
    """A clean stop (SIGTERM) frees the server's registry slot; SIGKILL if it does not go within 5 s."""
    stop_process(server, grace=5.0)


def start_jackd(
    env: dict[str, str],
    sync: bool = True,
    *,
    realtime: bool = False,
    rate: int = 48_000,
    frames: int = 64,
    log: IO[str] | None = None,
    attempts: int = 12,
) -> subprocess.Popen:
    """Start jackd under ``env["JACK_DEFAULT_SERVER"]`` and wait until it serves.

    When JACK's table of servers is full, take the slot of a dead server, renaming ours in ``env``
    (callers hold on to that same dict), or wait 5 s for a live one to stop.  Raises JackUnavailable
    with the end of jackd's log when it cannot start.

    jackd's output goes to ``log`` (a temporary file by default; kept as ``server.log``), never to a
    pipe nobody reads: it logs every xrun, and once a pipe is full jackd blocks in write(), and every
    client of the server with it.
    """
    if not shutil.which("jackd") or not shutil.which("jack_lsp"):
        raise JackUnavailable("jackd is not installed (Debian: apt-get install jackd2)")
    log = log if log is not None else tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (lives as long as the server)
    for attempt in range(attempts):
        log.seek(0)
        log.truncate()
        server = subprocess.Popen(jackd_command(sync, realtime, rate, frames), env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 15
        while server.poll() is None and time.monotonic() < deadline:
            if "system:playback_1" in jack_ports(env):
                server.log = log
                return server
            time.sleep(0.05)
        stop_jackd(server)
        text = log_tail(log)
        if "Too many servers" not in text or attempt == attempts - 1:
            raise JackUnavailable(f"the private JACK server did not start: {text}")
        dead = dead_server_names()
        if dead:
            env["JACK_DEFAULT_SERVER"] = dead[0]
        else:
            time.sleep(5)
    raise AssertionError("unreachable")


def log_tail(log: IO[str], chars: int = 3000) -> str:
    """The end of a server's log.  pread, not seek: jackd writes through the same open file, and a
    seek would move its offset too."""
    size = os.fstat(log.fileno()).st_size
    data = os.pread(log.fileno(), 4 * chars, max(0, size - 4 * chars))
    return data.decode(errors="replace")[-chars:]
