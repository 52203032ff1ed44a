"""The control socket's server: an asyncio loop on a thread of its own, serving JSON lines.

The tick never runs on this loop.  Each request calls one of the daemon's thread-safe methods (through
the ``Commands`` the server holds), which check the request in this thread and queue the change for the
tick boundary, so nothing here ever waits for a tick.  Each telemetry subscriber has its own task, which
sends a frame only while that client's write buffer is short: a client that does not read gets frames
dropped (and counted), never the daemon slowed nor the other clients held up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import threading
from pathlib import Path
from typing import Any

from firefly_midi import __version__
from firefly_midi.control.commands import Commands
from firefly_midi.control.protocol import (
    DEFAULT_FPS,
    DEFAULT_POINTS,
    FRAME_BACKLOG,
    LINE_LIMIT,
    PROTOCOL,
    READ_CHUNK,
    BadRequest,
    decode,
    encode,
    error_reply,
)
from firefly_midi.control.sockets import claim_socket, socket_path

log = logging.getLogger("firefly_midi.control")


class ControlServer:
    """The socket server of one daemon: ``start()`` runs it on its own thread, ``close()`` ends it."""

    def __init__(self, daemon: Any, sock: socket.socket, path: Path):
        self.daemon = daemon
        self.commands = Commands(daemon)
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
            request = decode(line)
        except BadRequest as exc:
            return error_reply(None, exc.code, exc.message)
        return self.commands.execute(request, conn)


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
            data = encode(error_reply(None, "internal", f"{type(exc).__name__}: {exc}"))
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
    return error_reply(None, "too_large", f"a request line is at most {LINE_LIMIT} bytes; the rest of this line was discarded")


def serve(daemon: Any, path: str | os.PathLike[str] | None = None) -> ControlServer:
    """Claim the socket now (``SocketBusyError`` if a daemon holds it); ``start()`` the result to serve."""
    path = socket_path(path)
    sock = claim_socket(path)
    return ControlServer(daemon, sock, path.expanduser().absolute())
