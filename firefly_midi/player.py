"""One tick pipeline: incoming messages → learn / clock-in / automation → catch-up → swarm step → mapping.

``Player`` turns a tick number and the MIDI messages heard since the last one into timed MIDI events
(``player.events``).  It knows nothing of ports, sockets, threads or wall clocks, so the daemon,
``render`` and ``simulate`` drive the very same object: what renders offline is what plays live.

Anything that allocates (a new swarm, a new mapper) is built by ``build_parts`` off the tick thread
and handed over with ``swap`` at a tick boundary.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from typing import Any, NamedTuple, Protocol

from firefly_midi import automation, midi
from firefly_midi import params as P
from firefly_midi.events import EventBuffer
from firefly_midi.follow import Follower, NoteLearner
from firefly_midi.inputs import ClockIn, InputMap
from firefly_midi.mapping import Mapper
from firefly_midi.swarm import Swarm
from firefly_midi.swarm.metrics import Recorder

log = logging.getLogger("firefly_midi.player")

R_EVERY_TICKS = 10  # the order parameter is O(N): refreshed every 10 ticks, live and offline alike
AUTOMATION_EVERY_S = 0.01
MAX_CATCH_UP = 8  # skipped ticks the swarm steps through at most, per tick
# A tick that owes at most this many steps plays their notes too: late by that many ticks at most, and
# on time where the native JACK backend's lookahead covers them.  A longer stall's steps are silent.
AUDIBLE_CATCH_UP = MAX_CATCH_UP
MAX_BEHIND_S = 1.0  # the swarm repays at most this much skipped time; beyond it, ticks are lost
RETUNE_SHARE = 0.02  # following: the swarm's own tempo is retuned when off by more than this share
HIT_PAST_S = 0.3  # following: a hit may be dated this far before its tick (a lagging JACK frame mapping)
_CLOCK_STATUSES = (midi.TIMING_CLOCK, midi.SONG_START, midi.SONG_STOP)


class InputSource(Protocol):
    """Where a tick's incoming messages come from: ``poll()`` gives (bytes, tick fraction) or None."""

    def poll(self) -> tuple[list[int], float] | None: ...


class NoInput:
    """An input that never has anything to say."""

    def poll(self) -> None:
        return None


NO_INPUT = NoInput()


class Parts(NamedTuple):
    """What a parameter set plays with: built off the tick thread, swapped in at a tick boundary."""

    values: dict[str, Any]
    swarm: Swarm
    mapper: Mapper
    inputs: InputMap
    follower: Follower


def build_parts(values: dict[str, Any], threads: int = 1, engine: str = "compiled") -> Parts:
    """A swarm, its mapper and its input map for ``values`` (allocates and loads kernels: not on the tick)."""
    swarm = Swarm(values, threads=threads, engine=engine)
    mapper = Mapper(swarm.values, swarm)
    follower = Follower(swarm.values)
    mapper.clock.lead = follower  # MIDI clock out counts on the drummer's grid while following
    return Parts(swarm.values, swarm, mapper, InputMap(swarm.values, mapper), follower)


