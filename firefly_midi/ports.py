"""MIDI ports: backends, virtual ports, input polling.

The tick thread talks to python-rtmidi directly: ``send_message`` with a reused list and
``get_message`` polled once per tick.  Why not callbacks: python-rtmidi runs them on JACK's real-time
thread where they must take the GIL, and under a heavy swarm kernel a callback design lost messages
and stalled for tens of ms, while polling lost none.  Why not mido's port objects in the tick: they
build a ``Message`` per event; mido is used where its objects help (files, tests).

Following mido's ports: ``Ports`` checks and counts in ``send()``/``poll()``; a backend that could
not be opened leaves a null port that counts what it would have sent, so the swarm, the control
plane and the recording keep going without MIDI.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("firefly_midi.ports")

BACKENDS = ("auto", "alsa", "jack", "coremidi", "windows")
DRAIN_S = 0.05  # a few JACK periods (1.3 ms at 64 frames; 21 ms at 1024 frames / 48 kHz)
PROBE_S = 1.0  # how long a JACK input has to hear the probe before it counts as deaf
PROBE_TRIES = 3  # JACK inputs opened (the first and the reopened ones) before keeping a deaf one
PROBE_MESSAGE = (0x8F, 0, 0)  # note-off, channel 16, note 0: read by the probe itself, never by the swarm
END_OF_SYSEX = [0xF7]  # what the sysex guard sends into the JACK input (see Ports.end_stray_sysex)
SYSEX_SILENCE_S = 0.5  # an input silent this long may be stuck in a sysex that never ends: end it
SERVER_EXIT_S = 0.5  # after a failed call into libjack, how long to look for the server's exit (_server_gone)
SETTLE_S = 0.2  # longest wait for two JACK cycles after connecting (2 x 2048 frames at 44.1 kHz: 93 ms)
DEAF_AFTER = 4  # guard 0xF7s in a row that never came back (2 s of them): the input has gone deaf
GUARD_PORT = "sysex-end"


class PortError(RuntimeError):
    """A MIDI backend or port could not be opened (the message says what to do)."""


class ServerGone(PortError):
    """The JACK server went away while the ports opened: lost, to be reopened once it is back."""


def _api(backend: str) -> int:
    import rtmidi

    return {
        "alsa": rtmidi.API_LINUX_ALSA,
        "jack": rtmidi.API_UNIX_JACK,
        "coremidi": rtmidi.API_MACOSX_CORE,
        "windows": rtmidi.API_WINDOWS_MM,
    }[backend]


def platform_backends(backend: str) -> list[str]:
    """The backends to try, in order: ``auto`` is the platform's own, then JACK if a server runs."""
    if backend != "auto":
        return [backend]
    if sys.platform.startswith("linux"):
        return ["alsa", "jack"]
    if sys.platform == "darwin":
        return ["coremidi", "jack"]
    if sys.platform.startswith("win"):
        return ["windows"]
    return ["jack"]


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


