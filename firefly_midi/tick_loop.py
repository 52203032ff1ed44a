"""The daemon's tick: what the tick thread does each step, and the input as the player reads it.

``TickLoop`` owns what only the tick thread touches between steps: the queue of commands other
threads submit, the flash ring it writes for the UI, the native JACK client's reflex, and the due
time of the last event sent.  Each tick runs the queued commands, steps the player, sends its events
and arms the reflex; an error inside silences every note and the swarm plays on.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from firefly_midi.player import HIT_PAST_S, Player
from firefly_midi.reflex import Reflex
from firefly_midi.telemetry import FlashRing

if TYPE_CHECKING:
    from firefly_midi.clock import Clock
    from firefly_midi.replay import Recorder

log = logging.getLogger("firefly_midi.daemon")

GUARD_EVERY_S = 0.01  # how often the JACK input's silence is looked at (Ports.end_stray_sysex)
MAX_ERRORS_IN_A_ROW = 100


class TickFailing(RuntimeError):
    """The tick failed MAX_ERRORS_IN_A_ROW times in a row: the clock stops, the daemon leaves (code 1)."""


class PortInput:
    """The ports' input as the player reads it: each message with where in the last tick it arrived.

    Messages polled now arrived during the tick that just ended.  Playing each into the coming step
    at the same offset keeps their spacing and delays every input by exactly one tick, instead of
    jittering by up to a tick.  A backend dates a message by the seconds since the one before
    (rtmidi: chained from the first, anchored on the poll), by its arrival on time.monotonic(), or
    on the clock's own transport time (the native JACK client, from the event's frame, once the
    transport follows its frames): ``ports.arrival`` says which.
    """

    def __init__(self, ports: Any, tick_s: float):
        self.ports, self.tick_s = ports, tick_s
        self.tick_at = 0.0  # the transport time of the tick polling now (TickLoop sets it)
        self._last_arrival = 0.0

    def poll(self) -> tuple[list[int], float] | None:
        item = self.ports.poll()
        if item is None:
            return None
        tick, now = self.tick_s, time.monotonic()
        low = 0.0
        kind = getattr(self.ports, "arrival", "delta")
        if kind == "transport":  # the event's frame on the clock's own time: exact, no mapping between
            arrival, now = item[1], self.tick_at
            low = -HIT_PAST_S / tick
        elif kind == "monotonic":
            arrival = item[1]  # the event's frame through the mapping its answer goes out by: kept,
            low = -HIT_PAST_S / tick  # even when the mapping lags the arrival (the player bounds it)
        else:
            arrival = self._last_arrival + item[1]  # rtmidi's delta time since the message before
            if not now - tick <= arrival <= now:
                arrival = now  # first message, or a clock mismatch: anchor on the poll time
            self._last_arrival = arrival
        return item[0], min(max((arrival - (now - tick)) / tick, low), 1.0)


class TickLoop:
    """One step of the daemon per tick of ``clock``: ``tick(k)`` is the clock's callback."""

    def __init__(self, player: Player, ports: Any, clock: Clock):
        self.player, self.clock = player, clock
        self.input = PortInput(ports, clock.tick_s)
        self.flash_ring = FlashRing()
        self.reflex = Reflex()  # the native JACK client's same-cycle answers (firefly_midi/reflex.py)
        self.recorder: Recorder | None = None  # daemon --record: the session's input and commands
        self.errors = 0
        self.longest_commands_s = 0.0  # the longest a tick spent on queued commands: swaps must stay cheap
        self._commands: deque[Callable[[], None]] = deque()
        self._last_due = 0.0  # the latest due time sent (send)
        self._guard_every = max(1, round(GUARD_EVERY_S / clock.tick_s))
        self._errors_in_a_row = 0

    @property
    def ports(self) -> Any:
        return self.input.ports

    def submit(self, command: Callable[[], None]) -> None:
        """Run ``command`` on the tick thread, between two steps (thread-safe: deque.append)."""
        self._commands.append(command)

    def did(self, what: str, *args: Any) -> None:
        """A command reached the player (on the tick thread): the recording keeps it."""
        if self.recorder is not None:
            self.recorder.log.did(what, *args)

    def tick(self, k: int) -> None:
        recorder = self.recorder
        if recorder is not None:
            recorder.log.start_tick(k)
        try:
            self.reflex.take_back(self.player)  # first: nothing below may change what it was armed for
            self._run_commands()
            if k % self._guard_every == 0:
                self.ports.end_stray_sysex(k * self.clock.tick_s)
            player = self.player
            self.input.tick_at = self.clock.started_at + k * self.clock.tick_s
            count = player.tick(k, self.input if recorder is None else recorder.input)
            if player.stepped:
                swarm = player.swarm
                ids, times = swarm.flashes()
                self.flash_ring.push(ids, times, swarm.ticks - 1, swarm.dt)
            self.send(count, self.clock.started_at + k * self.clock.tick_s)
            if recorder is None:  # a recording replays the input's own path (the notes are the same)
                self.reflex.arm(self.ports, player)
            self._errors_in_a_row = 0
        except Exception:
            self._on_error()
        finally:
            if recorder is not None:
                recorder.log.end_tick()

    def _run_commands(self) -> None:
        commands = self._commands
        if commands:
            began = time.perf_counter()
            while commands:
                commands.popleft()()
            self.longest_commands_s = max(self.longest_commands_s, time.perf_counter() - began)

    def _on_error(self) -> None:
        self.errors += 1
        self._errors_in_a_row += 1
        log.error("error inside the tick (notes silenced, still playing):\n%s", traceback.format_exc())
        try:
            self.silence()
        except Exception:
            log.exception("could not silence the notes")
        if self._errors_in_a_row >= MAX_ERRORS_IN_A_ROW:
            raise TickFailing(f"the tick failed {MAX_ERRORS_IN_A_ROW} times in a row; stopping")

    def send(self, count: int, deadline: float | None = None) -> None:
        """Send the player's first ``count`` events, each due at ``deadline`` (the tick's, on
        time.monotonic(); None: now) plus its offset within the tick, plus ``clock.lookahead_ms``.

        A scheduling backend (native JACK) writes each at its exact frame; rtmidi sends at once.
        Due times never go back (``_last_due``): events leave in the order sent, as through rtmidi,
        so a silence sent mid-tick stays before the tick's notes, and a shorter lookahead reorders nothing.
        """
        events, send, player = self.player.events, self.ports.send, self.player
        lookahead = player.values["clock.lookahead_ms"] / 1000.0
        if deadline is None:
            due, dt, start = time.monotonic() + lookahead, 0.0, 0.0
        else:
            due, dt = deadline + lookahead, player.swarm.dt
            start = (player.swarm.ticks - 1) * dt  # the step just played: its events lie in [start, start + dt]
        earliest = -player.caught_up_now * dt  # the steps it caught up lie before it (their notes are late, or due yet)
        times, last = events.time_s, self._last_due
        for i in range(count):
            last = max(last, due + min(max(float(times[i]) - start, earliest), dt))
            send(events.message(i), last)
        self._last_due = last

    def silence(self) -> None:
        """Every pending note-off, then All Notes Off on every channel used.

        The reflex is taken back first: armed, the callback could still play a note for an input
        that arrives after this (a daemon stopping, its ports draining), and nothing would end it;
        what it did play is registered, so its note-off is among these."""
        self.reflex.take_back(self.player)
        self.send(self.player.silence())
        self.did("silence")

    def all_notes_off(self) -> None:
        """Forget pending notes and send All Notes Off on every channel the preset may play on."""
        self.reflex.take_back(self.player)
        self.send(self.player.all_notes_off())
        self.did("all_notes_off")
