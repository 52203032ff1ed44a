"""Starting a daemon for ``firefly-midi run``: detached, once, and waited for until it answers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import platformdirs

from firefly_midi.control.client import request
from firefly_midi.control.protocol import ControlError, NoDaemonError, NoReply
from firefly_midi.control.sockets import socket_path


def start_daemon_in_background(path: str | os.PathLike[str] | None, daemon_args: list[str], wait_s: float = 300.0) -> bool:
    """Start ``firefly-midi daemon`` detached, unless one already answers on the socket.

    Returns True when it started one.  It waits until the daemon answers: its very first start
    compiles the swarm kernels, a minute or more on a slow machine, and while it does, the socket
    accepts but nobody replies yet (a daemon found in that state is waited for, not doubled).
    """
    path = socket_path(path)
    answer = _daemon_answers(path)
    if answer is None:
        print("a firefly-midi daemon is starting; waiting for it", file=sys.stderr)
        wait_for_daemon(path, wait_s, who="the starting daemon")
    if answer is not False:
        return False
    log_path = Path(platformdirs.user_log_dir("firefly-midi")) / "daemon.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"starting the firefly-midi daemon in the background (log: {log_path})", file=sys.stderr)
    with open(log_path, "ab") as log_file:
        child = subprocess.Popen(
            [sys.executable, "-m", "firefly_midi", "daemon", "--socket", os.fspath(path), *daemon_args],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,  # it outlives this terminal and the UI
        )
    wait_for_daemon(path, wait_s, child, f"the daemon (see {log_path})")
    return True


def _daemon_answers(path: Path) -> bool | None:
    """True: a daemon answered; False: nothing listens; None: one listens but is busy starting."""
    try:
        request(path, "status", timeout=2.0)
        return True
    except NoDaemonError:
        return False
    except NoReply:
        return None


def wait_for_daemon(path: str | os.PathLike[str], wait_s: float = 300.0, child: Any = None, who: str = "the daemon") -> None:
    """Wait until a daemon answers on ``path``, saying once that its first start compiles.

    A daemon answers once its ports are open and it ticks.  ``child``: its process, if ours (an exit
    raises at once).  ControlError when nothing answers within ``wait_s`` seconds.
    """
    path = Path(path)
    deadline, said = time.monotonic() + wait_s, False
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            raise ControlError("daemon", f"{who} exited at start (code {child.returncode})")
        if _daemon_answers(path):
            return
        if not said and time.monotonic() > deadline - wait_s + 3.0:
            print("waiting for the daemon to answer (it plays at once; on a fresh install it compiles its kernels aside)", file=sys.stderr)
            said = True
        time.sleep(0.2)
    raise ControlError("daemon", f"{who} did not answer within {wait_s:g} s")
