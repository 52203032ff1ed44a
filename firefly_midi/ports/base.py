"""The backend interface: what the supervisor asks of every MIDI backend, as mido's ports do.

A ``Backend`` is one open output and (optionally) one input.  Its public ``send()`` and ``poll()``
check and count, then call the private ``_send()`` / ``_poll()`` hooks that each backend fills in.

Time: ``send(message, time_s)`` takes the message's due time on the daemon's transport
(firefly_midi/transport.py: time.monotonic(), or a server's frames where the backend has a
``frame_clock``), or None for "now".  Backends that write at once (rtmidi) ignore it; a backend
that schedules (a native JACK client writing each event at its frame) uses it, so the tick can hand
over events ahead of time without knowing which kind it plays through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from firefly_midi.errors import FireflyError

BACKENDS = ("auto", "alsa", "jack", "jack-native", "coremidi", "windows")

# A message and its time: the seconds since the message before (``arrival = "delta"``, rtmidi's),
# when it arrived on time.monotonic() (``arrival = "monotonic"``, a backend that dates each event), or
# on the daemon's transport (``arrival = "transport"``: a backend whose frames the transport follows).
Incoming = tuple[list[int], float]


class PortError(FireflyError, OSError):
    """A MIDI backend or port could not be opened (the message says what to do).

    An OSError: the operating system's MIDI service refused a resource, as ``open()`` does for a file.
    """


class ServerGone(PortError, ConnectionError):
    """The MIDI server went away under open (or opening) ports: lost, to be reopened once it is back."""


class PortClosed(FireflyError, ValueError):
    """A message was sent to, or read from, a backend that was closed (a caller's mistake, as in mido)."""


@dataclass
class PortConfig:
    backend: str = "auto"
    client: str = "firefly-midi"
    out_name: str = "out"
    in_name: str = "in"
    connect_out: str | None = None  # connect to an existing port whose name contains this, instead of a virtual one
    connect_in: str | None = None
    use_input: bool = True
    clock_in: bool = False  # let MIDI clock messages through the input filter


class Backend:
    """One MIDI output and optional input.  Subclasses fill in ``_send``, ``_poll`` and ``_close``.

    ``send`` runs on the tick thread, ``poll`` too; neither blocks.  The optional hooks below
    (``heartbeat`` and the rest) are for a backend whose input can go deaf without saying so.
    """

    kind = "base"  # the backend's name in the status: alsa, jack, coremidi, windows, null
    on_jack = False  # True when the ports live on a JACK server (the supervisor watches the server)
    arrival = "delta"  # what the time ``poll`` gives with each message is: see ``Incoming``
    schedules = False  # True when ``send`` plays each event at its ``time_s`` (else at once)
    frame_clock: object | None = None  # a backend on a server's frame counter: its FrameClock (the transport follows it)

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self.closed = False

    # ------------------------------------------------------------------------------- traffic
    def send(self, message: Sequence[int], time_s: float | None = None) -> None:
        """Send ``message`` (status and data bytes) at ``time_s`` on the monotonic clock (None: now)."""
        if self.closed:
            raise PortClosed(f"send() on a closed {self.kind} backend")
        self._send(message, time_s)
        self.sent += 1

    def poll(self) -> Incoming | None:
        """The next waiting input message and its time (``arrival`` says which), or None."""
        if self.closed:
            return None  # an input closed under the tick (a reopen) is simply silent
        item = self._poll()
        if item is not None:
            self.received += 1
        return item

    def close(self) -> None:
        """Close the ports (idempotent), after what was sent has left."""
        if not self.closed:
            self.closed = True
            self._close()

    def server_left(self) -> bool:
        """True once the server told this backend's client it is gone (JACK's shutdown callback)."""
        return False

    def names(self) -> list[str]:
        """The full names of our ports, output first, as other clients see them."""
        return []

    def helper_ports(self) -> set[str]:
        """Ports of the backend's own helpers: their connections to ours are not the user's."""
        return set()

    def status(self) -> dict[str, object]:
        """Fields the backend adds to the ports' status."""
        return {}

    def reflex_state(self) -> object | None:
        """The native JACK client's state array, where the tick may arm a reflex (firefly_midi/reflex.py)."""
        return None

    # --------------------------------------------------------- an input that can go deaf unheard
    def heartbeat(self, now: float) -> None:
        """Called by the tick about every 10 ms with its clock's time; cheap, never blocks."""

    def input_is_deaf(self) -> bool:
        return False

    def restart_heartbeat(self) -> None:
        """Forget the input's silence so far (the server stood still: silence proves nothing)."""

    def reopen_input(self, connected: list[str]) -> bool:
        """Open a deaf input again, connected to the ports in ``connected``; False if none opened."""
        return True

    # --------------------------------------------------------------------------------- hooks
    def _send(self, message: Sequence[int], time_s: float | None) -> None:
        raise NotImplementedError

    def _poll(self) -> Incoming | None:
        return None

    def _close(self) -> None:
        pass
