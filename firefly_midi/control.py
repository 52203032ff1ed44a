"""The control plane: a Unix-socket, JSON-lines protocol (docs/control.md, version 1), server and client.

The server runs an asyncio loop on a thread of its own; the tick never runs on it.  Each request calls
one of the daemon's thread-safe methods, which check the request in this thread and queue the change
for the tick boundary, so nothing here ever waits for a tick.  Each telemetry subscriber has its own
task, which sends a frame only while that client's write buffer is short: a client that does not read
gets frames dropped (and counted), never the daemon slowed nor the other clients held up.

Clients: ``ControlClient`` (asyncio, for the TUI) and ``request()`` (blocking, for ``ctl`` and tests);
the ``firefly-midi ctl`` command line is in ctl.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import errno
import itertools
import json
import logging
import math
import os
import shutil
import socket
import stat
import struct
import sys
import threading
import warnings
from collections import deque
from pathlib import Path
from typing import Any

import platformdirs

from firefly_midi import __version__
from firefly_midi import params as P

log = logging.getLogger("firefly_midi.control")

PROTOCOL = 1
LINE_LIMIT = 64 * 1024  # bytes in one request line, not counting its newline
CLIENT_LINE_LIMIT = 16 * 1024 * 1024  # a frame of 65,536 phases and 4,096 flashes is well under this
FRAME_BACKLOG = 256 * 1024  # a subscriber with more than this unsent gets the next frame dropped
READ_CHUNK = 64 * 1024
DEFAULT_FPS, MIN_FPS, MAX_FPS = 30, 1, 60
DEFAULT_POINTS, MIN_POINTS, MAX_POINTS = 2048, 16, 65536
MAX_FORWARD_S = 600.0
MAX_FLASHES_PER_FRAME = 4096
SUN_PATH_MAX = 107  # bytes of a Unix socket path (108 with the terminating NUL)


# ---------------------------------------------------------------------------------------------- errors
class ControlError(RuntimeError):
    """An error reply (``code``, ``message``), or a control-plane failure on this side."""

    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(message)


class SocketBusyError(ControlError):
    """Another daemon is listening on the socket path: this one must not start."""

    def __init__(self, path: Path, pid: int | None, ours: bool = True):
        who = "another firefly-midi daemon is running" if ours else "another process is listening"
        pid_text = f" (pid {pid})" if pid else ""
        super().__init__("busy", f"{who} on {path}{pid_text}; stop it first, or give this one another --socket")
        self.path, self.pid = path, pid


def command_name() -> str:
    """This program as the user can type it: ``firefly-midi`` when PATH finds it, else the path it
    was started by (a venv not activated: ``.venv/bin/firefly-midi``)."""
    started = sys.argv[0]
    if os.path.basename(started) != "firefly-midi":  # python -m firefly_midi, tests: the usual name
        return "firefly-midi"
    found = shutil.which("firefly-midi")
    if found is not None and os.path.realpath(found) == os.path.realpath(started):
        return "firefly-midi"
    relative = os.path.relpath(started)
    return started if relative.startswith("..") else relative


class NoDaemonError(ControlError, ConnectionError):
    """Nothing answers on the socket path."""

    def __init__(self, path: Path, detail: str = ""):
        extra = f" ({detail})" if detail else ""
        super().__init__("no_daemon", f"no firefly-midi daemon on {path}{extra}; start one with `{command_name()} run`")
        self.path = path


class Disconnected(ControlError, ConnectionError):
    """The daemon closed the connection (it stopped, or dropped this client)."""

    def __init__(self, detail: str = "the daemon closed the connection"):
        super().__init__("disconnected", detail)


def default_socket_path() -> Path:
    """``$XDG_RUNTIME_DIR/firefly-midi/control.sock`` (platformdirs' runtime folder elsewhere)."""
    with warnings.catch_warnings():  # no XDG_RUNTIME_DIR: platformdirs' fallback (/tmp/runtime-UID) is fine
        warnings.simplefilter("ignore")
        return Path(platformdirs.user_runtime_dir("firefly-midi")) / "control.sock"


# ---------------------------------------------------------------------------------------- JSON lines
def _plain(obj: Any) -> Any:
    """What ``json`` cannot encode, made plain: ramps as tables, paths as text, numpy as lists."""
    if hasattr(obj, "as_table"):
        return obj.as_table()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=str)
    return str(obj)


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities as null (strict JSON has neither)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if obj is None or isinstance(obj, str | int | bool):
        return obj
    return _finite(_plain(obj))


