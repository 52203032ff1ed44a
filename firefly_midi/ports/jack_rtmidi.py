"""JACK through python-rtmidi: an input that can go deaf, the probe that finds out, the sysex guard.

rtmidi's JACK input fails in two silent ways (docs/reliability.md tells how each was found):

- It can open deaf: registered, active, connectable, and its process callback never runs.  jack2
  shares one table of wake-up futexes among the clients of a process, indexed by client number; an
  input given the number of a short-lived client that just left (``jack_lsp``) can keep that
  client's futex, which nobody wakes.  Closing the client frees the entry, so a reopened input works.
  A probe (a JACK-Client client, on a libjack of its own) writes into the input and listens.
- A sysex that never ends swallows every later event: rtmidi joins JACK events into one sysex until
  one ends in 0xF7, and with sysex ignored drops them all.  A guard output connected to the input
  sends a lone 0xF7 after half a second of silence, which ends such a sysex; the 0xF7s that come
  back are the input's heartbeat, and four unanswered in a row mean the input (or the guard) went deaf.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from firefly_midi.ports.base import Incoming, PortConfig, PortError, ServerGone
from firefly_midi.ports.rtmidi import RtMidiBackend, close_quietly, input_client, open_input, open_port, rtmidi_errors
from firefly_midi.ports.watch import server_gone

log = logging.getLogger("firefly_midi.ports")

PROBE_S = 1.0  # how long a JACK input has to hear the probe before it counts as deaf
PROBE_TRIES = 3  # JACK inputs opened (the first and the reopened ones) before keeping a deaf one
PROBE_MESSAGE = (0x8F, 0, 0)  # note-off, channel 16, note 0: read by the probe itself, never by the swarm
PROBE_DRAIN_S = 0.05  # after the probe stops, its last events have arrived within a few JACK periods
END_OF_SYSEX = [0xF7]  # what the sysex guard sends into the JACK input
SYSEX_SILENCE_S = 0.5  # an input silent this long may be stuck in a sysex that never ends: end it
SERVER_EXIT_S = 0.5  # after a failed call into libjack, how long to look for the server's exit
DEAF_AFTER = 4  # guard 0xF7s in a row that never came back (2 s of them): the input has gone deaf
GUARD_PORT = "sysex-end"


@dataclass
class DeafCounts:
    """Inputs and guards found deaf and opened again, kept across reopens by the supervisor."""

    inputs: int = 0
    guards: int = 0


def echoes(guard: Any, inp: Any) -> bool:
    """Whether a lone 0xF7 sent through ``guard`` comes back through ``inp`` within PROBE_S.

    Sent again every 0.1 s: a peer's sysex that never ended takes the first.  What else arrives
    meanwhile is dropped; this runs before the tick reads ``inp``.
    """
    deadline, next_send = time.monotonic() + PROBE_S, 0.0
    while (now := time.monotonic()) < deadline:
        if now >= next_send:
            guard.send_message(END_OF_SYSEX)
            next_send = now + 0.1
        while (item := inp.get_message()) is not None:
            if item[0] == END_OF_SYSEX:
                return True
        time.sleep(0.002)
    return False


def probe_input(inp: Any, port_name: str, connect: list[str], server: str | None, dead: list[Any]) -> tuple[bool | None, list[str]]:
    """Whether an event written into ``port_name`` by a short-lived JACK client reaches ``inp`` within
    PROBE_S (None if no probe could be made), and the ports connected to ``port_name`` besides it.

    The ports in ``connect`` are connected first.  If the server dies meanwhile, the probe client
    goes into ``dead`` unclosed.  Runs before the tick reads ``inp``: what a peer sent meanwhile is
    dropped, and is just as good a proof that the input hears.
    """
    try:
        import jack
    except (ImportError, OSError):
        return None, []
    try:
        probe = jack.Client(port_name.split(":", 1)[0] + "-probe", no_start_server=True)
    except Exception as exc:  # jack.JackError: a busy or dying server
        log.debug("no JACK probe client (%s)", exc)
        return None, []
    stop, heard, others = threading.Event(), False, []
    try:
        port = probe.midi_outports.register("probe")

        @probe.set_process_callback
        def process(frames: int) -> None:
            port.clear_buffer()
            if not stop.is_set():
                port.write_midi_event(0, PROBE_MESSAGE)

        probe.activate()
        for other in connect:
            with contextlib.suppress(jack.JackError):  # gone meanwhile
                probe.connect(other, port_name)
        probe.connect(port, port_name)
        heard = _wait_for_message(inp, PROBE_S)
        others = [p.name for p in probe.get_all_connections(port_name) if p.name != port.name]
    except Exception as exc:  # jack.JackError: the server refused; that says nothing about the input
        log.debug("the JACK input probe failed (%s)", exc)
        return None, []
    finally:
        stop.set()
        _close_probe(probe, server, dead)
        time.sleep(PROBE_DRAIN_S)
        while inp.get_message() is not None:
            pass
    return heard, others


def _wait_for_message(inp: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if inp.get_message() is not None:
            return True
        time.sleep(0.002)
    return False


def _close_probe(probe: Any, server: str | None, dead: list[Any]) -> None:
    try:
        if server_gone(server):
            dead.append(probe)  # closing a dead server's client can block, and so would the GC
        else:
            probe.deactivate()
            probe.close()
    except Exception as exc:
        log.debug("closing the JACK probe client failed: %s", exc)


class InputOpener:
    """Opens the JACK input until the probe hears it, and a sysex guard until its 0xF7 comes back.

    ``server``: the JACK server's socket seen before opening.  If it changed when something fails,
    the server died meanwhile: ServerGone, with the half-made clients left in ``dead``.
    """

    def __init__(self, config: PortConfig, server: str | None, dead: list[Any], counts: DeafCounts):
        self.config, self.server, self.dead, self.counts = config, server, dead, counts
        self.input_name = f"{input_client(config, 'jack')}:{config.in_name}"
        self.guard_name = f"{config.client}-guard:{GUARD_PORT}"

    def raise_if_server_gone(self, *clients: Any, wait_s: float = 0.0) -> None:
        if server_gone(self.server, wait_s):
            self.dead.extend(c for c in clients if c is not None)
            raise ServerGone("the JACK server went away while the ports opened")

    def input_and_guard(self, carried: list[str] | None = None, tries: int = PROBE_TRIES) -> tuple[Any, Any]:
        """The input, heard by the probe, and its guard (or None).  When no guard's 0xF7 comes back,
        the input, heard a moment before, may be the one gone deaf: it is probed, and reopened."""
        inp = self.heard_input(open_input(self.config, "jack"), carried, tries)
        for _ in range(tries):
            guard = self.guard(inp, tries)
            if guard is not None:
                return inp, guard
            heard, carried = probe_input(inp, self.input_name, [], self.server, self.dead)
            if heard is not False:
                break  # the input hears: no guard could be made to reach it
            self.raise_if_server_gone(inp, wait_s=SERVER_EXIT_S)
            self.counts.inputs += 1
            log.warning("the JACK input went deaf after its probe heard it; opening it again")
            close_quietly(inp)
            inp = None
            inp = self.heard_input(open_input(self.config, "jack"), carried, tries)
        log.warning("no sysex guard on the JACK input: a sysex that never ends would deafen it, and deafness goes unnoticed")
        return inp, None

    def heard_input(self, inp: Any, carried: list[str] | None = None, tries: int = PROBE_TRIES) -> Any:
        """``inp``, or an input opened again in its place while the probe hears nothing (``tries`` in all)."""
        carried = carried or []  # what others connected to a deaf input: connected again to the next one
        for attempt in range(1, tries + 1):
            heard, carried = probe_input(inp, self.input_name, carried, self.server, self.dead)
            if heard is not False:
                return inp  # heard, or the probe could not be made: nothing to go on
            self.raise_if_server_gone(inp, wait_s=SERVER_EXIT_S)  # it heard nothing: is anything there?
            if attempt == tries:
                log.warning("the JACK input opened deaf %d times; keeping it (incoming MIDI may not arrive)", attempt)
                return inp
            self.counts.inputs += 1
            log.warning("the JACK input opened deaf (a libjack race with a client that just left); reopening it")
            close_quietly(inp)  # closing frees the table entry: the next input gets a working one
            inp = None
            inp = open_input(self.config, "jack")
        return inp

    def guard(self, inp: Any, tries: int = PROBE_TRIES) -> Any:
        """An rtmidi output connected to ``inp`` whose lone 0xF7 the input hears, or None.  It is a
        client of rtmidi's libjack, so it can open deaf too: it is opened until its 0xF7 comes back."""
        import rtmidi

        for _ in range(tries):
            guard = None
            try:
                guard = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, self.guard_name.split(":")[0])
                open_port(guard, GUARD_PORT, self.input_name, "output")
            except rtmidi_errors() as exc:
                self.raise_if_server_gone(guard, wait_s=SERVER_EXIT_S)
                close_quietly(guard)
                log.warning("no sysex guard on the JACK input (%s): a sysex that never ends would deafen it", exc)
                return None
            if echoes(guard, inp):
                return guard
            self.raise_if_server_gone(guard, wait_s=SERVER_EXIT_S)
            close_quietly(guard)
        return None


