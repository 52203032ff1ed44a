"""A private JACK server for the benchmarks, as a context manager over firefly_midi.testing.jackserver
(the one implementation the tests use too).

    with private_jack() as env:        # env: os.environ for child processes; also set in this process
        subprocess.Popen([...], env=env)
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import IO

from firefly_midi.testing.jackserver import (  # noqa: F401  (connect, jack_ports, stop_process, wait_for_port: for the benchmarks)
    JackUnavailable,
    connect,
    jack_env,
    jack_ports,
    log_tail,
    start_jackd,
    stop_jackd,
    stop_process,
    wait_for_port,
)

_LOGS: dict[str, IO[str]] = {}  # the log file of each running private server, by its name


def server_log(env: dict[str, str], chars: int = 3000) -> str:
    """The end of the log of the private server ``env`` reaches (xruns, timeouts, clients dropped)."""
    log = _LOGS.get(env.get("JACK_DEFAULT_SERVER", ""))
    return "" if log is None else log_tail(log, chars)


@contextlib.contextmanager
def private_jack(rate: int = 48_000, frames: int = 64, realtime: bool = False) -> Iterator[dict[str, str]]:
    """Start a private dummy JACK server; yield the environment that reaches it; stop it afterwards.

    ``realtime``: jackd with real-time priority, as the README asks musicians to run it (the daemon
    keeps its tick thread off real-time scheduling under a server without it).

    The variables are also set in ``os.environ`` for the duration, so rtmidi ports opened in this
    process land on the private server too (libjack reads them when a client opens).
    """
    env = jack_env(f"ffm-bench-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    server = start_jackd(env, realtime=realtime, rate=rate, frames=frames)
    name = env["JACK_DEFAULT_SERVER"]  # start_jackd may have taken a dead server's slot and name
    overrides = {key: env[key] for key in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER", "PYTHONUNBUFFERED")}
    saved = {key: os.environ.get(key) for key in overrides}
    _LOGS[name] = server.log
    try:
        os.environ.update(overrides)
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _LOGS.pop(name, None)
        stop_jackd(server)
        server.log.close()
