"""The control-plane tests' daemons: one shared by the package (``path``), and one per test (``own``).

The daemons run portless (JACK_DEFAULT_SERVER names no server, so no MIDI backend opens) with their
real tick threads; each server runs on its own thread, as in ``firefly-midi daemon``.

Every test passes alone and in any order: tests on the shared daemon set what they assert and leave
its preset, pause state and bindings alone; a test that switches presets, pauses, resets, learns or
stops gets a daemon of its own.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from firefly_midi import control

from .support import OWN_N, N, portless_daemon


@pytest.fixture(scope="package")
def folder():
    """A short folder: a Unix socket path is at most 107 bytes, and pytest's tmp_path can be longer."""
    path = Path(tempfile.mkdtemp(prefix="ffctl-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="package")
def daemon():
    with portless_daemon(f"swarm.n={N}") as d:
        yield d


@pytest.fixture(scope="package")
def server(daemon, folder):
    srv = control.serve(daemon, folder / "control.sock").start()
    yield srv
    srv.close()
    assert not srv.path.exists(), "close() removes the socket"


@pytest.fixture(scope="package")
def path(server):
    return server.path


@pytest.fixture
def own(folder):
    """A daemon and server of this test's own, playing on one channel: (daemon, socket path)."""
    with portless_daemon(f"swarm.n={OWN_N}", "mapping.channels=3") as d:
        srv = control.serve(d, Path(tempfile.mkdtemp(prefix="own-", dir=folder)) / "c.sock").start()
        try:
            yield d, srv.path
        finally:
            srv.close()
