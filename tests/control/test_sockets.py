"""The socket file: owner-only, one daemon per path, crash leftovers replaced, and a daemon still
starting waited for rather than doubled."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading

import pytest

from firefly_midi import control
from firefly_midi.control import ControlError, SocketBusyError, claim_socket, request

from .support import N


def test_socket_is_owner_only(path):
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_default_folder_is_made_owner_only(monkeypatch, daemon, folder):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder / "run"))
    default = control.default_socket_path()
    assert default == folder / "run" / "firefly-midi" / "control.sock"
    srv = control.serve(daemon)  # claimed, not started: still refuses a second claim
    try:
        assert stat.S_IMODE(os.stat(default.parent).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(default).st_mode) == 0o600
    finally:
        srv.close()
    assert not default.exists()


def test_a_second_daemon_on_the_same_socket_is_refused(path):
    with pytest.raises(SocketBusyError) as caught:
        claim_socket(path)
    assert str(caught.value).startswith(f"another firefly-midi daemon is running on {path} (pid {os.getpid()})")
    assert isinstance(caught.value, RuntimeError) and isinstance(caught.value, ControlError)
    assert request(path, "get", key="swarm.n") == N  # the live one is untouched


def test_a_stale_socket_of_a_killed_process_is_replaced(folder, daemon):
    stale = folder / "stale.sock"
    code = f"import os, socket; s = socket.socket(socket.AF_UNIX); s.bind({str(stale)!r}); s.listen(); os.kill(os.getpid(), 9)"
    subprocess.run([sys.executable, "-c", code], check=False, timeout=30)
    assert stale.exists()
    srv = control.serve(daemon, stale).start()
    try:
        assert request(stale, "get", key="swarm.n") == N
    finally:
        srv.close()
    assert not stale.exists()


def test_a_plain_leftover_file_is_replaced_but_not_a_file_with_data(folder, daemon):
    left = folder / "left.sock"
    left.touch()
    srv = control.serve(daemon, left).start()
    try:
        assert request(left, "get", key="swarm.n") == N
    finally:
        srv.close()
    precious = folder / "precious.sock"
    precious.write_text("keep me")
    with pytest.raises(ControlError, match="is not a control socket"):
        claim_socket(precious)
    assert precious.read_text() == "keep me"


def test_close_removes_only_its_own_socket(folder, daemon):
    mine = folder / "mine.sock"
    srv = control.serve(daemon, mine).start()
    mine.unlink()
    replacement = socket.socket(socket.AF_UNIX)
    replacement.bind(str(mine))  # someone else's now
    srv.close()
    assert mine.exists()
    replacement.close()


def test_a_path_too_long_for_a_unix_socket_is_a_clear_error(folder):
    with pytest.raises(ControlError, match="too long"):
        claim_socket(folder / ("x" * 120) / "control.sock")


def test_a_daemon_still_starting_is_waited_for_not_doubled(daemon, folder, capsys):
    """Its first start compiles for a minute: the socket accepts and nobody answers yet (a launcher
    that took that for an error crashed `firefly-midi run` on every fresh install)."""
    path = folder / "starting.sock"
    srv = control.serve(daemon, path)  # claimed, not started: connections wait, nobody replies
    starter = threading.Timer(3.0, srv.start)  # after the launcher's first probe (2 s) went unanswered
    starter.start()
    try:
        assert control.start_daemon_in_background(path, ["--never-used"], wait_s=30) is False
        assert control.request(path, "status")["preset"]
    finally:
        starter.cancel()  # a failed assert above must not leave the timer's thread behind
        starter.join(10)
        srv.close()
    assert "is starting" in capsys.readouterr().err
