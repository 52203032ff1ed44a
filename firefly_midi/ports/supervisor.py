"""The ports the daemon plays through: open a backend, notice its loss, reopen it, say how it goes.

``Ports`` tries the platform's backends in order and plays through the first that opens; while none
is open it plays through a ``NullBackend`` that counts what would have been sent, so the swarm, the
control plane and the telemetry keep going without MIDI.  On JACK a ``JackWatch`` notices the server
going away or standing still, lists the connections others make to our ports, and restores them.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from firefly_midi.midi import ALL_NOTES_OFF, CONTROL_CHANGE, NOTE_ON
from firefly_midi.ports.base import Backend, Incoming, PortConfig, PortError, ServerGone
from firefly_midi.ports.jack_native import NativeJackBackend
from firefly_midi.ports.jack_rtmidi import DeafCounts, JackRtMidiBackend
from firefly_midi.ports.null import NullBackend
from firefly_midi.ports.rtmidi import RtMidiBackend, platform_backends
from firefly_midi.ports.watch import JackWatch, jack_server_socket
from firefly_midi.transport import Transport

log = logging.getLogger("firefly_midi.ports")

SETTLE_S = 0.2  # longest wait for two JACK cycles after connecting (2 x 2048 frames at 44.1 kHz: 93 ms)
HOLD_S = 2.0  # after a new listener, note-ons wait at most this long for the daemon's All Notes Off


class PortState(StrEnum):
    """Where the ports stand; a str, so it equals (and serialises as) its value: ``"open"``..."""

    CLOSED = "closed"  # not opened yet, or closed
    OPEN = "open"  # playing through a backend
    NONE = "none"  # no backend could be opened: playing through the null backend
    LOST = "lost"  # the server under open ports went away: reopened once it is back


class Ports:
    """The daemon's output and input, on the first backend that opens (or on none).

    ``backend``: play through this backend instead of opening one (tests pass a RecordingBackend).
    The attribute ``backend`` is the name of the backend in use (or lost), as the status shows it.
    """

    def __init__(self, config: PortConfig, backend: Backend | None = None):
        self.config = config
        self._given = backend
        self._null = NullBackend()
        self.midi: Backend = self._null  # what the tick sends through; swapped whole, never half-made
        self.backend: str | None = None
        self.state = PortState.CLOSED
        self.problem = ""
        self.sent = 0
        self.unsent = 0  # messages the swarm played while no port was open
        self.held = 0  # note-ons dropped while a new listener waited for All Notes Off (_holds)
        self._hold_until = 0.0  # while set: note-ons are dropped until All Notes Off passes, or until then
        self.received = 0
        self.losses = 0
        self.stalls = 0  # times the JACK server stopped running its cycles (server_stalled)
        self.stalled = False  # as server_stalled() last found
        self.deaf = DeafCounts()  # JACK inputs and sysex guards found deaf and opened again
        self.watch: JackWatch | None = None
        self._dead: list[Any] = []  # backends and clients of a server that died: never touched again
        self.awaits_jack = False  # no backend opened, but a JACK server started later would do (open_late)
        self.transport = Transport()  # the clock's time: follows the frames of a backend that has them

    # --------------------------------------------------------------------------------- opening
    def open(self, quiet: bool = False) -> None:
        """Open the ports on the first backend that works; else stay portless and say why (once: not if ``quiet``)."""
        os.environ.setdefault("JACK_NO_START_SERVER", "1")  # never let libjack spawn a server behind the user's back
        if self._given is not None:
            self._use(self._given, None)
            return
        if self.config.backend == "windows" and not (self.config.connect_out or self.config.connect_in):
            self._give_up(
                "Windows cannot create virtual MIDI ports: install loopMIDI (tobias-erichsen.de), create a port, "
                "and pass --connect-out/--connect-in with its name"
            )
            return
        problems = []
        server = jack_server_socket()  # before the ports: the server may die while they open (the probe takes a while)
        for kind in platform_backends(self.config.backend):
            try:
                midi = self._open_backend(kind, server)
            except ServerGone as exc:
                self._lost_while_opening(kind, exc)
                return
            except PortError as exc:
                problems.append(f"{kind}: {exc}")
                continue
            self._use(midi, server)
            log.info("MIDI ports open on %s: %s", kind, ", ".join(self.names()))
            return
        self._give_up("; ".join(problems), quiet)

    def open_late(self) -> bool:
        """Open the ports now if none could be opened before and a JACK server has started since.

        A musician often starts the daemon before JACK: the swarm plays on without MIDI and its
        ports appear once the server does.  Cheap while no server runs: one look at its socket.
        """
        if self.state != PortState.NONE or not self.awaits_jack or jack_server_socket() is None:
            return False
        self.open(quiet=True)
        if self.state == PortState.OPEN:
            log.info("a JACK server started: MIDI ports open on %s: %s", self.backend, ", ".join(self.names()))
        return self.state == PortState.OPEN

    def reopen(self) -> bool:
        """Open the ports again on the backend that was lost; False while it is still away."""
        kind = self.backend or "jack"
        server = jack_server_socket()
        try:
            midi = self._open_backend(kind, server)
        except PortError as exc:
            self.problem = f"the MIDI server went away; reconnecting ({exc})"
            return False
        self._use(midi, server)
        log.info("MIDI ports open again on %s: %s", kind, ", ".join(self.names()))
        return True

    def _open_backend(self, kind: str, server: str | None) -> Backend:
        if kind == "jack":
            return JackRtMidiBackend.open_on(self.config, server, self._dead, self.deaf)
        if kind == "jack-native":
            return NativeJackBackend.open(self.config, server, self._dead)
        return RtMidiBackend.open(kind, self.config)

    def _use(self, midi: Backend, server: str | None) -> None:
        self._hold_until = time.monotonic() + HOLD_S  # a synth may hold notes from before: see _holds
        self.midi, self.backend, self.state, self.problem = midi, midi.kind, PortState.OPEN, ""
        frame_clock = midi.frame_clock
        if frame_clock is not None:  # the daemon's ticks and events run on this server's frames
            self.transport.follow(frame_clock)
            midi.transport = self.transport
        else:
            self.transport.leave()
        output = (midi.names() or [None])[0]
        self.watch = JackWatch.start(self.config.client, server, output) if midi.on_jack else None

    def _lost_while_opening(self, kind: str, why: ServerGone) -> None:
        self.backend, self.state, self.problem = kind, PortState.LOST, str(why)
        self.losses += 1
        log.warning("%s; the swarm keeps playing and the ports open when it is back", why)

    def _give_up(self, why: str, quiet: bool = False) -> None:
        on_jack = any(kind.startswith("jack") for kind in platform_backends(self.config.backend))
        self.awaits_jack = on_jack and sys.platform.startswith("linux")
        # what to do first: the TUI shows the start of it in a narrow row; the backends' errors follow
        no_server = self.awaits_jack and jack_server_socket() is None  # not when a server runs but refused
        hint = "no MIDI server: start JACK and the ports open (or load ALSA's snd-seq and restart); " if no_server else ""
        self.state, self.problem = PortState.NONE, hint + why
        later = "; the ports open when a JACK server starts" if self.awaits_jack else ""
        if not quiet:
            log.warning("no MIDI backend could be opened (%s); the swarm keeps running without MIDI%s", why, later)

    # ------------------------------------------------------------------------- losing the server
    @property
    def lost(self) -> bool:
        """True once the MIDI server under open ports has gone away (as the watch or the backend tells)."""
        if self.state != PortState.OPEN:
            return False
        return self.midi.server_left() or (self.watch is not None and not self.watch.alive())

    def mark_lost(self) -> None:
        """Stop using the ports of a server that went away (never closing them: that can block);
        the tick plays into the null backend at once.  ``reopen()`` tries again."""
        self._dead.extend(x for x in (self.midi, self.watch) if x is not None and x is not self._null)
        self.midi, self.watch, self._hold_until = self._null, None, 0.0  # nobody listens: nothing to hold
        self.transport.leave()
        self.state, self.problem = PortState.LOST, "the MIDI server went away"
        self.losses += 1

    def close(self) -> None:
        """Close the ports, after what was sent has left."""
        midi, self.midi = self.midi, self._null
        self.transport.leave()
        if midi is not self._null:
            if self.watch is not None:
                self.watch.wait_quiet()  # see JackWatch.wait_quiet
            midi.close()
        if self.watch is not None:
            self.watch.close()
            self.watch = None
        if self.state == PortState.OPEN:
            self.state = PortState.CLOSED

    # ---------------------------------------------------------------------------- connections
    def names(self) -> list[str]:
        return self.midi.names()

    def connections(self) -> list[list[str]] | None:
        """The connections to keep: those others (or we) made to our ports, where the backend can list
        them (JACK), and those a restore still waits to make (``JackWatch.restore``)."""
        if self.state != PortState.OPEN or self.watch is None:
            return None
        pairs, helpers = self.watch.kept_connections(self.names()), self.midi.helper_ports()
        return None if pairs is None else [pair for pair in pairs if pair[1] not in helpers]

    def restore(self, pairs: list[list[str]]) -> int:
        """Reconnect our ports as ``pairs`` say, where the other ports exist (the others for a while)."""
        if self.state != PortState.OPEN or self.watch is None or not pairs:
            return 0
        return self.watch.restore(pairs, self.names())

    def settle(self) -> None:
        """Wait (at most SETTLE_S) for connections just made to carry what is sent next: JACK applies
        a connection at its next cycle, so an All Notes Off sent meanwhile would reach nobody."""
        if self.state == PortState.OPEN and self.watch is not None:
            self.watch.wait_cycles(2, SETTLE_S)

    def listener_joined(self) -> bool:
        """True once after something was connected to our output (JACK, with a watch client): the
        daemon answers with All Notes Off, since a synth unplugged mid-note kept its notes."""
        watch = self.watch
        if self.state != PortState.OPEN or watch is None or not watch.listener_joined.is_set():
            return False
        watch.listener_joined.clear()
        self._hold_until = time.monotonic() + HOLD_S
        return True

    def output_latency_s(self, lookahead_s: float) -> float:
        """How long after its due time an event sent now is heard: the lookahead where the backend
        plays each event at its frame; else up to one JACK period (rtmidi's events wait for the next cycle)."""
        if getattr(self.midi, "schedules", False):
            return lookahead_s
        return self.watch.cycle_s() if self.state == PortState.OPEN and self.watch is not None else 0.0

    def server_realtime(self) -> bool | None:
        """Whether the JACK server the ports are on runs with real-time priority (None: not JACK, or unknown)."""
        return self.watch.realtime() if self.state == PortState.OPEN and self.watch is not None else None

    # ---------------------------------------------------------------------------------- traffic
    def send(self, message: Sequence[int], time_s: float | None = None) -> None:
        """Send now, or at ``time_s`` on the monotonic clock where the backend schedules."""
        if self._hold_until and self._holds(message):
            self.held += 1
            return
        midi = self.midi
        midi.send(message, time_s)
        if midi is self._null:
            self.unsent += 1
        else:
            self.sent += 1

    def _holds(self, message: Sequence[int]) -> bool:
        """Whether to drop a note-on because a new listener has not had its All Notes Off yet.

        After the ports open, or something connects to our output, the daemon silences the synths
        (they may hold notes from before), but the tick plays on meanwhile: a note-on sent while the
        connections are restored and settle would reach the synth before the All Notes Off.  So
        note-ons wait for the first All Notes Off to pass (HOLD_S at most); all else goes out.
        """
        kind = message[0] & 0xF0 if message else 0
        if kind == CONTROL_CHANGE and len(message) == 3 and message[1] == ALL_NOTES_OFF:
            self._hold_until = 0.0
        elif kind == NOTE_ON and len(message) == 3 and message[2] > 0:
            if time.monotonic() < self._hold_until:
                return True
            self._hold_until = 0.0
        return False

    def reflex_state(self) -> object | None:
        """Where the tick may arm a reflex: the open native JACK client's state, not while note-ons
        are held for a new listener's All Notes Off (``_holds``)."""
        if self.state != PortState.OPEN or self._hold_until:
            return None
        return self.midi.reflex_state()

    @property
    def arrival(self) -> str:
        """What the time ``poll`` gives with a message is (``Backend.arrival``): "delta" or "monotonic"."""
        return self.midi.arrival

    def poll(self) -> Incoming | None:
        """The next waiting input message and its time (``arrival`` says which), or None."""
        item = self.midi.poll()
        if item is not None:
            self.received += 1
        return item

    # ------------------------------------------------------------------ a deaf input, a stalled server
    def end_stray_sysex(self, now: float) -> None:
        """The backend's input heartbeat (on JACK: the sysex guard's 0xF7); the tick calls it every 10 ms."""
        self.midi.heartbeat(now)

    def input_is_deaf(self) -> bool:
        return self.state == PortState.OPEN and self.midi.input_is_deaf()

    def reopen_input(self) -> bool:
        """Open a deaf input again, off the tick thread, with its connections; False if none opened."""
        pairs = self.connections() or []
        if not self.midi.reopen_input(pairs):
            return False
        self.restore(pairs)
        return True

    def server_stalled(self) -> bool:
        """True while the JACK server runs (or just ran) under half its cycles (``JackWatch.stalled``).

        Its clients hear nothing then, the input's heartbeat included, which starts again from
        nothing so that the input is judged once the server cycles again.  Counted in ``stalls``.
        """
        stalled = self.state == PortState.OPEN and self.watch is not None and self.watch.stalled()
        if stalled:
            self.midi.restart_heartbeat()
        self.stalls += stalled and not self.stalled
        self.stalled = stalled
        return stalled

    @property
    def server_pace(self) -> float | None:
        """The JACK server's frames run over frames due, in the watch's last window (None: no watch)."""
        return self.watch.pace if self.watch is not None else None

    def status(self) -> dict[str, object]:
        return {
            "state": str(self.state),
            "backend": self.backend,
            "ports": self.names(),
            "problem": self.problem,
            "sent": self.sent,
            "unsent": self.unsent,
            "held": self.held,
            "received": self.received,
            "losses": self.losses,
            "deaf_inputs": self.deaf.inputs,
            "deaf_guards": self.deaf.guards,
            "stalls": self.stalls,
            "server_pace": None if self.server_pace is None else round(self.server_pace, 3),
            "sysex_guard": False,
            "on_frames": self.transport.on_frames,  # the clock and its events run on the server's frames
            "frame_jumps": self.transport.jumps,
            **self.midi.status(),
        }
