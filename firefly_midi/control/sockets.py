"""The control socket's file: where it lives, and claiming it (one daemon per path, crash leftovers replaced)."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import stat
import struct
import sys
import warnings
from pathlib import Path

import platformdirs

from firefly_midi.control.protocol import BadArgument, ControlError, SocketBusyError

log = logging.getLogger("firefly_midi.control")

SUN_PATH_MAX = 107  # bytes of a Unix socket path (108 with the terminating NUL)


def default_socket_path() -> Path:
    """``$XDG_RUNTIME_DIR/firefly-midi/control.sock`` (platformdirs' runtime folder elsewhere)."""
    with warnings.catch_warnings():  # no XDG_RUNTIME_DIR: platformdirs' fallback (/tmp/runtime-UID) is fine
        warnings.simplefilter("ignore")
        return Path(platformdirs.user_runtime_dir("firefly-midi")) / "control.sock"


def socket_path(path: str | os.PathLike[str] | None) -> Path:
    """``path`` as a Path, or the default one."""
    return Path(path) if path is not None else default_socket_path()


def claim_socket(path: str | os.PathLike[str] | None = None) -> socket.socket:
    """Bind and listen on ``path`` (mode 0600, in a folder made 0700), replacing a stale socket.

    A socket that still accepts connections belongs to a live daemon: ``SocketBusyError`` names it
    (with its pid where the system tells).  A socket that refuses them (ECONNREFUSED: its daemon
    crashed) or an empty leftover file is removed and replaced.  Anything else at the path is left
    alone and refused with a clear message.
    """
    path = socket_path(path).expanduser().absolute()
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise BadArgument(f"the socket path is too long for a Unix socket ({SUN_PATH_MAX} bytes at most): {path}")
    _make_folder(path.parent)
    for _ in range(3):
        _clear_stale(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_mask = os.umask(0o177)  # born 0600: no moment where others could connect
        try:
            sock.bind(os.fspath(path))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:  # another daemon bound it just now: check it again
                continue
            raise ControlError("internal", f"cannot listen on {path}: {exc.strerror or exc}") from None
        finally:
            os.umask(old_mask)
        os.chmod(path, 0o600)
        sock.listen(128)
        return sock
    raise ControlError("busy", f"cannot claim {path}: something keeps taking it")


def _make_folder(folder: Path) -> None:
    if folder.is_dir():
        if folder == default_socket_path().parent and folder.stat().st_uid == os.getuid():
            os.chmod(folder, 0o700)
        return
    try:
        folder.mkdir(parents=True, mode=0o700)
        os.chmod(folder, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ControlError("internal", f"cannot make the folder {folder} for the control socket: {exc.strerror or exc}") from None


def _clear_stale(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISSOCK(st.st_mode):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(os.fspath(path))
        except ConnectionRefusedError:
            log.info("replacing the stale control socket %s (its daemon is gone)", path)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        except FileNotFoundError:
            return
        except TimeoutError:  # a full backlog: alive, just busy
            raise SocketBusyError(path, None) from None
        except OSError as exc:
            raise ControlError("internal", f"cannot check the control socket {path}: {exc.strerror or exc}") from None
        try:
            pid = _peer_pid(probe)
            ours = _reads_hello(probe)
        finally:
            probe.close()
        raise SocketBusyError(path, pid, ours)
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        log.info("replacing the leftover file %s with the control socket", path)
        path.unlink()
        return
    raise ControlError("busy", f"{path} exists and is not a control socket; remove it or give another --socket")


def _peer_pid(sock: socket.socket) -> int | None:
    try:
        if hasattr(socket, "SO_PEERCRED"):  # Linux: struct ucred {pid, uid, gid}
            return struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[0] or None
        if sys.platform == "darwin":  # LOCAL_PEERPID at SOL_LOCAL
            return struct.unpack("i", sock.getsockopt(0, 0x002, 4))[0] or None
    except OSError:
        pass
    return None


def _reads_hello(sock: socket.socket) -> bool:
    try:
        sock.settimeout(0.5)
        line = sock.recv(4096).split(b"\n", 1)[0]
        return json.loads(line).get("hello") == "firefly-midi"
    except (OSError, ValueError, AttributeError):
        return True  # a silent peer on our path: most likely a daemon too busy to greet
