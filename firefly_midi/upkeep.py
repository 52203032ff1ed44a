"""The daemon's main thread looks after its ports: loss and return of the MIDI server, a stalled JACK
server, a deaf JACK input, a synth that (re)connects, and the connections worth keeping.

Nothing here runs on the tick: what must reach the music (silence, All Notes Off) is submitted to the
tick thread as a command, and the tick only ever calls ``ports.send`` and ``ports.poll``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from firefly_midi.saved_state import SavedState

log = logging.getLogger("firefly_midi.daemon")

REOPEN_EVERY_S = 1.0  # how often lost (or never opened) ports are tried again
INPUT_REOPEN_EVERY_S = 5.0  # at most this often, a deaf JACK input is opened again
CONNECTIONS_EVERY_S = 1.0  # how often the ports' connections are looked at (and kept when changed)


class PortUpkeep:
    """Called every few tens of ms by the daemon's main thread (``look``)."""

    def __init__(self, ports: Any, saved: SavedState, submit: Callable[[Callable[[], None]], None], greet: Callable[[], None]):
        self.ports = ports
        self.saved = saved
        self._submit = submit
        self._greet = greet  # restore connections, then All Notes Off on the tick
        self._silence: Callable[[], None] = lambda: None
        self._all_notes_off: Callable[[], None] = lambda: None
        self._next_reopen = 0.0
        self._next_input_reopen = 0.0
        self._next_look = 0.0

    def on_tick(self, silence: Callable[[], None], all_notes_off: Callable[[], None]) -> None:
        """What to run on the tick when the server goes away, and when a synth joins."""
        self._silence, self._all_notes_off = silence, all_notes_off

    def look(self) -> None:
        now = time.monotonic()
        self._server(now)
        self._stall()
        self._deaf_input(now)
        ports = self.ports
        if ports.listener_joined():  # a synth (re)connected: it may hold notes from before a disconnection
            log.info("a port was connected to our output: All Notes Off on the preset's channels")
            self._submit(self._all_notes_off)
        if ports.state == "open" and now >= self._next_look:
            self._next_look = now + CONNECTIONS_EVERY_S
            current = ports.connections()
            if current is not None:
                self.saved.keep_connections(current)

    def _server(self, now: float) -> None:
        """Notice a MIDI server that went away; reopen the ports once it is back (every second)."""
        ports = self.ports
        if ports.lost:
            ports.mark_lost()
            self._submit(self._silence)  # forget the pending notes: their synth went with the server
            log.warning("the MIDI server went away; the swarm keeps playing and the ports reopen when it is back")
        if ports.state in ("lost", "none") and now >= self._next_reopen:
            self._next_reopen = now + REOPEN_EVERY_S
            # lost: reopen; none: the daemon started before the JACK server
            if ports.reopen() if ports.state == "lost" else ports.open_late():
                self._greet()  # the synth may hold notes from before the loss: silence it first

    def _stall(self) -> None:
        ports = self.ports
        was_stalled = ports.stalled
        if ports.server_stalled() == was_stalled:
            return
        if ports.stalled:
            pace = 100 * (ports.server_pace or 0.0)
            log.warning("the JACK server runs %.0f%% of its cycles (a client of it hangs?): little or no MIDI moves", pace)
        else:
            log.info("the JACK server runs its cycles again")

    def _deaf_input(self, now: float) -> None:
        ports = self.ports
        if ports.input_is_deaf() and now >= self._next_input_reopen:
            self._next_input_reopen = now + INPUT_REOPEN_EVERY_S
            log.warning("the JACK input hears nothing, not even its guard's 0xF7s (or no input is open): opening again")
            if ports.reopen_input():
                log.info("the JACK input hears again: %s", ", ".join(ports.names()))