class Ports:
    """The daemon's output and input port on one backend (or none)."""

    def __init__(self, config: PortConfig):
        self.config = config
        self.backend: str | None = None
        self.out = None
        self.inp = None
        self.guard = None  # JACK only: an output into our input that ends stray sysex (end_stray_sysex)
        self._guard_delta = 0.0  # rtmidi delta times of the guard's messages, passed on to the next one
        self._heard, self._heard_at = 0, 0.0  # received, and when that count was first seen: the input's silence
        self._unanswered = 0  # guard 0xF7s sent since the input last heard anything (its own echo included)
        self._input_lock = threading.Lock()  # the tick reads inp/guard under it; reopen_input swaps them under it
        self.state = "closed"  # closed | open | none | lost
        self.problem = ""
        self.sent = 0
        self.unsent = 0  # messages the swarm played while no port was open
        self.received = 0
        self.losses = 0
        self.deaf_inputs = 0  # JACK inputs found deaf and reopened (see _open_jack_input, reopen_input)
        self.deaf_guards = 0  # sysex guards found deaf later and reopened (reopen_input)
        self.stalls = 0  # times the JACK server stopped running its cycles (server_stalled)
        self.stalled = False  # as server_stalled() last found
        self.watch: JackWatch | None = None
        self._dead: list[object] = []  # ports of a server that died: never touched again
        self.awaits_jack = False  # no backend opened, but a JACK server started later would do (open_late)

    # --------------------------------------------------------------------------------- opening
    def open(self, quiet: bool = False) -> None:
        """Open the ports on the first backend that works; else stay portless and say why (once: not if ``quiet``)."""
        os.environ.setdefault("JACK_NO_START_SERVER", "1")  # never let libjack spawn a server behind the user's back
        if self.config.backend == "windows" and not (self.config.connect_out or self.config.connect_in):
            self._give_up(
                "Windows cannot create virtual MIDI ports: install loopMIDI (tobias-erichsen.de), create a port, "
                "and pass --connect-out/--connect-in with its name"
            )
            return
        problems = []
        server = jack_server_socket()  # before the ports: the server may die while they open (the probe takes a while)
        for backend in platform_backends(self.config.backend):
            try:
                out, inp, guard = self._open_on(backend, server)
            except ServerGone as exc:
                self._lost_while_opening(backend, exc)
                return
            except PortError as exc:
                problems.append(f"{backend}: {exc}")
                continue
            self._use(backend, out, inp, guard, server)
            log.info("MIDI ports open on %s: %s", backend, ", ".join(self.names()))
            return
        self._give_up("; ".join(problems), quiet)

    def open_late(self) -> bool:
        """Open the ports now if none could be opened before and a JACK server has started since.

        A musician often starts the daemon before JACK (or QjackCtl) is up: the swarm plays on
        without MIDI and its ports appear once the server does.  Cheap while no server runs: one
        look at the server's socket.  True when the ports are open.
        """
        if self.state != "none" or not self.awaits_jack or jack_server_socket() is None:
            return False
        self.open(quiet=True)
        if self.state == "open":
            log.info("a JACK server started: MIDI ports open on %s: %s", self.backend, ", ".join(self.names()))
        return self.state == "open"

    def _use(self, backend: str, out: Any, inp: Any, guard: Any, server: str | None) -> None:
        """Play through ports just opened (a JACK input with its sysex guard), with a watch on a JACK server."""
        self.out, self.inp, self.guard = out, inp, guard
        self._unanswered = 0
        self.backend, self.state, self.problem = backend, "open", ""
        self.watch = JackWatch.start(self.config.client, server, self.names()[0]) if backend == "jack" else None

    def _lost_while_opening(self, backend: str, why: ServerGone) -> None:
        """The server was there when the ports began to open and is gone: reopen them when it is back."""
        self.backend, self.state, self.problem = backend, "lost", str(why)
        self.losses += 1
        log.warning("%s; the swarm keeps playing and the ports open when it is back", why)

    def _give_up(self, why: str, quiet: bool = False) -> None:
        self.awaits_jack = "jack" in platform_backends(self.config.backend) and sys.platform.startswith("linux")
        # what to do first: the TUI shows the start of it in a narrow row; the backends' errors follow
        no_server = self.awaits_jack and jack_server_socket() is None  # not when a server runs but refused
        hint = "no MIDI server: start JACK and the ports open (or load ALSA's snd-seq and restart); " if no_server else ""
        self.state, self.problem = "none", hint + why
        later = "; the ports open when a JACK server starts" if self.awaits_jack else ""
        if not quiet:
            log.warning("no MIDI backend could be opened (%s); the swarm keeps running without MIDI%s", why, later)

    def _open_on(self, backend: str, server: str | None) -> tuple[Any, Any, Any]:
        """(output, input or None, sysex guard or None) opened on ``backend``; nothing is kept if one fails.

        ``server``: the JACK server's socket seen before opening.  If it changed when opening fails
        (or when the input probe hears nothing), the server died meanwhile: ServerGone, and the
        half-made clients are left alone, as those of any dead server (closing them can block).
        """
        import rtmidi

        cfg = self.config
        out = inp = guard = None
        try:
            api = _api(backend)
            if api not in rtmidi.get_compiled_api():
                raise PortError(f"python-rtmidi was built without {backend} support")
            out = rtmidi.MidiOut(api, cfg.client)
            _open(out, cfg.out_name, cfg.connect_out, "output")
            if cfg.use_input and backend == "jack":
                inp, guard = self._open_jack_input(server)
            elif cfg.use_input:
                inp = self._open_input(api, backend)
        except (rtmidi.RtMidiError, SystemError, RuntimeError, PortError) as exc:
            if backend == "jack" and _server_gone(server, SERVER_EXIT_S):
                self._dead.extend(p for p in (out, inp, guard) if p is not None)
                raise ServerGone("the JACK server went away while the ports opened") from None
            _close_quietly(out, inp, guard)
            raise PortError(str(exc).strip() or type(exc).__name__) from None
        return out, inp, guard

    def _open_input(self, api: int, backend: str) -> Any:
        import rtmidi

        inp = rtmidi.MidiIn(api, self._input_client(backend), queue_size_limit=4096)
        try:
            # sysex is never a flash; dropping it in rtmidi keeps a sysex flood out of our queue
            inp.ignore_types(sysex=True, timing=not self.config.clock_in, active_sense=True)
            _open(inp, self.config.in_name, self.config.connect_in, "input")
        except BaseException:
            _close_quietly(inp)
            raise
        return inp

    def _open_jack_input(self, server: str | None, carried: list[str] | None = None, tries: int = PROBE_TRIES) -> tuple[Any, Any]:
        """The JACK input, heard by the probe, and its sysex guard, whose 0xF7 it heard too (or None).

        Either can open deaf (``_hear_jack_input``): the guard is opened until its 0xF7 comes back;
        when none of them does, the input, heard a moment before, may be the one gone deaf (seen on
        CI): it is probed again, and opened again if it hears nothing.
        """
        import rtmidi

        api = rtmidi.API_UNIX_JACK
        inp = self._hear_jack_input(self._open_input(api, "jack"), api, server, carried, tries)
        for _ in range(tries):
            guard = self._open_guard(inp, server, tries)
            if guard is not None:
                return inp, guard
            heard, carried = _probe_jack_input(inp, self._input_name(), [], server, self._dead)
            if heard is not False:
                break  # the input hears: no guard could be made to reach it
            self._raise_if_server_gone(server, inp, wait_s=SERVER_EXIT_S)
            self.deaf_inputs += 1
            log.warning("the JACK input went deaf after its probe heard it; opening it again")
            _close_quietly(inp)
            inp = None
            inp = self._hear_jack_input(self._open_input(api, "jack"), api, server, carried, tries)
        log.warning("no sysex guard on the JACK input: a sysex that never ends would deafen it, and deafness goes unnoticed")
        return inp, None

    def _raise_if_server_gone(self, server: str | None, *clients: Any, wait_s: float = 0.0) -> None:
        """ServerGone if the server whose socket was ``server`` died: its ``clients`` are kept unclosed
        (closing a dead server's client can block).  ``wait_s``: see ``_server_gone``."""
        if _server_gone(server, wait_s):
            self._dead.extend(c for c in clients if c is not None)
            raise ServerGone("the JACK server went away while the ports opened")

    def _input_name(self) -> str:
        return f"{self._input_client('jack')}:{self.config.in_name}"

    def _hear_jack_input(self, inp: Any, api: int, server: str | None, carried: list[str] | None = None, tries: int = PROBE_TRIES) -> Any:
        """The JACK input, reopened if it opened deaf.

        rtmidi's JACK input can open deaf: registered, active, connectable, and never running its
        process callback, so it hears nothing, for good, and nothing says so (issue #7: about one
        CI run in four on 2 vCPUs).  The cause is in libjack (jack2): all JACK clients of one libjack
        in a process share one table of wake-up futexes indexed by client number, filled and emptied
        by each client's notification thread.  Our output is such a client; when a short-lived client
        (``jack_lsp``, ``jack_connect``: the tests poll with them while the daemon starts) has just
        left and the output's notification thread has not caught up, the input, given the number
        the short-lived one had, finds the table entry still taken and keeps it: it then waits on
        the futex of the client that left (``/proc/<pid>/maps`` of a deaf daemon shows
        ``jack_sem.…_lsp (deleted)`` mapped), which nobody ever wakes.  Closing the client frees the
        entry, so a reopened input works.  Loading JACK-Client's libjack into the same copy as
        rtmidi's changes nothing (measured); the probe client relies on it being a separate copy.
        """
        carried = carried or []  # what others connected to a deaf input: connected again to the next one
        for attempt in range(1, tries + 1):
            heard, carried = _probe_jack_input(inp, self._input_name(), carried, server, self._dead)
            if heard is not False:
                return inp  # heard, or the probe could not be made: nothing to go on
            self._raise_if_server_gone(server, inp, wait_s=SERVER_EXIT_S)  # it heard nothing: is anything there?
            if attempt == tries:
                log.warning("the JACK input opened deaf %d times; keeping it (incoming MIDI may not arrive)", attempt)
                return inp
            self.deaf_inputs += 1
            log.warning("the JACK input opened deaf (a libjack race with a client that just left); reopening it")
            _close_quietly(inp)  # closing frees the table entry: the next input gets a working one
            inp = None
            inp = self._open_input(api, "jack")
        return inp

    def _input_client(self, backend: str) -> str:
        """rtmidi makes one client per port; JACK wants unique client names, so the input's says so."""
        return f"{self.config.client}-in" if backend == "jack" else self.config.client

    def _open_guard(self, inp: Any, server: str | None, tries: int = PROBE_TRIES) -> Any:
        """An rtmidi output connected to our JACK input whose lone 0xF7 the input hears, or None.

        rtmidi's JACK input joins JACK events into one sysex until one ends in 0xF7 (a sysex may come
        in chunks: jack2's ALSA bridge cuts them at 256 bytes), and with sysex ignored it drops them
        all.  A sysex that never ends (a peer that crashed or was unplugged mid-dump, a buggy sender)
        therefore swallowed every later event, notes included: the input was deaf for good.  ALSA's
        rtmidi input does not do this (any other event type ends a sysex there).  The guard ends such
        a sysex (``end_stray_sysex``); its 0xF7s coming back are the input's heartbeat.  It is a client
        of rtmidi's libjack, so it can open deaf too: it is opened again until its 0xF7 comes back.
        """
        import rtmidi

        for _ in range(tries):
            guard = None
            try:  # a server that dies now is noticed by the watch, as after any open: the guard is not needed for that
                guard = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, self._guard_name().split(":")[0])
                _open(guard, GUARD_PORT, self._input_name(), "output")
            except (rtmidi.RtMidiError, SystemError, RuntimeError, PortError) as exc:
                self._raise_if_server_gone(server, guard, wait_s=SERVER_EXIT_S)
                _close_quietly(guard)
                log.warning("no sysex guard on the JACK input (%s): a sysex that never ends would deafen it", exc)
                return None
            if _echoes(guard, inp):
                return guard
            self._raise_if_server_gone(server, guard, wait_s=SERVER_EXIT_S)
            _close_quietly(guard)
        return None

    def _guard_name(self) -> str:
        """The sysex guard's JACK port, ``<client>-guard:sysex-end``."""
        return f"{self.config.client}-guard:{GUARD_PORT}"

    def names(self) -> list[str]:
        names = [f"{self.config.client}:{self.config.out_name}"] if self.out else []
        return names + ([f"{self._input_client(self.backend or '')}:{self.config.in_name}"] if self.inp else [])

    # ---------------------------------------------------------------------------- connections
    def connections(self) -> list[list[str]] | None:
        """The connections others (or we) made to our ports, where the backend can list them (JACK)."""
        if self.state != "open" or self.watch is None:
            return None
        pairs = self.watch.connections(self.names())
        return None if pairs is None else [pair for pair in pairs if pair[1] != self._guard_name()]

    def restore(self, pairs: list[list[str]]) -> int:
        """Reconnect our ports as ``pairs`` say, where the other ports exist."""
        if self.state != "open" or self.watch is None or not pairs:
            return 0
        made = self.watch.connect(pairs)
        if made:
            log.info("restored %d port connection(s)", made)
        return made

    def server_realtime(self) -> bool | None:
        """Whether the JACK server the ports are on runs with real-time priority (None: not JACK, or unknown)."""
        if self.state != "open" or self.watch is None or self.watch.client is None:
            return None
        try:
            return bool(self.watch.client.realtime)
        except Exception:  # jack.JackError: a dying server
            return None

    def settle(self) -> None:
        """Wait (at most SETTLE_S) for connections just made to carry what is sent next.

        JACK applies a new connection at the start of its next cycle: a message sent while the
        current one runs goes out on the old graph, to nobody, and an All Notes Off meant for a
        synth just connected is lost.  Two cycles later the new graph is in use.
        """
        if self.state == "open" and self.watch is not None:
            self.watch.wait_cycles(2, SETTLE_S)

    # ------------------------------------------------------------------------- losing the server
    @property
    def lost(self) -> bool:
        """True once the MIDI server under open ports has gone away."""
        return self.state == "open" and self.watch is not None and not self.watch.alive()

    def mark_lost(self) -> None:
        """Stop using the ports of a server that went away; ``reopen()`` tries again."""
        self._dead.extend(p for p in (self.out, self.inp, self.guard, self.watch) if p is not None)
        self.out = self.inp = self.guard = self.watch = None  # the tick sees None at once and counts as unsent
        self.state, self.problem = "lost", "the MIDI server went away"
        self.losses += 1

    def reopen(self) -> bool:
        """Open the ports again on the backend that was lost; False while it is still away."""
        backend = self.backend or "jack"
        server = jack_server_socket()
        try:
            out, inp, guard = self._open_on(backend, server)
        except PortError as exc:
            self.problem = f"the MIDI server went away; reconnecting ({exc})"
            return False
        self._use(backend, out, inp, guard, server)
        log.info("MIDI ports open again on %s: %s", backend, ", ".join(self.names()))
        return True

    def close(self) -> None:
        """Close the ports, after what was sent has left: rtmidi queues output for JACK's next cycle,
        and a port closed before that cycle drops it (the last note-offs, of all messages)."""
        if self.out is not None and self.sent:
            time.sleep(DRAIN_S)
        if self.watch is not None:
            self.watch.close()
            self.watch = None
        ports, self.out, self.inp, self.guard = (self.out, self.inp, self.guard), None, None, None
        _close_quietly(*ports)
        if self.state == "open":
            self.state = "closed"

    def listener_joined(self) -> bool:
        """True once after something was connected to our output (JACK, with a watch client).

        A synth whose connection was pulled mid-note kept those notes sounding: the note-offs went
        nowhere.  The daemon answers a new connection with All Notes Off, before its next note.
        """
        watch = self.watch
        if self.state != "open" or watch is None or not watch.listener_joined.is_set():
            return False
        watch.listener_joined.clear()
        return True

    # ---------------------------------------------------------------------------------- traffic
    def send(self, message: Sequence[int]) -> None:
        out = self.out
        if out is None:
            self.unsent += 1
            return
        out.send_message(message)
        self.sent += 1

    def poll(self) -> tuple[list[int], float] | None:
        """The next waiting input message and its delta time (s) since the previous one, or None.

        The guard's own 0xF7s are passed over (a lone end-of-sysex means nothing to the swarm), their
        delta times added to the next message's; that they came back says the input hears.
        """
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
            self.received += 1
            if self._guard_delta:
                item, self._guard_delta = (item[0], item[1] + self._guard_delta), 0.0
            return item

    def end_stray_sysex(self, now: float) -> None:
        """Send one 0xF7 into our JACK input when it has heard nothing for SYSEX_SILENCE_S.

        A peer's sysex that never ends swallows every later event, so the input hears nothing: after
        half a second of that, the 0xF7 ends it (``_open_guard``).  Not sooner, and not while the
        input hears anything: a 0xF7 in the middle of a long sysex still arriving in chunks would
        make each later chunk a message of its own (an 8 KiB JACK event is a list of 8,192 ints for
        the tick to take in), where rtmidi drops the whole sysex unseen.  The daemon calls this
        every 10 ms with its clock's time.

        The same 0xF7s are the input's heartbeat: a lone one comes back through the input (``poll``
        passes over it), one that ends a stray sysex does not; so a silent input hears one every
        half second, and one that hears none of DEAF_AFTER has gone deaf (``input_is_deaf``).
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
        """True when the guard's last DEAF_AFTER 0xF7s never came back (or a reopen left no input).

        Either end may be the deaf one (``reopen_input`` finds out which).  Seen in CI: an input the
        opening probe had heard that then heard nothing for good; and a guard that jack2 dropped
        when another client left a synchronous server without closing (docs/reliability.md).
        """
        if self.state != "open" or self.backend != "jack" or not self.config.use_input:
            return False
        return self.inp is None or (self.guard is not None and self._unanswered >= DEAF_AFTER)  # None: a reopen failed

    def server_stalled(self) -> bool:
        """True while the JACK server runs (or just ran) under half its cycles: ``JackWatch.stalled``.

        Its clients hear nothing then, the input's heartbeat included; it starts again from nothing,
        so that the input is judged once the server cycles again.  Counted in ``stalls``.
        """
        stalled = self.state == "open" and self.watch is not None and self.watch.stalled()
        if stalled:
            with self._input_lock:
                self._unanswered = 0
        self.stalls += stalled and not self.stalled
        self.stalled = stalled
        return stalled

    @property
    def server_pace(self) -> float | None:
        """The JACK server's frames run over frames due, in the watch's last window (None: no watch)."""
        return self.watch.pace if self.watch is not None else None

    def reopen_input(self) -> bool:
        """Find which of the JACK input and its guard went deaf, and open that one again.

        Called off the tick thread, which sees no input meanwhile (``poll`` returns None): the
        input is probed (``_probe_jack_input``, a second at most).  If it hears, only the guard is
        opened again; if not, both are, connected as before.  One try of each, a few seconds at
        most, so that a stop is not kept waiting: a guard that stays deaf is found again, and the
        daemon tries again.  False if no input could be opened (the ports stay open without one).
        """
        import rtmidi

        pairs = self.connections() or []
        server = self.watch.server_socket if self.watch is not None else jack_server_socket()
        with self._input_lock:
            inp, guard, self.inp, self.guard = self.inp, self.guard, None, None
            self._unanswered = 0
        try:
            self._raise_if_server_gone(server, guard)  # the watch notices the loss and reopens everything
            _close_quietly(guard)
            heard, _ = _probe_jack_input(inp, self._input_name(), [], server, self._dead) if inp is not None else (False, [])
            if heard is False:
                log.warning("the JACK input went deaf: opening it again")
                self.deaf_inputs += 1
                _close_quietly(inp)  # closing frees the libjack table entry the deaf client held
                inp = None
                inp, guard = self._open_jack_input(server, [p for o, p in pairs if o == self._input_name()], tries=1)
            else:
                log.warning("the JACK input's sysex guard went deaf: opening it again")
                self.deaf_guards += 1
                guard = self._open_guard(inp, server, tries=1)
                if guard is None:
                    log.warning("no new sysex guard reached the input: stray sysex and deafness go unnoticed from now on")
        except ServerGone:  # its clients are in _dead, unclosed; the watch reopens everything once it is back
            if inp is not None:
                self._dead.append(inp)
            return False
        except (rtmidi.RtMidiError, SystemError, RuntimeError, PortError) as exc:
            log.warning("the JACK input could not be opened again (%s)", exc)
            _close_quietly(inp)
            return False
        with self._input_lock:
            self.inp, self.guard = inp, guard
        self.restore(pairs)
        return True

    def status(self) -> dict[str, object]:
        return {
            "state": self.state,
            "backend": self.backend,
            "ports": self.names(),
            "problem": self.problem,
            "sent": self.sent,
            "unsent": self.unsent,
            "received": self.received,
            "losses": self.losses,
            "deaf_inputs": self.deaf_inputs,
            "deaf_guards": self.deaf_guards,
            "stalls": self.stalls,
            "server_pace": None if self.server_pace is None else round(self.server_pace, 3),
            "sysex_guard": self.guard is not None,
        }


def _open(port, name: str, connect_to: str | None, kind: str) -> None:
    """A virtual port called ``name``, or a port connected to the existing one matching ``connect_to``."""
    if connect_to is None:
        port.open_virtual_port(name)
        return
    available = port.get_ports()
    for index, existing in enumerate(available):
        if connect_to in existing:
            port.open_port(index, name)
            return
    listing = ", ".join(available) or "none"
    raise PortError(f"no MIDI {kind} port matching {connect_to!r}; available: {listing}")


def _server_gone(server: str | None, wait_s: float = 0.0) -> bool:
    """Whether the JACK server whose socket was ``server`` has died (or been replaced) since.

    ``wait_s``: after a call into libjack failed, look that long.  A jackd killed outright breaks
    its clients' connections before its listening socket leaves /proc/net/unix: in clean-clone CI
    an input open failed on a dying server whose socket was still listed, and the daemon gave up
    MIDI for good instead of waiting for the server to come back.
    """
    if server is None:
        return False
    deadline = time.monotonic() + wait_s
    while jack_server_socket() == server:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _echoes(guard: Any, inp: Any) -> bool:
    """Whether a lone 0xF7 sent through ``guard`` comes back through ``inp`` within PROBE_S.

    Sent again every 0.1 s: a peer's sysex that never ended takes the first.  What else arrives
    meanwhile is dropped, as by the probe; it runs before the tick reads ``inp``.
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


