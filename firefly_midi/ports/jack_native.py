"""The native JACK backend: one libjack client whose compiled callback writes each event at its frame.

``NativeJackBackend`` puts ``firefly_midi.jack.NativeJackClient`` behind the ``Backend`` seam.  What
it changes for the daemon (docs/jack.md, docs/jack-native.md):

- ``send(message, time_s)`` schedules: the event leaves at the frame ``time_s`` maps to (the daemon
  adds ``clock.lookahead_ms`` to each event's due time, so the client itself adds none); ``None``
  means the next cycle's start.  An event whose frame has passed leaves at once, counted ``late``.
- ``poll()`` gives each message with its arrival taken from its frame: on the daemon's transport
  once it follows our frames (``arrival = "transport"``), else on ``time.monotonic()``
  (``"monotonic"``), where rtmidi gives the seconds since the message before.
- One client, ports ``<client>:out`` and ``<client>:in``: the callback parses sysex itself, so an
  unterminated sysex cannot deafen the input, and no probe or sysex guard is needed.
- Server loss is told by JACK's shutdown callback (``server_left``), not found by polling.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from rtmidi.midiconstants import ACTIVE_SENSING, MIDI_TIME_CODE

from firefly_midi.jack.binding import JackUnavailable
from firefly_midi.jack.client import NativeJackClient, NotActive
from firefly_midi.jack.clock import FrameClock
from firefly_midi.midi import TIMING_CLOCK
from firefly_midi.ports.base import Backend, Incoming, PortConfig, PortError, ServerGone
from firefly_midi.ports.watch import server_gone
from firefly_midi.transport import Transport

log = logging.getLogger("firefly_midi.ports")

# at most this long, close() waits for the events still queued to leave at their frames: usually a
# lookahead, but after the dummy driver lost cycles the frames asked for lie that much further on
# (see _send), and a flood's last note-offs were lost when close() gave up after 0.2 s
DRAIN_S = 2.0
DRAIN_CYCLES = 2  # and then for this many cycles: the last events reach their listeners before we go
FIRST_CYCLE_S = 2.0  # the longest wait for the first cycle after activation
SERVER_EXIT_S = 0.5  # after a failed call into libjack, how long to look for the server's exit


class NativeJackBackend(Backend):
    """The daemon's output and input as one native JACK client; ``open`` makes it, or raises PortError."""

    kind = "jack-native"
    on_jack = True
    schedules = True

    def __init__(self, config: PortConfig, client: NativeJackClient):
        super().__init__()
        self.config, self.client = config, client
        self._timing = () if config.clock_in else (TIMING_CLOCK, MIDI_TIME_CODE)
        self._last_frame = 0  # the frame the event sent last was given: see _send
        self.transport: Transport | None = None  # the daemon's time, once it follows our frames (Ports._use)

    @classmethod
    def open(cls, config: PortConfig, server: str | None, dead: list[object]) -> NativeJackBackend:
        """The client, active, its ports connected where ``config`` asks; ServerGone if the server
        died meanwhile (the half-made client is left in ``dead``, unclosed, as those of any dead server)."""
        client = NativeJackClient(
            config.client, lookahead_ms=0.0, in_name=config.in_name if config.use_input else None, out_name=config.out_name
        )
        try:
            client.open()
            client.activate()
            _first_cycle(client)
            _connect_where_asked(client, config)
        except (JackUnavailable, NotActive) as exc:
            if server_gone(server, SERVER_EXIT_S) or client.shut_down:
                dead.append(client)
                raise ServerGone("the JACK server went away while the ports opened") from None
            client.close()
            raise PortError(str(exc)) from None
        except PortError:
            client.close()
            raise
        return cls(config, client)

    # ------------------------------------------------------------------------------- traffic
    def _send(self, message: Sequence[int], time_s: float | None) -> None:
        """At the frame ``time_s`` maps to, never before the frame of the event sent before it.

        ``time_s`` is the daemon's transport time: once the transport follows our frame clock, its
        own exact frame (a steady pulse stays steady in frames); until then, through the mapping.

        The callback writes events in frame order, and the frame<->time mapping moves with each
        re-anchoring (backwards by whole cycles after an xrun of the dummy driver): without the floor,
        a note-on due after a note-off (or an All Notes Off after the notes) could leave first.
        """
        client = self.client
        if not client.active:  # a server that shut us down: the supervisor swaps us out at its next look
            return
        if time_s is None:
            client.send(message, None)
            return
        transport = self.transport
        frame = transport.frame(time_s) if transport is not None else None
        if frame is None:
            frame = client.clock.frame_at(time_s)
        self._last_frame = max(frame, self._last_frame)
        client.schedule(message, self._last_frame)

    @property
    def frame_clock(self) -> FrameClock:
        """Our server's frames and time.monotonic() (the daemon's transport follows it)."""
        return self.client.clock

    @property
    def arrival(self) -> str:  # type: ignore[override]
        """ "transport" once the daemon's transport follows our frames (an input's exact transport
        time, with no mapping between), else "monotonic"."""
        transport = self.transport
        return "transport" if transport is not None and transport.on_frames else "monotonic"

    def _poll(self) -> Incoming | None:
        client, transport = self.client, self.transport
        while (item := client.poll_frame()) is not None:
            message, frame = item
            status = message[0]
            if status == ACTIVE_SENSING or status in self._timing or not self.config.use_input:
                continue  # as rtmidi's input ignores them
            arrival = transport.time_of(frame) if transport is not None else None
            return message, client.clock.time_at(frame) if arrival is None else arrival
        return None

    def reflex_state(self) -> object | None:
        client = self.client
        return client.state if client.active and self.config.use_input else None

    def server_left(self) -> bool:
        return self.client.shut_down

    # ---------------------------------------------------------------------------- what it is
    def names(self) -> list[str]:
        client = self.client
        return [client.out_port] + ([client.in_port] if self.config.use_input else [])

    def status(self) -> dict[str, object]:
        counters = self.client.counters()
        return {
            "late": counters.late,
            "native": {
                "late": counters.late,
                "tx_full": counters.tx_full,
                "out_refused": counters.out_refused,
                "rx_overflow": counters.rx_overflow,
                "sysex_dropped": counters.sysex_dropped,
                "sysex_unterminated": counters.sysex_unterminated,
                "xruns": counters.xruns,
                "callback_mean_us": round(counters.callback_mean_us, 2),
                "callback_max_us": counters.callback_max_us,
            },
        }

    def _close(self) -> None:
        """Let what is queued leave first (the last note-offs, of all events), then close the client.

        Written is not yet heard: a listener reads our buffer later in the cycle, and deactivating
        disconnects our ports, so the client stays DRAIN_CYCLES more cycles (seen: a SIGINT's
        last note-offs lost when it closed at once)."""
        client = self.client
        deadline = time.monotonic() + DRAIN_S
        while client.active and client.queued() and time.monotonic() < deadline:
            time.sleep(0.005)
        if client.active and client.queued():
            log.warning("%d MIDI events were still queued after %.1f s: closing without them", client.queued(), DRAIN_S)
        written, deadline = client.counters().cycles, time.monotonic() + 0.2
        while client.active and client.counters().cycles < written + DRAIN_CYCLES and time.monotonic() < deadline:
            time.sleep(0.002)
        client.close()


def _first_cycle(client: NativeJackClient) -> None:
    """Wait for the callback's first cycle: the transport follows its frame clock from the start."""
    deadline = time.monotonic() + FIRST_CYCLE_S
    while client.counters().cycles == 0:
        if client.shut_down or time.monotonic() > deadline:
            raise NotActive(f"the JACK server ran no cycle within {FIRST_CYCLE_S:g} s of activating our client")
        time.sleep(0.002)


def _connect_where_asked(client: NativeJackClient, config: PortConfig) -> None:
    """``--connect-out``/``--connect-in``: connect to the first existing port whose name contains it."""
    for wanted, inputs in ((config.connect_out, True), (config.connect_in and config.use_input and config.connect_in, False)):
        if not wanted:
            continue
        ours = client.out_port if inputs else client.in_port
        found = [name for name in client.midi_ports(inputs) if wanted in name and name != ours]
        if not found:
            direction = "input" if inputs else "output"
            listing = ", ".join(n for n in client.midi_ports(inputs) if n != ours) or "none"
            raise PortError(f"no MIDI {direction} port matching {wanted!r}; available: {listing}")
        client.connect(*((ours, found[0]) if inputs else (found[0], ours)))
