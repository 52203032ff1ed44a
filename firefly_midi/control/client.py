"""Clients of the control socket: ``ControlClient`` (asyncio, requests and telemetry on one connection,
for the TUI) and ``request()`` (blocking, one request on a fresh connection, for ``ctl`` and scripts)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import socket
from collections import deque
from typing import Any

from firefly_midi.control.protocol import (
    CLIENT_LINE_LIMIT,
    DEFAULT_FPS,
    DEFAULT_POINTS,
    MAX_FLASHES_PER_FRAME,
    PROTOCOL,
    ControlError,
    Disconnected,
    NoDaemonError,
    NoReply,
    encode,
    result_of,
)
from firefly_midi.control.sockets import socket_path

log = logging.getLogger("firefly_midi.control")


class ControlClient:
    """An asyncio connection to a daemon: requests, and telemetry frames, on one socket.

    Replies are matched to requests by id, frames go to the subscription; both arrive interleaved.
    ``await client.subscribe(fps, points)`` (or ``async for frame in client.subscribe()``) gives the
    frames.  When the reader falls behind by more than ``backlog`` frames the oldest is dropped here
    (``frames_dropped`` counts them) and its flashes are carried into the next, so none go missing.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, backlog: int = 4):
        self.socket_path = socket_path(path)
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
        except TimeoutError:  # it accepts and says nothing: a daemon still starting (compiling), or hung
            self._writer.close()
            raise NoReply(f"the firefly-midi daemon on {self.socket_path} did not answer within {timeout:g} s") from None
        except (ValueError, OSError) as exc:
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
        return result_of(reply)

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
def request(path: str | os.PathLike[str] | None, cmd: str, /, *, timeout: float = 5.0, **args: Any) -> Any:
    """One request on a fresh connection; returns the result or raises ``ControlError``.

    ``NoDaemonError`` when nothing answers on the path; ``NoReply`` (code ``timeout``) when the
    daemon accepts but does not reply within ``timeout`` seconds.
    """
    path = socket_path(path)
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
            raise NoReply(f"the firefly-midi daemon on {path} did not answer within {timeout:g} s") from None
        except (ConnectionError, EOFError) as exc:
            raise Disconnected(f"the daemon on {path} closed the connection ({exc or 'end of stream'})") from None
    finally:
        sock.close()
    return result_of(reply)


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