def encode(obj: Any) -> bytes:
    """One protocol line: compact, strict JSON (no NaN), UTF-8, ending in a newline."""
    try:
        text = json.dumps(obj, default=_plain, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        text = json.dumps(_finite(obj), default=_plain, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8") + b"\n"


def _ok(rid: Any, result: Any) -> dict[str, Any]:
    return {"id": rid, "ok": True, "result": result}


def _error(rid: Any, code: str, message: str) -> dict[str, Any]:
    return {"id": rid, "ok": False, "error": {"code": code, "message": message}}


# ----------------------------------------------------------------------------------------- the socket
def claim_socket(path: str | os.PathLike[str] | None = None) -> socket.socket:
    """Bind and listen on ``path`` (mode 0600, in a folder made 0700), replacing a stale socket.

    A socket that still accepts connections belongs to a live daemon: ``SocketBusyError`` names it
    (with its pid where the system tells).  A socket that refuses them (ECONNREFUSED: its daemon
    crashed) or an empty leftover file is removed and replaced.  Anything else at the path is left
    alone and refused with a clear message.
    """
    path = Path(path) if path is not None else default_socket_path()
    path = path.expanduser().absolute()
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise ControlError("bad_argument", f"the socket path is too long for a Unix socket ({SUN_PATH_MAX} bytes at most): {path}")
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


# ---------------------------------------------------------------------------------------- the server
def _number(args: dict[str, Any], name: str, default: float | None = None) -> float:
    value = args.get(name, default)
    if value is None:
        raise _BadArgument(f"missing argument {name!r}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _BadArgument(f"{name} must be a number, got {_brief(value)}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _BadArgument(f"{name} must be a number, got {_brief(value)}")
    return value


def _text(args: dict[str, Any], name: str) -> str:
    if name not in args:
        raise _BadArgument(f"missing argument {name!r}")
    value = args[name]
    if not isinstance(value, str) or not value:
        raise _BadArgument(f"{name} must be a non-empty string, got {_brief(value)}")
    return value


class _BadArgument(ValueError):
    pass


def _brief(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# name → (required arguments, optional arguments)
COMMANDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "status": ((), ()),
    "get": ((), ("key",)),
    "set": (("key", "value"), ()),
    "preset": (("name",), ()),
    "presets": ((), ()),
    "save": (("name",), ()),
    "pause": ((), ()),
    "resume": ((), ()),
    "reset": ((), ()),
    "forward": (("seconds",), ()),
    "panic": ((), ()),
    "stop": ((), ()),
    "subscribe": ((), ("fps", "points")),
    "unsubscribe": ((), ()),
    "learn": (("key",), ("lo", "hi")),
    "unlearn": (("key",), ()),
}


class Commands:
    """The commands of the protocol over one daemon: a request dict in, a reply dict out, never a raise.

    The socket server and the OSC server share it, so both check and answer alike.
    """

    def __init__(self, daemon: Any):
        self.daemon = daemon

    def execute(self, request: dict[str, Any], conn: _Connection | None = None) -> dict[str, Any]:
        rid = request.get("id")
        cmd = request.get("cmd")
        if cmd is None:
            return _error(rid, "bad_argument", 'a request needs "cmd": one of ' + ", ".join(COMMANDS))
        if not isinstance(cmd, str) or cmd not in COMMANDS:
            near = difflib.get_close_matches(str(cmd), COMMANDS, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            return _error(rid, "unknown_command", f"unknown command {_brief(cmd)}{hint} (commands: {', '.join(COMMANDS)})")
        args = {k: v for k, v in request.items() if k not in ("id", "cmd")}
        required, optional = COMMANDS[cmd]
        for name in args:
            if name not in required and name not in optional:
                expected = ", ".join(required + optional) or "none"
                return _error(rid, "bad_argument", f"{cmd} takes no argument {_brief(name)} (arguments: {expected})")
        for name in required:
            if name not in args:
                return _error(rid, "bad_argument", f"{cmd} needs the argument {name!r}")
        try:
            return _ok(rid, getattr(self, "_cmd_" + cmd)(conn, **args))
        except P.ParamError as exc:
            return _error(rid, "bad_param", str(exc))
        except FileNotFoundError as exc:
            return _error(rid, "not_found", str(exc))
        except _BadArgument as exc:
            return _error(rid, "bad_argument", str(exc))
        except Exception as exc:
            log.exception("control command %s failed", cmd)
            return _error(rid, "internal", f"{cmd} failed: {type(exc).__name__}: {exc}")

    def _cmd_status(self, conn: _Connection | None) -> Any:
        return self.daemon.status()

    def _cmd_get(self, conn: _Connection | None, key: Any = None) -> Any:
        if key is not None and not isinstance(key, str):
            raise _BadArgument(f"key must be a string, got {_brief(key)}")
        return self.daemon.get(key)

    def _cmd_set(self, conn: _Connection | None, key: Any, value: Any) -> Any:
        if not isinstance(key, str):
            raise _BadArgument(f"key must be a string, got {_brief(key)}")
        return self.daemon.set(key, value)

    def _cmd_preset(self, conn: _Connection | None, name: Any) -> Any:
        name = _text({"name": name}, "name")
        self.daemon.load_preset(name)
        return {"preset": name}

    def _cmd_presets(self, conn: _Connection | None) -> Any:
        from firefly_midi import presets

        return {name: str(path) for name, path in presets.available().items()}

    def _cmd_save(self, conn: _Connection | None, name: Any) -> Any:
        path = self.daemon.save_preset(_text({"name": name}, "name"))
        return {"path": str(path)}

    def _cmd_pause(self, conn: _Connection | None) -> Any:
        self.daemon.pause()
        return {}

    def _cmd_resume(self, conn: _Connection | None) -> Any:
        self.daemon.resume()
        return {}

    def _cmd_reset(self, conn: _Connection | None) -> Any:
        self.daemon.reset()
        return {}

    def _cmd_panic(self, conn: _Connection | None) -> Any:
        self.daemon.panic()
        return {}

    def _cmd_forward(self, conn: _Connection | None, seconds: Any) -> Any:
        s = _number({"seconds": seconds}, "seconds")
        if not 0 < s <= MAX_FORWARD_S:
            raise _BadArgument(f"seconds must be in 0 < seconds <= {MAX_FORWARD_S:g}, got {_brief(seconds)}")
        try:
            self.daemon.forward(s)
        except ValueError as exc:
            raise _BadArgument(str(exc)) from None
        return {"seconds": s}

    def _cmd_stop(self, conn: _Connection | None) -> Any:
        log.info("stop requested by a control client")
        self.daemon.request_stop()
        return {}

    def _cmd_subscribe(self, conn: _Connection | None, fps: Any = DEFAULT_FPS, points: Any = DEFAULT_POINTS) -> Any:
        fps = _number({"fps": fps}, "fps")
        if not MIN_FPS <= fps <= MAX_FPS:
            raise _BadArgument(f"fps must be in {MIN_FPS}..{MAX_FPS}, got {_brief(fps)}")
        if isinstance(points, bool) or not isinstance(points, int) or not MIN_POINTS <= points <= MAX_POINTS:
            raise _BadArgument(f"points must be an integer in {MIN_POINTS}..{MAX_POINTS}, got {_brief(points)}")
        if conn is None:
            raise _BadArgument("subscribe works on the control socket only")
        conn.subscribe(fps, points)
        return {}

    def _cmd_learn(self, conn: _Connection | None, key: Any, lo: Any = None, hi: Any = None) -> Any:
        """The next control change to arrive on the input will move ``key`` between lo and hi."""
        return self.daemon.learn(_text({"key": key}, "key"), lo, hi)

    def _cmd_unlearn(self, conn: _Connection | None, key: Any) -> Any:
        return {"removed": self.daemon.unlearn(_text({"key": key}, "key"))}

    def _cmd_unsubscribe(self, conn: _Connection | None) -> Any:
        if conn is not None:
            conn.unsubscribe()
        return {}


class ControlServer(Commands):
    """The socket server of one daemon: ``start()`` runs it on its own thread, ``close()`` ends it."""

    def __init__(self, daemon: Any, sock: socket.socket, path: Path):
        super().__init__(daemon)
        self.path = path
        self._sock = sock
        st = os.stat(path)
        self._identity = (st.st_dev, st.st_ino)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self._ready = threading.Event()
        self._connections: set[_Connection] = set()
        self.clients_seen = 0
        self.frames_sent = 0
        self.frames_dropped = 0
        self.frames_made = 0  # snapshots taken: fewer than frames sent when subscribers share them
        self._frame_cache: dict[tuple[int, int], tuple[bytes, int]] = {}

    @property
    def clients(self) -> int:
        return len(self._connections)

    def start(self) -> ControlServer:
        self._thread = threading.Thread(target=self._run, name="firefly-control", daemon=True)
        self._thread.start()
        self._ready.wait(5.0)
        log.info("control socket %s (protocol %d)", self.path, PROTOCOL)
        return self

    def close(self, timeout: float = 2.0) -> None:
        """Stop listening, let pending replies go out (briefly), close every client, remove the socket."""
        loop, closing = self._loop, self._closing
        if loop is not None and closing is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(closing.set)
        if self._thread is not None:
            self._thread.join(timeout)
        self._sock.close()
        self._unlink_if_ours()

    def __enter__(self) -> ControlServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    def _unlink_if_ours(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) == self._identity:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    # --------------------------------------------------------------------------- on the loop
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:
            log.exception("the control server stopped")
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing = asyncio.Event()
        server = await asyncio.start_unix_server(self._serve_client, sock=self._sock, limit=LINE_LIMIT)
        self._ready.set()
        await self._closing.wait()
        server.close()
        for conn in list(self._connections):
            conn.finish()
        tasks = [c.task for c in self._connections if c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        for conn in list(self._connections):
            conn.writer.transport.abort()

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(self, reader, writer)
        conn.task = asyncio.current_task()
        self._connections.add(conn)
        self.clients_seen += 1
        try:
            await conn.run()
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("control client failed")
        finally:
            conn.finish()
            self._connections.discard(conn)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 0.5)

    def frame_body(self, cursor: int, points: int) -> tuple[bytes, int]:
        """The daemon's frame as JSON (``{...}\\n``, never empty), and the new flash cursor.

        Subscribers woken in the same loop iteration with the same cursor and points share one
        snapshot and one encoding: fifty subscribers at 30 fps cost about what one does.
        """
        key = (cursor, points)
        hit = self._frame_cache.get(key)
        if hit is None:
            frame, new_cursor = self.daemon.telemetry_frame(cursor, points)
            frame.pop("frame", None)
            frame.pop("dropped_frames", None)
            hit = (encode(frame or {"empty": True}), new_cursor)
            if not self._frame_cache:
                asyncio.get_running_loop().call_soon(self._frame_cache.clear)
            self._frame_cache[key] = hit
            self.frames_made += 1
        return hit

    # ---------------------------------------------------------------------------- requests
    def dispatch(self, line: bytes, conn: _Connection) -> dict[str, Any]:
        """The reply to one request line: a result or an error, never an exception."""
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _error(None, "bad_json", f"the line is not UTF-8 (byte {exc.start})")
        try:
            request = json.loads(text)
        except RecursionError:
            return _error(None, "bad_json", "the line nests too deeply")
        except ValueError as exc:
            return _error(None, "bad_json", f"the line is not JSON: {exc}" if text.strip() else "the line is empty")
        if not isinstance(request, dict):
            return _error(None, "bad_json", f"a request is a JSON object, got {type(request).__name__}")
        return self.execute(request, conn)


class _Connection:
    """One client: reads request lines, writes replies and (when subscribed) telemetry frames."""

    def __init__(self, server: ControlServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server, self.reader, self.writer = server, reader, writer
        self.task: asyncio.Task | None = None
        self.feed: asyncio.Task | None = None
        self.fps, self.points = float(DEFAULT_FPS), DEFAULT_POINTS
        self.seq = 0
        self.dropped = 0
        self.cursor = -1
        self.frame_errors = 0
        writer.transport.set_write_buffer_limits(high=FRAME_BACKLOG)

    def send(self, message: dict[str, Any]) -> None:
        if not self.writer.transport.is_closing():
            self.writer.write(encode(message))

    async def run(self) -> None:
        self.send({"hello": "firefly-midi", "protocol": PROTOCOL, "version": __version__})
        buffer = bytearray()
        discarding = False  # inside a line that was too long: skip to its newline
        while True:
            chunk = await self.reader.read(READ_CHUNK)
            if not chunk:
                break
            start = 0
            if discarding:
                end = chunk.find(b"\n")
                if end < 0:
                    continue
                discarding, start = False, end + 1
            buffer += chunk[start:] if start else chunk
            while (end := buffer.find(b"\n")) >= 0:
                line = bytes(buffer[:end])
                del buffer[: end + 1]
                self._answer(line)
                await self.writer.drain()  # a client that does not read its replies stops being read
            if len(buffer) > LINE_LIMIT:
                self.send(_too_large())
                buffer.clear()
                discarding = True

    def _answer(self, line: bytes) -> None:
        if len(line) > LINE_LIMIT:
            self.send(_too_large())
            return
        try:
            reply = self.server.dispatch(line, self)
            data = encode(reply)
        except Exception as exc:  # a bug here must cost one reply, not the connection
            log.exception("control request failed")
            data = encode(_error(None, "internal", f"{type(exc).__name__}: {exc}"))
        if not self.writer.transport.is_closing():
            self.writer.write(data)

    def subscribe(self, fps: float, points: int) -> None:
        self.fps, self.points = float(fps), points
        if self.feed is None or self.feed.done():
            self.cursor = -1
            self.feed = asyncio.get_running_loop().create_task(self._feed())

    def unsubscribe(self) -> None:
        if self.feed is not None:
            self.feed.cancel()
            self.feed = None

    def finish(self) -> None:
        self.unsubscribe()
        self.writer.close()

    async def _feed(self) -> None:
        """Frames on a grid of 1/fps shared by every subscriber at that rate, so they share one snapshot."""
        transport, server = self.writer.transport, self.server
        loop = asyncio.get_running_loop()
        while not transport.is_closing():
            fps = self.fps
            wake = loop.create_future()
            loop.call_at((math.floor(loop.time() * fps) + 1) / fps, _resolve, wake)
            await wake
            self.seq += 1
            if transport.get_write_buffer_size() > FRAME_BACKLOG:
                self.dropped += 1
                server.frames_dropped += 1
                continue
            try:
                body, self.cursor = server.frame_body(self.cursor, self.points)
            except Exception:
                self.frame_errors += 1
                if self.frame_errors == 1:
                    log.exception("telemetry frame failed (further failures for this client are not logged)")
                continue
            if not transport.is_closing():
                self.writer.write(b'{"frame":%d,"dropped_frames":%d,' % (self.seq, self.dropped) + body[1:])
                server.frames_sent += 1


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _too_large() -> dict[str, Any]:
    return _error(None, "too_large", f"a request line is at most {LINE_LIMIT} bytes; the rest of this line was discarded")


def serve(daemon: Any, socket_path: str | os.PathLike[str] | None = None) -> ControlServer:
    """Claim the socket now (``SocketBusyError`` if a daemon holds it); ``start()`` the result to serve."""
    path = Path(socket_path) if socket_path is not None else default_socket_path()
    sock = claim_socket(path)
    return ControlServer(daemon, sock, path.expanduser().absolute())


# ---------------------------------------------------------------------------------- asyncio client
class ControlClient:
    """An asyncio connection to a daemon: requests, and telemetry frames, on one socket.

    Replies are matched to requests by id, frames go to the subscription; both arrive interleaved.
    ``await client.subscribe(fps, points)`` (or ``async for frame in client.subscribe()``) gives the
    frames.  When the reader falls behind by more than ``backlog`` frames the oldest is dropped here
    (``frames_dropped`` counts them) and its flashes are carried into the next, so none go missing.
    """

    def __init__(self, socket_path: str | os.PathLike[str] | None = None, *, backlog: int = 4):
        self.socket_path = Path(socket_path) if socket_path is not None else default_socket_path()
        self.hello: dict[str, Any] | None = None
        self.frames_dropped = 0
        self._frames: deque[dict[str, Any]] = deque(maxlen=max(1, backlog))
        self._frame_ready = asyncio.Event()
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None
        self._lost: ControlError | None = None
        self._closed = False

    async def connect(self, timeout: float = 5.0) -> ControlClient:
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_unix_connection(os.fspath(self.socket_path), limit=CLIENT_LINE_LIMIT), timeout
            )
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as exc:
            raise NoDaemonError(self.socket_path) from exc
        except (OSError, TimeoutError) as exc:
            raise NoDaemonError(self.socket_path, str(exc) or type(exc).__name__) from exc
        try:
            line = await asyncio.wait_for(self._reader.readline(), timeout)
            self.hello = json.loads(line)
        except (TimeoutError, ValueError, OSError) as exc:
            self._writer.close()
            raise NoDaemonError(self.socket_path, "it did not greet") from exc
        if not isinstance(self.hello, dict) or self.hello.get("hello") != "firefly-midi" or self.hello.get("protocol") != PROTOCOL:
            self._writer.close()
            raise ControlError("protocol", f"{self.socket_path} speaks {self.hello!r}, not firefly-midi protocol {PROTOCOL}")
        self._task = asyncio.get_running_loop().create_task(self._read_loop())
        return self

    async def __aenter__(self) -> ControlClient:
        return await self.connect()

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def request(self, cmd: str, **args: Any) -> Any:
        """Send ``cmd`` and return its result; an error reply raises ``ControlError(code, message)``."""
        if self._lost is not None:
            raise self._lost
        if self._writer is None:
            raise ControlError("disconnected", "not connected: await connect() first")
        rid = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            try:
                self._writer.write(encode({"id": rid, "cmd": cmd, **args}))
                await self._writer.drain()
            except ConnectionError as exc:
                self._lose(Disconnected(f"the connection to the daemon broke: {exc}"))
            reply = await future
        finally:
            self._pending.pop(rid, None)
        if reply.get("ok"):
            return reply.get("result")
        error = reply.get("error") or {}
        raise ControlError(str(error.get("code", "internal")), str(error.get("message", reply)))

    def subscribe(self, fps: float = DEFAULT_FPS, points: int = DEFAULT_POINTS) -> Subscription:
        """Telemetry frames: ``await`` it (sends subscribe, raises on refusal), then ``async for`` it."""
        return Subscription(self, fps, points)

    async def close(self) -> None:
        self._closed = True
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._writer.wait_closed(), 1.0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._lose(ControlError("disconnected", "the client was closed"))

    async def _read_loop(self) -> None:
        reason = "the daemon closed the connection"
        try:
            while line := await self._reader.readline():
                try:
                    message = json.loads(line)
                except ValueError:
                    log.warning("ignored a line from the daemon that is not JSON: %.80r", line)
                    continue
                if not isinstance(message, dict):
                    continue
                if "frame" in message:
                    self._push_frame(message)
                elif "id" in message:
                    future = self._pending.get(message["id"])
                    if future is not None and not future.done():
                        future.set_result(message)
        except (OSError, ValueError) as exc:
            reason = f"the connection to the daemon broke: {exc}"
        finally:
            self._lose(Disconnected(reason))

    def _push_frame(self, frame: dict[str, Any]) -> None:
        """Queue a frame; when the reader lags, the oldest goes, its flashes carried into the next."""
        frames = self._frames
        if len(frames) == frames.maxlen:
            self.frames_dropped += 1
            oldest = frames.popleft()
            head = frames[0] if frames else frame
            flashes = list(oldest.get("flashes") or ()) + list(head.get("flashes") or ())
            lost = int(oldest.get("flashes_lost") or 0) + int(head.get("flashes_lost") or 0)
            if len(flashes) > MAX_FLASHES_PER_FRAME:
                lost += len(flashes) - MAX_FLASHES_PER_FRAME
                flashes = flashes[-MAX_FLASHES_PER_FRAME:]
            head["flashes"], head["flashes_lost"] = flashes, lost
        frames.append(frame)
        self._frame_ready.set()

    def _lose(self, error: ControlError) -> None:
        if self._lost is None:
            self._lost = error
        for future in self._pending.values():
            if not future.done():
                future.set_exception(self._lost)
        self._frame_ready.set()

    async def _next_frame(self) -> dict[str, Any]:
        while True:
            if self._frames:
                return self._frames.popleft()
            if self._closed:
                raise StopAsyncIteration
            if self._lost is not None:
                raise self._lost
            self._frame_ready.clear()
            await self._frame_ready.wait()


class Subscription:
    """The frames of ``ControlClient.subscribe()``: awaitable (subscribes) and async-iterable (frames)."""

    def __init__(self, client: ControlClient, fps: float, points: int):
        self.client, self.fps, self.points = client, fps, points
        self._subscribed = False

    async def _subscribe(self) -> Subscription:
        if not self._subscribed:
            await self.client.request("subscribe", fps=self.fps, points=self.points)
            self._subscribed = True
        return self

    def __await__(self):
        return self._subscribe().__await__()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        await self._subscribe()
        return await self.client._next_frame()

    async def cancel(self) -> None:
        """Stop the frames (the connection stays open for requests)."""
        await self.client.request("unsubscribe")
        self.client._frames.clear()


# -------------------------------------------------------------------------------- blocking client
def request(socket_path: str | os.PathLike[str] | None, cmd: str, /, *, timeout: float = 5.0, **args: Any) -> Any:
    """One request on a fresh connection; returns the result or raises ``ControlError``.

    ``NoDaemonError`` when nothing answers on the path; ``ControlError("timeout", ...)`` when the
    daemon accepts but does not reply within ``timeout`` seconds.
    """
    path = Path(socket_path) if socket_path is not None else default_socket_path()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(os.fspath(path))
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as exc:
            raise NoDaemonError(path) from exc
        except OSError as exc:
            raise NoDaemonError(path, exc.strerror or str(exc)) from exc
        lines = _LineReader(sock)
        try:
            hello = json.loads(lines.next())
            if not isinstance(hello, dict) or hello.get("protocol") != PROTOCOL:
                raise ControlError("protocol", f"{path} speaks {hello!r}, not firefly-midi protocol {PROTOCOL}")
            sock.sendall(encode({"id": 1, "cmd": cmd, **args}))
            while True:
                reply = json.loads(lines.next())
                if isinstance(reply, dict) and "frame" not in reply and reply.get("id") == 1:
                    break
        except TimeoutError:
            raise ControlError("timeout", f"the firefly-midi daemon on {path} did not answer within {timeout:g} s") from None
        except (ConnectionError, EOFError) as exc:
            raise Disconnected(f"the daemon on {path} closed the connection ({exc or 'end of stream'})") from None
    finally:
        sock.close()
    if reply.get("ok"):
        return reply.get("result")
    error = reply.get("error") or {}
    raise ControlError(str(error.get("code", "internal")), str(error.get("message", reply)))


class _LineReader:
    def __init__(self, sock: socket.socket):
        self.sock, self.buffer = sock, bytearray()

    def next(self) -> bytes:
        while (end := self.buffer.find(b"\n")) < 0:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buffer += chunk
            if len(self.buffer) > CLIENT_LINE_LIMIT:
                raise ControlError("too_large", "the daemon sent a line over the client's limit")
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        return line


# ------------------------------------------------------------------------------- starting a daemon
def start_daemon_in_background(socket_path: str | os.PathLike[str] | None, daemon_args: list[str], wait_s: float = 300.0) -> bool:
    """Start ``firefly-midi daemon`` detached, unless one already answers on the socket.

    Returns True when it started one.  It waits until the daemon answers: its very first start
    compiles the swarm kernels, a minute or more on a slow machine, and while it does, the socket
    accepts but nobody replies yet (a daemon found in that state is waited for, not doubled).
    """
    import subprocess

    path = Path(socket_path) if socket_path is not None else default_socket_path()
    answer = _daemon_answers(path)
    if answer is None:
        print("a firefly-midi daemon is starting (compiling the swarm's kernels); waiting for it", file=sys.stderr)
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
    except ControlError as exc:
        if exc.code == "timeout":
            return None
        raise


def wait_for_daemon(path: str | os.PathLike[str], wait_s: float = 300.0, child: Any = None, who: str = "the daemon") -> None:
    """Wait until a daemon answers on ``path``, saying once that its first start compiles.

    A daemon answers once its ports are open and it ticks.  ``child``: its process, if ours (an exit
    raises at once).  ControlError when nothing answers within ``wait_s`` seconds.
    """
    import time

    path = Path(path)

    deadline, said = time.monotonic() + wait_s, False
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            raise ControlError("daemon", f"{who} exited at start (code {child.returncode})")
        if _daemon_answers(path):
            return
        if not said and time.monotonic() > deadline - wait_s + 3.0:
            print("compiling the swarm's kernels: the very first start takes a minute or two, later ones a moment", file=sys.stderr)
            said = True
        time.sleep(0.2)
    raise ControlError("daemon", f"{who} did not answer within {wait_s:g} s")
