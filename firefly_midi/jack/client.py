"""``NativeJackClient``: one libjack client with an ``in`` and an ``out`` MIDI port, driven by a
compiled process callback (process.py), with ``send``/``poll`` on the Python side.

Lifecycle: ``open()`` (client, ports, callbacks registered), ``activate()``, ``deactivate()``,
``close()``; or ``with NativeJackClient(name) as client:`` for all four.  The state array the
callback reads is written through (every page touched) and ``mlock``ed before activation, and this
object keeps it until after deactivation, so the callback never faults on or outlives its memory.

Threads: ``send`` is the TX ring's only producer and ``poll`` the RX ring's only consumer; call each
from one thread at a time (the tick thread).  Everything else may be called from any thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from firefly_midi.errors import FireflyError
from firefly_midi.jack import clock, layout, libjack, process, rings
from firefly_midi.jack.clock import DEFAULT_LOOKAHEAD_MS, FrameClock


class BadMessage(FireflyError, ValueError):
    """A message the native output cannot send (it takes 1-3 bytes, status first, no sysex)."""


class NotActive(FireflyError, RuntimeError):
    """The client is not open and active, or its server has shut it down."""


@dataclass(frozen=True)
class Counters:
    """What the callback counted since activation (and ``tx_full``, counted by ``send``)."""

    cycles: int
    sent: int
    received: int
    late: int  # events whose frame had passed when their cycle came: sent at the cycle's start
    tx_full: int  # send() found the TX ring full: the event was dropped
    out_refused: int  # JACK's output buffer was full: dropped
    rx_overflow: int  # the RX ring was full (poll() too slow): input dropped
    lost_in: int  # events JACK lost before they reached the input port
    sysex_dropped: int
    sysex_unterminated: int
    pending: int  # events waiting in the callback for their cycle
    xruns: int
    callback_mean_us: float
    callback_max_us: int


class NativeJackClient:
    """A JACK MIDI client whose real-time side is compiled; see the module's docstring."""

    def __init__(self, name: str, lookahead_ms: float = DEFAULT_LOOKAHEAD_MS, in_name: str | None = "in", out_name: str = "out") -> None:
        """``in_name=None``: no input port (the callback then reads none)."""
        self.name = name
        self.port_names = (in_name, out_name)
        self.lookahead_ms = lookahead_ms
        self.state = rings.new_state()
        self.clock = FrameClock(self.state)
        self.mlocked = False
        self._client = 0
        self._active = False
        self._tx_full = 0
        self._last_frame = 0  # frames sent never go back: the anchor moves (xruns) must not reorder a note and its off
        self._received = np.zeros((1, 2), dtype=np.int64)
        self.in_port = self.out_port = ""

    # -- lifecycle ----------------------------------------------------------------------------
    def open(self) -> None:
        """Connect to the running server, register the ports and the callbacks (not yet active)."""
        if self._client:
            return
        callbacks = process.callbacks()  # compiled (or loaded from numba's cache) before anything opens
        self._warm_up()
        client = libjack.open_client(self.name)
        try:
            in_port = libjack.register_midi_port(client, self.port_names[0], libjack.PORT_IS_INPUT) if self.port_names[0] else 0
            out_port = libjack.register_midi_port(client, self.port_names[1], libjack.PORT_IS_OUTPUT)
            self.state[layout.CLIENT], self.state[layout.IN_PORT], self.state[layout.OUT_PORT] = client, in_port, out_port
            self.state[layout.BASE] = self.state.ctypes.data
            arg = self.state.ctypes.data
            lib = libjack.lib()
            if lib.jack_set_process_callback(client, callbacks.process.address, arg) != 0:
                raise libjack.JackUnavailable("jack_set_process_callback failed")
            lib.jack_set_xrun_callback(client, callbacks.xrun.address, arg)
            lib.jack_on_shutdown(client, callbacks.shutdown.address, arg)
            self.clock.sample_rate = lib.jack_get_sample_rate(client)
            clock.prepare(self.state, self.clock.sample_rate)
        except BaseException:
            libjack.lib().jack_client_close(client)
            raise
        self._client = client
        self.in_port, self.out_port = libjack.port_name(in_port) if in_port else "", libjack.port_name(out_port)

    def activate(self) -> None:
        """Start the callback: the state is locked in RAM first (where the limit allows)."""
        if not self._client:
            raise NotActive("open() the client before activating it")
        if self._active:
            return
        self.mlocked = libjack.mlock(self.state.ctypes.data, self.state.nbytes)
        if libjack.lib().jack_activate(self._client) != 0:
            raise libjack.JackUnavailable("jack_activate failed")
        self._active = True

    def deactivate(self) -> None:
        """Stop the callback; once this returns JACK no longer touches the state."""
        if self._active:
            self._active = False
            if not self.shut_down:
                libjack.lib().jack_deactivate(self._client)

    def close(self) -> None:
        self.deactivate()
        if self._client:
            client, self._client = self._client, 0
            libjack.lib().jack_client_close(client)
        if self.mlocked:
            libjack.munlock(self.state.ctypes.data, self.state.nbytes)
            self.mlocked = False

    def __enter__(self) -> NativeJackClient:
        self.open()
        try:
            self.activate()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def active(self) -> bool:
        return self._active and not self.shut_down

    @property
    def shut_down(self) -> bool:
        """The server shut down or threw this client out (JACK's shutdown callback ran)."""
        return bool(self.state[layout.SHUTDOWN])

    # -- connections --------------------------------------------------------------------------
    def connect(self, source: str, destination: str) -> None:
        """Connect two ports by full name (``client:port``); already connected is fine."""
        if not self._client:
            raise NotActive("open() the client before connecting ports")
        code = libjack.lib().jack_connect(self._client, source.encode(), destination.encode())
        if code not in (0, libjack.ALREADY_CONNECTED):
            raise libjack.JackUnavailable(f"could not connect {source} -> {destination} (error {code})")

    def midi_ports(self, inputs: bool) -> list[str]:
        """The full names of the server's MIDI input (or output) ports, ours included."""
        if not self._client:
            raise NotActive("open() the client before listing ports")
        return libjack.midi_ports(self._client, libjack.PORT_IS_INPUT if inputs else libjack.PORT_IS_OUTPUT)

    # -- MIDI -----------------------------------------------------------------------------------
    def send(self, message: Sequence[int], time_s: float | None = None) -> bool:
        """Queue ``message`` to leave at ``time_s`` (time.monotonic()) plus the lookahead, at its exact
        frame; ``None``: at the start of the next cycle.  False when the TX ring was full (counted)."""
        if time_s is None:
            return self.schedule(message, layout.ASAP)
        if not self.active:
            raise NotActive(f"the JACK client {self.name!r} is not active")
        frame = max(self.clock.frame_at(time_s + self.lookahead_ms / 1000.0), self._last_frame)
        self._last_frame = frame
        return self.schedule(message, frame)

    def schedule(self, message: Sequence[int], frame: int) -> bool:
        """Queue ``message`` for the absolute 64-bit ``frame`` (``layout.ASAP``: the next cycle's
        start).  A frame that has passed when its cycle comes goes at the cycle's start, counted late."""
        if not 1 <= len(message) <= layout.MAX_MESSAGE or not 0x80 <= message[0] <= 0xFF or message[0] == 0xF0:
            raise BadMessage(f"the native JACK output sends 1-3 bytes starting with a status byte, not {list(message)}")
        if not self.active:
            raise NotActive(f"the JACK client {self.name!r} is not active")
        if rings.send_one(self.state, frame, layout.pack_message(message)):
            return True
        self._tx_full += 1
        return False

    def poll_frame(self) -> tuple[list[int], int] | None:
        """The next received message and its absolute frame (64-bit), or None."""
        if rings.take_batch(self.state, self._received) == 0:
            return None
        frame, packed = self._received[0]
        return layout.unpack_message(int(packed)), int(frame)

    def poll(self) -> tuple[list[int], float] | None:
        """The next received message and when it arrived (time.monotonic()), or None."""
        received = self.poll_frame()
        if received is None:
            return None
        message, frame = received
        return message, self.clock.time_at(frame)

    def queued(self) -> int:
        """Events sent but not yet written: on the TX ring, or waiting in the callback for their frame."""
        st = self.state
        return int(st[layout.PENDING]) + int(st[layout.TX_WRITE] - st[layout.TX_READ])

    def counters(self) -> Counters:
        st = self.state
        cycles = int(st[layout.CYCLES])
        return Counters(
            cycles=cycles,
            sent=int(st[layout.SENT]),
            received=int(st[layout.RECEIVED]),
            late=int(st[layout.LATE]),
            tx_full=self._tx_full,
            out_refused=int(st[layout.OUT_REFUSED]),
            rx_overflow=int(st[layout.RX_OVERFLOW]),
            lost_in=int(st[layout.LOST_IN]),
            sysex_dropped=int(st[layout.SYSEX_DROPPED]),
            sysex_unterminated=int(st[layout.SYSEX_UNTERMINATED]),
            pending=int(st[layout.PENDING]),
            xruns=int(st[layout.XRUNS]),
            callback_mean_us=float(st[layout.RUN_SUM_US]) / max(1, cycles),
            callback_max_us=int(st[layout.RUN_MAX_US]),
        )

    def _warm_up(self) -> None:
        """Compile (or load) the Python side's jitted ring functions now, not in the first send()."""
        scratch = rings.new_state()
        rings.send_one(scratch, 0, 0)
        rings.take_batch(scratch, np.zeros((1, 2), dtype=np.int64))
        self.clock.warm_up()