class Player:
    """The swarm, its mapping and what moves them, advanced one tick at a time.

    One thread owns a Player (the daemon's tick thread, or the caller offline).  ``learned`` is the
    way out for bindings MIDI learn makes: whoever keeps the saved state drains it.
    """

    def __init__(self, values: dict[str, Any] | None = None, parts: Parts | None = None, threads: int = 1, engine: str = "compiled"):
        self.parts = parts or build_parts(values or {}, threads, engine)
        self.counts = self.parts.inputs.counts
        self.clock_in = ClockIn()
        self.r = 0.0
        self.paused = False
        self.stepped = False  # whether the last tick stepped the swarm (not paused)
        self.next_k = 0  # the tick number expected next: a larger one means ticks were skipped
        self.caught_up_ticks = 0  # skipped ticks the swarm stepped later (caught up)
        self.lost_ticks = 0  # skipped ticks it could not catch up (the music fell behind by these)
        self.behind_ticks = 0  # skipped ticks not yet stepped: repaid MAX_CATCH_UP a tick
        self.caught_up_now = 0  # steps this tick caught up: ``events`` begins with theirs
        self.learned: deque[tuple[automation.Binding, ...]] = deque()
        self._learning: tuple[str, float, float] | None = None
        self.note_learner = NoteLearner()
        self.learned_values: deque[tuple[str, Any]] = deque()  # values learnt on the tick, for the saved state
        self._knobs: dict[str, float | int] = {}
        self.output_latency_s = 0.0  # live: the daemon's own latency, which the follower plays ahead of
        self._cadence()

    # ---------------------------------------------------------------------------- what it plays
    @property
    def values(self) -> dict[str, Any]:
        return self.parts.values

    @property
    def swarm(self) -> Swarm:
        return self.parts.swarm

    @property
    def mapper(self) -> Mapper:
        return self.parts.mapper

    @property
    def engine(self) -> str:
        """What steps the swarm: "compiled" (the numba kernels) or "numpy" (while they compile)."""
        return self.swarm.engine

    def use_engine(self, engine: str) -> None:
        """Hand the swarm and the mapper over to ``engine`` at this tick boundary; they go on from
        where they are (the compiled kernels must be loaded already: ``lifecycle.warm_up``)."""
        self.swarm.use_engine(engine)
        self.mapper.use_engine(engine)

    @property
    def follower(self) -> Follower:
        return self.parts.follower

    @property
    def events(self) -> EventBuffer:
        """The events of the last ``tick`` or ``silence`` (overwritten by the next)."""
        return self.parts.mapper.events

    def _cadence(self) -> None:
        self._automation_every = max(1, round(AUTOMATION_EVERY_S / self.swarm.dt))

    # ---------------------------------------------------------------------------------- the tick
    def tick(self, k: int, source: InputSource = NO_INPUT) -> int:
        """Play tick ``k``: returns how many events ``events`` holds, due within this tick."""
        missed, self.next_k = k - self.next_k, k + 1
        self.stepped = not self.paused
        if self.paused:
            while source.poll() is not None:
                self.counts.ignored += 1
            return 0
        self.caught_up_now = 0
        if missed > 0 or self.behind_ticks:
            self._catch_up(missed)
        self._hear(source)
        if self.note_learner.count:
            self._learnt_notes(self.note_learner.due(self.swarm.time_s))
        swarm = self.swarm
        step = swarm.ticks
        if self.follower.enabled:
            self._lead(step)
        if self.values["automation"] and step % self._automation_every == 0:
            self._automate()
        swarm.step()
        if step % R_EVERY_TICKS == 0:
            self.r = swarm.order_parameter()
        ids, times = swarm.flashes()
        return self.mapper.tick(step, ids, times, self.r, keep=self.caught_up_now > 0)

    def run(self, ticks: int, recorder: Recorder | None = None) -> None:
        """Advance ``ticks`` ticks offline as fast as the kernels go: no input, no notes, automation kept."""
        swarm, end = self.swarm, self.swarm.ticks + ticks
        if not self.values["automation"]:
            swarm.run(ticks, recorder)
            return
        while swarm.ticks < end:
            self._automate()
            stretch = self._automation_every - swarm.ticks % self._automation_every
            swarm.run(min(stretch, end - swarm.ticks), recorder)

    def silence(self) -> int:
        """Every pending note-off now, All Notes Off on the channels used, clock stop (in ``events``)."""
        return self.mapper.panic(self.swarm.ticks)

    def all_notes_off(self) -> int:
        """``silence`` plus All Notes Off on every channel the preset may play on, used or not yet."""
        self.silence()
        events, t = self.events, self.swarm.time_s
        for channel in sorted({*self.values["mapping.channels"], self.values["mapping.cc_channel"]}):
            events.push(t, midi.CONTROL_CHANGE | (channel - 1), midi.ALL_NOTES_OFF, 0)
        return events.count

    def _catch_up(self, missed: int) -> None:
        """Step through ticks the clock skipped, so the swarm keeps the wall clock's time.

        Every step caught up goes through the mapper, ahead of this tick's events: the tempo counts
        its flashes and MIDI clock out keeps its pulses (a DAW counts them: a 20 ms stall that
        dropped two pulses and a flash left a slaved DAW two clocks behind for good and the tempo
        0.5 % off for seconds).  A short skip (AUDIBLE_CATCH_UP steps at most: a handover, a page fault) plays its
        notes too; a longer stall's steps start none (a burst of late notes is worse than none).  It
        is repaid MAX_CATCH_UP steps a tick, so one tick never makes the next late; beyond
        MAX_BEHIND_S an overloaded machine would never catch up: the excess is lost, and counted.
        """
        most = round(MAX_BEHIND_S / self.swarm.dt)
        owed = self.behind_ticks + missed
        if owed > most:
            self.lost_ticks += owed - most
            owed = most
        steps = min(owed, MAX_CATCH_UP)
        quiet = owed > AUDIBLE_CATCH_UP
        swarm, mapper = self.swarm, self.mapper
        mapper.events.clear()
        for _ in range(steps):
            step = swarm.ticks
            swarm.step()
            ids, times = swarm.flashes()
            mapper.tick(step, ids, times, self.r, keep=True, quiet=quiet)
        self.caught_up_now = steps
        self.caught_up_ticks += steps
        self.behind_ticks = owed - steps

    # ---------------------------------------------------------------------------------- input
    def _hear(self, source: InputSource) -> None:
        limit, handled = self.values["input.max_per_tick"], 0
        while (item := source.poll()) is not None:
            if handled >= limit:
                self.counts.dropped += 1  # bounded: the rest of this tick's flood is counted, not kept
                continue
            handled += 1
            self.hear(item[0], item[1])
        if self._knobs:
            self._turn_knobs()

    def hear(self, message: list[int], frac: float) -> None:
        """One incoming message, ``frac`` of a tick into the coming step: a flash, a clock, a knob, or nothing."""
        counts, status = self.counts, message[0] if message else -1
        edge = frac if 0.0 <= frac <= 1.0 else (1.0 if frac > 1.0 else 0.0)  # the swarm's step holds no past
        if status in _CLOCK_STATUSES:
            self._clock(status, edge)
            counts.other += 1
        elif status & 0xF0 == midi.CONTROL_CHANGE and len(message) == 3 and self._control_change(status & 0x0F, message[1], message[2]):
            counts.other += 1
        elif self.follower.enabled:
            self._hit(message, frac)
        else:
            self.parts.inputs.apply(message, edge, self.swarm)  # counts into the same InputCounts
        if self.note_learner.count and (note_on := self.parts.inputs.note_on(message)) is not None:
            self._learnt_notes(self.note_learner.hear(note_on[0], self.swarm.time_s))

    def _learnt_notes(self, notes: tuple[int, ...] | None) -> None:
        """Note learning ended: its notes are the beats from now on, and kept like a ``set``."""
        if notes is not None:
            self.apply_if_valid("follow.notes", notes)
            self.learned_values.append(("follow.notes", notes))
            log.info("learnt the notes that are beats: %s", ", ".join(map(str, notes)))

    def _hit(self, message: list[int], frac: float) -> None:
        """Following: a note-on that counts is a hit on swarm time (replays exactly offline)."""
        note_on = self.parts.inputs.note_on(message)
        # A JACK hit is dated through the frame mapping the clocks go out by, which may lag behind the
        # arrival (jack/clock.py slews it): the follower hears it then, up to HIT_PAST_S before the tick.
        low = -HIT_PAST_S / self.swarm.dt
        frac = frac if low <= frac <= 1.0 else (1.0 if frac > 1.0 else low if frac < low else 0.0)  # NaN: the edge
        if note_on is not None and self.follower.hear(note_on[0], note_on[1], (self.swarm.ticks + frac) * self.swarm.dt):
            self.counts.flashes += 1
        else:
            self.counts.ignored += 1

    def _lead(self, step: int) -> None:
        """The follower's beat pulse for this step; the swarm's own tempo follows the grid's."""
        swarm = self.swarm
        if self.follower.tick(step * swarm.dt, swarm.dt, swarm) and self.follower.locked:
            hz = self.follower.swarm_hz
            # The pulses keep the beat; the swarm's own tempo only has to stay below them, so it is
            # retuned (a new values dict: rare, not every beat) when it is off by more than 2 %.
            if abs(hz - self.values["swarm.freq_hz"]) > RETUNE_SHARE * hz:
                self.apply_if_valid("swarm.freq_hz", hz)

    def _clock(self, status: int, frac: float) -> None:
        if not self.values["input.clock_in"]:
            return
        if status != midi.TIMING_CLOCK:
            self.clock_in.reset()
            return
        self.clock_in.feed((self.swarm.ticks + frac) * self.swarm.dt)  # swarm time: replays exactly offline
        hz = self.clock_in.tempo_hz()
        if hz is not None and abs(hz - self.values["swarm.freq_hz"]) > 1e-3 * hz:
            self.apply_if_valid("swarm.freq_hz", hz)

    # ------------------------------------------------------------------------------ MIDI learn
    def arm_note_learn(self, count: int, seconds: float) -> None:
        """The next ``count`` distinct notes heard (or those within ``seconds`` of the first) become follow.notes."""
        self.note_learner.arm(count, seconds)

    def arm_learn(self, key: str, lo: float, hi: float) -> None:
        """Bind the next incoming control change to ``key`` (already checked by the caller)."""
        self._learning = (key, lo, hi)

    def _control_change(self, channel: int, cc: int, value: int) -> bool:
        """MIDI learn: bind a waiting key to this controller, or move the keys bound to it."""
        if not (0 <= cc <= 127 and 0 <= value <= 127):
            return False
        if self._learning is not None:
            key, lo, hi = self._learning
            self._learning = None
            binding = automation.Binding(cc, key, lo, hi, channel + 1)
            others = [b for b in self.values["learn"] if not (b.cc == cc and b.channel in (0, channel + 1))]
            bindings = (*others, binding)
            self.apply("learn", bindings)
            self.learned.append(bindings)
            log.info("MIDI learn: CC %d on channel %d now moves %s", cc, channel + 1, key)
            return True
        bound = False
        for binding in self.values["learn"]:
            if binding.matches(channel + 1, cc):
                self._knobs[binding.key] = binding.value(value)  # applied once per tick, the latest wins
                bound = True
        return bound

    def _turn_knobs(self) -> None:
        for key, value in self._knobs.items():
            if value != self.values[key]:
                self.apply_if_valid(key, value)
        self._knobs.clear()

    # ------------------------------------------------------------------------------ automation
    def _automate(self) -> None:
        t = self.swarm.time_s  # ramps follow the swarm's own time: a reset or a preset starts them over
        for ramp in self.values["automation"]:
            value = ramp.value_at(t)
            if value is None:
                continue
            if P.PARAMS[ramp.key].kind == "int":
                value = round(value)
            if not math.isclose(value, self.values[ramp.key], rel_tol=1e-4):
                self.apply_if_valid(ramp.key, value)

    # ------------------------------------------------------------------------------ changes
    def apply_if_valid(self, key: str, value: Any) -> None:
        """Apply a change that came from inside the pipeline (automation, a knob, clock-in); log a bad one."""
        try:
            value = P.check(key, value)
            P.check_consistency(dict(self.values, **{key: value}))
            self.swarm.check_engine(dict(self.values, **{key: value}))
        except P.ParamError as exc:
            log.warning("ignored %s = %r: %s", key, value, exc)
            return
        self.apply(key, value)

    def apply(self, key: str, value: Any) -> None:
        """Apply a checked ``key = value`` now.  A reshaping key redraws the swarm here: the daemon
        builds those off the tick thread instead (``reshaped``) and swaps them in."""
        values = self.parts.values
        values[key] = value
        if key.startswith("swarm.") or key == "clock.tick_ms":
            self.swarm.set(key, value)
        self._follow(key)

    def _follow(self, key: str) -> None:
        """The mapping follows a change; notes sounding keep their note-offs (nothing is cut, and a
        knob on velocity must not stop and restart the DAW's MIDI clock every time it moves)."""
        if key.startswith(("mapping.", "input.")) or P.PARAMS[key].effect != "live":
            self.mapper.update(self.values)
            self.parts.inputs.update(self.values)
        if key.startswith("follow.") or key == "input.strength":
            self.follower.update(self.values)
        if key == "clock.tick_ms":
            self._cadence()

    def reshaped(self, key: str, value: Any) -> Swarm:
        """A new swarm for a reshaping change, to build off the tick thread and hand to ``adopt``."""
        return Swarm({**self.values, key: value}, threads=self.swarm.threads, engine=self.engine)

    def adopt(self, key: str, value: Any, swarm: Swarm) -> None:
        """Take a swarm built by ``reshaped`` (at a tick boundary); the mapper keeps its sounding notes."""
        self.parts.values[key] = value
        swarm.use_engine(self.engine)  # built before a handover, maybe
        self.parts = self.parts._replace(swarm=swarm)
        self.mapper.swarm = swarm
        self._follow(key)

    def swap(self, parts: Parts) -> None:
        """Play ``parts`` from now on (a preset switch): call ``silence`` first, with the old mapper.
        They play on the engine playing now (they may have been built before a handover)."""
        engine, self.parts = self.engine, parts
        self.use_engine(engine)
        parts.follower.set_output_latency(self.output_latency_s)
        parts.inputs.counts = self.counts
        self._knobs.clear()
        self._cadence()

    def set_output_latency(self, seconds: float) -> None:
        """How long after its swarm time a note is heard (live); the follower plays that much early."""
        self.output_latency_s = seconds
        self.follower.set_output_latency(seconds)

    def reset(self) -> None:
        """Draw the swarm afresh from its parameters (same seed: the same start)."""
        self.swarm.reset()
        self.mapper.update(self.values)
        self.mapper.tempo.reset()
        self.follower.restart(self.values)

    def forward(self, ticks: int) -> None:
        """Run ahead ``ticks`` ticks silently, as fast as the kernels go."""
        self.swarm.run(ticks)
        self.mapper.tempo.reset()
