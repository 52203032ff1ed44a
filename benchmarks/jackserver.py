"""A private JACK server for the benchmarks: ``jackd -d dummy`` under a unique name, killed at the end.

As in tests/integration: the server runs without a sound card (dummy driver, 64 frames at 48 kHz by
default), under its own ``JACK_DEFAULT_SERVER`` name with ``JACK_NO_START_SERVER=1``, so a benchmark
never talks to a server somebody else left running and never lets libjack spawn one behind its back.

    with private_jack() as env:        # env: os.environ for child processes; also set in this process
        subprocess.Popen([...], env=env)
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import IO


class JackUnavailable(RuntimeError):
    """jackd is missing or the private server did not start."""


def jack_ports(env: dict[str, str]) -> list[str]:
    done = subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True, timeout=10)
    return [line for line in done.stdout.split("\n") if line] if done.returncode == 0 else []


def wait_for_port(env: dict[str, str], name: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while name not in jack_ports(env):
        if time.monotonic() > deadline:
            raise TimeoutError(f"JACK port {name} did not appear within {timeout} s; ports: {jack_ports(env)}")
        time.sleep(0.05)


def connect(env: dict[str, str], source: str, destination: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(["jack_connect", source, destination], env=env, capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"could not connect {source} -> {destination}; ports: {jack_ports(env)}")
        time.sleep(0.05)


def dead_server_names(registry: str = "/dev/shm/jack-shm-registry") -> list[str]:
    """Names of servers in JACK's shared registry whose process is gone.

    jackd2 keeps 8 server slots in that registry and frees a dead server's slot only when a server
    of the same name starts again.  A jackd that dies without cleaning up (SIGKILL, SIGPIPE) under a
    unique name leaks its slot for good; after 8 such deaths every new server fails with "Too many
    servers already active".  Starting under a dead server's name takes its slot back.
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


_SYNCHRONOUS = ("--sync", "--timeout", "200")  # why: the comments below


def _start(env: dict[str, str], rate: int, frames: int, log, realtime: bool = False, attempts: int = 12) -> subprocess.Popen:
    """Start jackd under ``env["JACK_DEFAULT_SERVER"]``; when JACK's table of servers is full, take
    the slot of a dead server (renaming ours in ``env``) or wait for one to stop."""
    for attempt in range(attempts):
        log.seek(0)
        log.truncate()
        server = subprocess.Popen(
            # --sync: asynchronous jack2 duplicates or drops MIDI events of a client that misses a
            # cycle (tests/integration/conftest.py start_jackd); the benchmarks measure the daemon.
            # --timeout 200: a killed client stalls a synchronous server for 5 s a cycle by default
            ["jackd", "--realtime" if realtime else "--no-realtime", *_SYNCHRONOUS, "-d", "dummy", "-r", str(rate), "-p", str(frames)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 15
        while server.poll() is None and time.monotonic() < deadline:
            if "system:playback_1" in jack_ports(env):
                return server
            time.sleep(0.05)
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.seek(0)
        text = log.read()
        if "Too many servers" not in text or attempt == attempts - 1:
            raise JackUnavailable(f"the private JACK server did not start: {text[-2000:]}")
        dead = dead_server_names()
        if dead:
            env["JACK_DEFAULT_SERVER"] = dead[0]
        else:
            time.sleep(5)
    raise AssertionError("unreachable")


_LOGS: dict[str, IO[str]] = {}  # the log file of each running private server, by its name


def server_log(env: dict[str, str], chars: int = 3000) -> str:
    """The end of the log of the private server ``env`` reaches (xruns, timeouts, clients dropped)."""
    log = _LOGS.get(env.get("JACK_DEFAULT_SERVER", ""))
    if log is None:
        return ""
    # pread, not seek: jackd writes through the same open file, and a seek would move its offset too
    size = os.fstat(log.fileno()).st_size
    data = os.pread(log.fileno(), 4 * chars, max(0, size - 4 * chars))
    return data.decode(errors="replace")[-chars:]


@contextlib.contextmanager
def private_jack(rate: int = 48_000, frames: int = 64, realtime: bool = False) -> Iterator[dict[str, str]]:
    """Start a private dummy JACK server; yield the environment that reaches it; stop it afterwards.

    ``realtime``: jackd with real-time priority, as the README asks musicians to run it (the daemon
    keeps its tick thread off real-time scheduling under a server without it).

    The variables are also set in ``os.environ`` for the duration, so rtmidi ports opened in this
    process land on the private server too (libjack reads them when a client opens).
    """
    if not shutil.which("jackd") or not shutil.which("jack_lsp"):
        raise JackUnavailable("jackd is not installed (Debian: apt-get install jackd2)")
    name = f"ffm-bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    overrides = {"JACK_DEFAULT_SERVER": name, "JACK_NO_START_SERVER": "1", "PYTHONUNBUFFERED": "1"}
    saved = {key: os.environ.get(key) for key in overrides}
    env = {**os.environ, **overrides}
    # jackd's log goes to a file, never a pipe: under load it logs every xrun, and a pipe nobody
    # reads fills up (64 KiB), blocks jackd in write() and with it every client on the server.
    with tempfile.TemporaryFile(mode="w+") as log:
        server = _start(env, rate, frames, log, realtime)
        overrides["JACK_DEFAULT_SERVER"] = env["JACK_DEFAULT_SERVER"]
        _LOGS[env["JACK_DEFAULT_SERVER"]] = log
        try:
            os.environ.update(overrides)
            yield env
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            _LOGS.pop(env["JACK_DEFAULT_SERVER"], None)
            if server.poll() is None:
                server.terminate()
                try:
                    server.wait(5)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