def _probe_jack_input(
    inp: Any, port_name: str, connect: list[str], server: str | None, dead: list[object]
) -> tuple[bool | None, list[str]]:
    """Whether a MIDI event written into ``port_name`` by a short-lived JACK client reaches ``inp``
    within PROBE_S (None if the probe could not be made: no JACK-Client, a refusing server), and the
    ports connected to ``port_name`` besides the probe.  The ports in ``connect`` are connected first.
    If the server (whose socket was ``server``) dies meanwhile, the probe client goes into ``dead``
    unclosed: closing a dead server's client can block, and garbage collection would close it.

    Runs before the tick reads ``inp``: it reads the probe itself, and whatever a peer that already
    connected sent meanwhile (which is dropped, and is just as good a proof that the input hears).
    The probe client is JACK-Client's, on its own libjack: a client opening beside rtmidi's in
    rtmidi's libjack could itself open deaf (see ``Ports._hear_jack_input``).
    """
    try:
        import jack
    except (ImportError, OSError):
        return None, []
    client_name = port_name.split(":", 1)[0] + "-probe"
    try:
        probe = jack.Client(client_name, no_start_server=True)
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
        deadline = time.monotonic() + PROBE_S
        while time.monotonic() < deadline:
            if inp.get_message() is not None:
                heard = True
                break
            time.sleep(0.002)
        others = [p.name for p in probe.get_all_connections(port_name) if p.name != port.name]
    except Exception as exc:  # jack.JackError: the server refused; that says nothing about the input
        log.debug("the JACK input probe failed (%s)", exc)
        return None, []
    finally:
        stop.set()
        try:
            if _server_gone(server):
                dead.append(probe)
            else:
                probe.deactivate()
                probe.close()
        except Exception as exc:
            log.debug("closing the JACK probe client failed: %s", exc)
        time.sleep(DRAIN_S)  # the probe's last events, written before it stopped, are queued by now
        while inp.get_message() is not None:
            pass
    return heard, others


