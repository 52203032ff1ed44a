"""The link to the daemon: connect, subscribe, feed the model, post messages; reconnect with backoff.

It talks only to a client object with the interface of ``firefly_midi.control.ControlClient``:
``await connect()``, ``await request(cmd, **args)`` (raises an error with ``code`` and ``message`` on
an error reply), ``subscribe(fps, points)`` (an async iterator of frame dicts, or an awaitable of
one) and ``await close()``.  A factory makes a fresh client for every attempt.

Frames are fed to the ``FrameModel`` here, as they arrive, and then posted as ``FrameArrived``:
the model keeps every frame's flashes and samples even when a slow screen lets the messages collapse
into the latest one (``can_replace``), so the screen draws the newest state and loses no history.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from textual.message import Message
from textual.message_pump import MessagePump

from firefly_midi.tui.model import FrameModel


class Client(Protocol):
    async def connect(self) -> Any: ...
    async def request(self, cmd: str, **args: Any) -> Any: ...
    def subscribe(self, fps: int, points: int) -> Any: ...
    async def close(self) -> Any: ...


class NotConnected(ConnectionError):
    """A request while no daemon is connected."""


@dataclass
class FrameArrived(Message):
    """A telemetry frame (already in the model); a newer one replaces it if the screen is behind."""

    frame: dict[str, Any]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, FrameArrived)


@dataclass
class ConnectionChanged(Message):
    """The daemon was reached or lost; ``text`` says what the status shows."""

    connected: bool
    text: str


def describe_error(exc: BaseException) -> str:
    """The text of an error reply (``message``, from the daemon) or of a local failure."""
    message = getattr(exc, "message", None)
    if isinstance(message, str) and getattr(exc, "code", None):
        return message
    if isinstance(exc, NotConnected):
        return "not connected to the daemon"
    return str(exc) or type(exc).__name__


class Connection:
    """Runs in an async worker of the app (``run()`` never returns until cancelled)."""

    def __init__(
        self,
        target: MessagePump,
        factory: Callable[[], Client],
        model: FrameModel,
        fps: int = 30,
        points: int = 2048,
        backoff: tuple[float, float] = (0.25, 5.0),
        label: str = "",
    ):
        self.target, self.factory, self.model = target, factory, model
        self.fps, self.points = fps, points
        self.backoff = backoff
        self.label = label
        self.client: Client | None = None
        self.attempts = 0

    @property
    def connected(self) -> bool:
        return self.client is not None

    async def request(self, cmd: str, **args: Any) -> Any:
        client = self.client
        if client is None:
            raise NotConnected("not connected to the daemon")
        return await client.request(cmd, **args)

    async def run(self) -> None:
        delay = self.backoff[0]
        while True:
            self.attempts += 1
            client = self.factory()
            reason = "daemon closed the connection"
            try:
                await client.connect()
                self.client = client
                self.target.post_message(ConnectionChanged(True, f"connected{' to ' + self.label if self.label else ''}"))
                frames = client.subscribe(fps=self.fps, points=self.points)
                if inspect.isawaitable(frames):
                    frames = await frames
                async for frame in frames:
                    delay = self.backoff[0]
                    self.model.ingest(frame)
                    self.target.post_message(FrameArrived(frame))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = describe_error(exc)
            finally:
                self.client = None
                with contextlib.suppress(Exception):
                    await client.close()
            self.target.post_message(ConnectionChanged(False, f"disconnected — retrying in {delay:.1f} s ({reason})"))
            await asyncio.sleep(delay)
            delay = min(delay * 2.0, self.backoff[1])
