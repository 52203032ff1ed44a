"""The JACK server helper the tests and benchmarks share: reading JACK's registry of servers."""

from __future__ import annotations

import os
import struct
import subprocess

from firefly_midi.testing.jackserver import dead_server_names, jackd_command


def test_dead_servers_are_found_in_the_registry_and_live_ones_are_not(tmp_path):
    """Each registry slot holds the server's pid (int32) before ``jack-<uid>:<name>:``; only a slot
    whose process is gone may be taken over."""
    gone = subprocess.Popen(["true"])
    gone.wait()

    def slot(pid: int, name: str) -> bytes:
        return struct.pack("<i", pid) + f"jack-0:{name}:".encode() + b"\x00" * 40

    registry = tmp_path / "jack-shm-registry"
    registry.write_bytes(b"\x00" * 16 + slot(gone.pid, "ffm-dead") + slot(os.getpid(), "ffm-alive"))
    assert dead_server_names(str(registry)) == ["ffm-dead"]
    assert dead_server_names(str(tmp_path / "missing")) == []


def test_the_private_server_is_synchronous_unless_asked_otherwise():
    assert "--sync" in jackd_command() and "--sync" not in jackd_command(sync=False)
    assert jackd_command(realtime=True)[1] == "--realtime" and "dummy" in jackd_command()