class JackRtMidiBackend(RtMidiBackend):
    """rtmidi on JACK: the output, and an input kept hearing by the probe and the sysex guard."""

    def __init__(self, config: PortConfig, out: Any, inp: Any, guard: Any, opener: InputOpener):
        super().__init__("jack", config, out, inp)
        self.guard = guard
        self.opener = opener
        self.server = opener.server
        self._input_lock = threading.Lock()  # the tick reads inp/guard under it; reopen_input swaps them under it
        self._guard_delta = 0.0  # rtmidi delta times of the guard's messages, passed on to the next one
        self._heard, self._heard_at = 0, 0.0  # received, and when that count was first seen: the input's silence
        self._unanswered = 0  # guard 0xF7s sent since the input last heard anything (its own echo included)

    @classmethod
    def open_on(cls, config: PortConfig, server: str | None, dead: list[Any], counts: DeafCounts) -> JackRtMidiBackend:
        """Output, then input and guard; PortError, or ServerGone if the server died meanwhile
        (its half-made clients are left in ``dead``, unclosed, as those of any dead server)."""
        import rtmidi

        opener = InputOpener(config, server, dead, counts)
        out = inp = guard = None
        try:
            out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, config.client)
            open_port(out, config.out_name, config.connect_out, "output")
            if config.use_input:
                inp, guard = opener.input_and_guard()
        except rtmidi_errors() as exc:
            if isinstance(exc, ServerGone) or server_gone(server, SERVER_EXIT_S):
                dead.extend(p for p in (out, inp, guard) if p is not None)
                raise ServerGone("the JACK server went away while the ports opened") from None
            close_quietly(out, inp, guard)
            raise PortError(str(exc).strip() or type(exc).__name__) from None
        return cls(config, out, inp, guard, opener)

    def names(self) -> list[str]:
        names = [f"{self.config.client}:{self.config.out_name}"] if self.out is not None else []
        return names + ([self.opener.input_name] if self.inp is not None else [])

    def helper_ports(self) -> set[str]:
        return {self.opener.guard_name}

    def status(self) -> dict[str, object]:
        return {"sysex_guard": self.guard is not None}

    def _poll(self) -> Incoming | None:
        """The guard's own 0xF7s are passed over (a lone end-of-sysex means nothing to the swarm), their
        delta times added to the next message's; that they came back says the input hears."""
        with self._input_lock:
            inp = self.inp
            if inp is None:
                return None
            while (item := inp.get_message()) is not None and self.guard is not None and item[0] == END_OF_SYSEX:
                self._guard_delta += item[1]
                self._unanswered = 0
            if item is None:
                return None
            self._unanswered = 0
            if self._guard_delta:
                item, self._guard_delta = (item[0], item[1] + self._guard_delta), 0.0
            return item

    def heartbeat(self, now: float) -> None:
        """Send one 0xF7 into the input when it has heard nothing for SYSEX_SILENCE_S.

        Not sooner, and not while the input hears anything: a 0xF7 in the middle of a long sysex
        arriving in chunks would make each later chunk a message of its own (an 8 KiB JACK event is
        a list of 8,192 ints for the tick), where rtmidi drops the whole sysex unseen.  A lone 0xF7
        comes back through the input (``_poll`` passes over it), one that ends a stray sysex does not.
        """
        with self._input_lock:
            if self.guard is None:
                return
            if self.received != self._heard:
                self._heard, self._heard_at = self.received, now
            elif now - self._heard_at >= SYSEX_SILENCE_S and self._unanswered < DEAF_AFTER:
                self.guard.send_message(END_OF_SYSEX)
                self._unanswered += 1
                self._heard_at = now

    def input_is_deaf(self) -> bool:
        """True when the guard's last DEAF_AFTER 0xF7s never came back, or a reopen left no input."""
        if not self.config.use_input:
            return False
        return self.inp is None or (self.guard is not None and self._unanswered >= DEAF_AFTER)

    def restart_heartbeat(self) -> None:
        with self._input_lock:
            self._unanswered = 0

    def reopen_input(self, connections: list[list[str]]) -> bool:
        """Find which of the input and its guard went deaf, and open that one again.

        Off the tick thread, which hears nothing meanwhile.  The input is probed (a second at most):
        if it hears, only the guard is opened again; if not, both are, connected as before.  One try
        each, so that a stop is not kept waiting.  False if no input could be opened.
        """
        opener = self.opener
        with self._input_lock:
            inp, guard, self.inp, self.guard = self.inp, self.guard, None, None
            self._unanswered = 0
        try:
            opener.raise_if_server_gone(guard)  # the watch notices the loss and reopens everything
            close_quietly(guard)
            heard = probe_input(inp, opener.input_name, [], self.server, opener.dead)[0] if inp is not None else False
            if heard is False:
                log.warning("the JACK input went deaf: opening it again")
                opener.counts.inputs += 1
                close_quietly(inp)  # closing frees the libjack table entry the deaf client held
                inp = None
                inp, guard = opener.input_and_guard([p for o, p in connections if o == opener.input_name], tries=1)
            else:
                log.warning("the JACK input's sysex guard went deaf: opening it again")
                opener.counts.guards += 1
                guard = opener.guard(inp, tries=1)
                if guard is None:
                    log.warning("no new sysex guard reached the input: stray sysex and deafness go unnoticed from now on")
        except ServerGone:  # its clients are in dead, unclosed; the watch reopens everything once it is back
            if inp is not None:
                opener.dead.append(inp)
            return False
        except rtmidi_errors() as exc:
            log.warning("the JACK input could not be opened again (%s)", exc)
            close_quietly(inp)
            return False
        with self._input_lock:
            self.inp, self.guard = inp, guard
        return True

    def _close(self) -> None:
        guard, self.guard = self.guard, None
        super()._close()
        close_quietly(guard)
