"""Backends without a MIDI server: the null port, and a recording one for tests.

``NullBackend`` is what the supervisor plays through while no real backend is open (none could be,
or the server went away): it counts what the swarm would have sent, so the swarm, the control
plane and the telemetry keep going without MIDI.  ``RecordingBackend`` keeps every message with
its time and lets a test queue input, like isobar's dummy device: tests drive the daemon through it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

from firefly_midi.ports.base import Backend, Incoming


class NullBackend(Backend):
    """Accepts and counts every message, hears nothing."""

    kind = "null"

    def _send(self, message: Sequence[int], time_s: float | None) -> None:
        pass


class RecordingBackend(Backend):
    """Keeps ``(time_s, message)`` for every message sent; ``poll`` returns what ``feed`` queued.

    ``time_s`` is the due time the sender gave, else the clock's time at the send.  ``feed`` and
    ``poll`` may run on different threads (a deque's append and popleft are atomic).
    """

    kind = "recording"

    def __init__(self, port_names: Sequence[str] = ("recording:out", "recording:in"), clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.sent_log: list[tuple[float, list[int]]] = []
        self._incoming: deque[Incoming] = deque()
        self._names = list(port_names)
        self._clock = clock

    @property
    def messages(self) -> list[list[int]]:
        """What was sent, in order, without the times."""
        return [message for _, message in self.sent_log]

    def feed(self, message: Sequence[int], delta_s: float = 0.0) -> None:
        """Queue ``message`` as if it arrived ``delta_s`` after the message before it."""
        self._incoming.append((list(message), delta_s))

    def names(self) -> list[str]:
        return list(self._names)

    def _send(self, message: Sequence[int], time_s: float | None) -> None:
        self.sent_log.append((self._clock() if time_s is None else time_s, list(message)))

    def _poll(self) -> Incoming | None:
        return self._incoming.popleft() if self._incoming else None