class JackWatch:
    """Notices the JACK server going away, which rtmidi's clients are never told.

    Two ways, because either alone was seen to miss it: a silent JACK client whose shutdown callback
    fires when the server closes (not always delivered when the server is killed under load), and,
    on Linux, the server's listening socket in /proc/net/unix, which disappears when the server dies
    and comes back with another inode when a new server takes its name.
    """

    LOOK_EVERY_S = 0.5
    PACE_WINDOW_S = 0.25  # the server's pace is measured over windows this long at least
    STALL_KEPT_S = 2.5  # a stall counts this long after: longer than the heartbeat takes to call an input deaf

    def __init__(self, client, server_socket: str | None = None):
        self.client = client
        self._pace: tuple[float, int] | None = None  # (monotonic, the server's last cycle's first frame)
        self._stalled_until = 0.0
        self._samplerate = 0  # set by start(), with the client
        self.pace = 1.0  # frames the server ran in the last window, over those its sample rate asks for
        self.gone = threading.Event()
        self.listener_joined = threading.Event()  # something was connected to our output (told by JACK)
        # the server the ports opened on, seen before they opened: if it died since, alive() says so
        self.server_socket = server_socket or jack_server_socket()
        self._next_look = 0.0

    def alive(self) -> bool:
        if self.gone.is_set():
            return False
        if self.server_socket is None or time.monotonic() < self._next_look:
            return True
        self._next_look = time.monotonic() + self.LOOK_EVERY_S
        if jack_server_socket() != self.server_socket:
            self.gone.set()
            return False
        return True

    def stalled(self) -> bool:
        """True while, or shortly after, the server ran under half the cycles its sample rate asks for.

        A synchronous jack2 waiting on a client that died stops its cycles for seconds, and every
        client hears nothing meanwhile: that is no sign of a deaf input.  Opening a client then
        blocks in libjack too, and python-rtmidi holds the GIL in there, so the whole daemon would
        stop with it.  ``jack_last_frame_time`` reads the server's shared memory: no round trip.
        Called every housekeeping pass, it measures the pace between calls.
        """
        if self.client is None or self.gone.is_set():
            return False
        now, frame = time.monotonic(), self.client.last_frame_time
        if self._pace is None:
            self._pace = (now, frame)
        elif now - self._pace[0] >= self.PACE_WINDOW_S:
            (then, first), self._pace = self._pace, (now, frame)
            self.pace = _frames_between(first, frame) / (self._samplerate * (now - then) or 1.0)
            if self.pace < 0.5:
                self._stalled_until = now + self.STALL_KEPT_S
        return now < self._stalled_until

    def wait_cycles(self, cycles: int, timeout_s: float) -> bool:
        """Wait until the server has run ``cycles`` more cycles; False if it did not within ``timeout_s``."""
        if self.client is None or self.gone.is_set():
            return False
        client = self.client
        first, needed = client.last_frame_time, cycles * client.blocksize
        deadline = time.monotonic() + timeout_s
        while _frames_between(first, client.last_frame_time) < needed:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.0005)
        return True

    @classmethod
    def start(cls, name: str, server_socket: str | None = None, output: str | None = None) -> JackWatch:
        """A watch on the server the ports just opened on; its JACK client is optional (the socket
        look still works without it, and without it connections cannot be listed or restored, nor
        a new connection to ``output``, our output port, noticed)."""
        watch = cls(None, server_socket)
        try:
            import jack

            client = jack.Client(f"{name}-watch", no_start_server=True)
            client.set_shutdown_callback(lambda status, reason: watch.gone.set())

            def connected(a, b, connect: bool) -> None:  # on JACK's notification thread, not the real-time one
                if connect and output is not None and output in (getattr(a, "name", None), getattr(b, "name", None)):
                    watch.listener_joined.set()

            client.set_port_connect_callback(connected, only_available=False)
            client.activate()
            client.get_ports()  # JACK-Client keeps the ports it has seen, so the callback gets them (its docs)
            watch._samplerate = client.samplerate
            watch.client = client
        except (ImportError, OSError) as exc:  # no JACK-Client, or no libjack
            log.warning("no JACK client to watch the server (%s): port connections are not kept", exc)
        except Exception as exc:  # jack.JackError: a busy or dying server; the socket look still works
            log.warning("no JACK client to watch the server (%s): port connections are not kept", exc)
        if watch.client is None and watch.server_socket is None:
            log.warning("a lost JACK server will not be noticed")
        return watch

    def connections(self, ours: list[str]) -> list[list[str]] | None:
        """[our port, other port] for every connection of ``ours``; None if the server would not say."""
        if self.client is None:  # no JACK-Client: return before importing it
            return None
        import jack

        pairs = []
        try:
            for name in ours:
                port = self.client.get_port_by_name(name)
                pairs.extend([name, other.name] for other in self.client.get_all_connections(port))
        except jack.JackError:
            return None
        return None if self.gone.is_set() else sorted(pairs)

    def connect(self, pairs: list[list[str]]) -> int:
        """Make the connections that are missing and possible; returns how many were made."""
        if self.client is None:
            return 0
        import jack

        made = 0
        for ours, theirs in pairs:
            try:
                port = self.client.get_port_by_name(ours)
                source, destination = (ours, theirs) if port.is_output else (theirs, ours)
                if theirs not in {p.name for p in self.client.get_all_connections(port)}:
                    self.client.connect(source, destination)
                    made += 1
            except jack.JackError as exc:  # the other side is not there (yet): nothing to restore
                log.debug("could not restore %s <-> %s: %s", ours, theirs, exc)
        return made

    def close(self) -> None:
        if self.client is not None and not self.gone.is_set():
            try:
                self.client.deactivate()
                self.client.close()
            except Exception as exc:
                log.debug("closing the JACK watch failed: %s", exc)


def _frames_between(first: int, last: int) -> int:
    """Frames from JACK frame time ``first`` to ``last``: jack_nframes_t is 32 bits and wraps."""
    return (last - first) % 2**32


def _close_quietly(*ports: Any) -> None:
    for port in ports:
        if port is not None:
            try:
                port.close_port()
                port.delete()
            except Exception as exc:  # closing a port of a dead server must not stop a shutdown
                log.debug("closing a port failed: %s", exc)


def jack_server_socket() -> str | None:
    """The inode of the JACK server's listening socket (jack2 on Linux), or None when not found."""
    server = os.environ.get("JACK_DEFAULT_SERVER") or "default"
    path = os.path.join(os.environ.get("JACK_TMPDIR", "/dev/shm"), f"jack_{server}_{os.getuid()}_0")
    try:
        with open("/proc/net/unix") as table:
            for line in table:
                fields = line.split()
                if len(fields) == 8 and fields[7] == path and fields[3] == "00010000":  # __SO_ACCEPTCON: listening
                    return fields[6]
    except OSError:
        return None
    return None
