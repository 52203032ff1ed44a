"""Follow a drummer: incoming hits set the beat; the follower pulses the swarm on it.

The follower is a phase-and-period corrector (a second-order phase-locked loop on a beat grid).
It keeps a grid of beats, ``ref + n·period``, and every counted hit moves it:

- which hits count: note-ons of ``follow.notes`` (kick and snare by default) that pass the input
  filters; hits closer than ``follow.refractory_ms`` merge into one, the loudest kept (a flam, a
  kick and a snare on the same beat, a ghost note right after a stroke are one beat, not two);
- how hard a hit pulls: its weight is ``(velocity / 127) ** follow.velocity_weight`` times an
  on-grid weight ``exp(-½ (offset / follow.grid_window)²)``, offset in beats from the nearest beat
  of the grid.  A fill's sixteenths and a syncopated kick sit a quarter or half a beat off: they
  pull almost nothing, while the fill's on-beat strokes keep the grid where it is;
- what it moves: the grid by ``follow.phase_gain`` × weight × error, the period by
  ``follow.tempo_gain`` × weight × error, at most ``follow.max_bpm_per_beat`` a beat and always
  inside ``follow.bpm_min..bpm_max``.

Between hits the grid runs on at its period: missed hits, and a drummer who stops, leave the tempo
where it was.  After ``follow.relock_beats`` beats without an on-grid hit (the drummer stopped), or
as many off-grid hits in a row (the drummer jumped to another tempo), the follower looks afresh:
three hits with two equal intervals inside the tempo window set the period and the phase at once,
so the grid re-locks on the third hit of the new tempo.

The swarm hears the grid, not the hits: on every beat of the grid (once it has locked) the follower
injects one flash at its exact sub-tick time, with ``input.strength``, and it keeps the swarm's own
tempo at ``follow.pace`` × the followed one, so each pulse fires the fireflies before they would
fire on their own.  All state is scalars and two small preallocated arrays: hearing a hit
and ticking allocate nothing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_ACQUIRE_TOLERANCE = 0.08  # two intervals that differ by less than this share are one tempo
_SOFT = 0.25  # weight below which a hit is too soft to start a new tempo (ghost notes)
_ON_GRID = math.exp(-0.5)  # a hit within one grid_window of a beat is on the grid


class Follower:
    """The drummer's beat grid, updated hit by hit and read tick by tick (owned by the tick thread)."""

    def __init__(self, values: dict[str, Any]):
        self._counts = np.zeros(128, dtype=np.bool_)  # which notes are beats
        self._onsets = np.zeros(3, dtype=np.float64)  # the last hits heard while looking for a tempo
        self.output_latency_s = 0.0  # the daemon's own, live (set_output_latency); none offline
        self.restart(values)

    def restart(self, values: dict[str, Any]) -> None:
        """Take ``values`` and forget the drummer: the grid starts at the tempo the swarm plays."""
        self.update(values)
        self.reset(values["follow.pace"] / values["swarm.freq_hz"])

    def update(self, values: dict[str, Any]) -> None:
        """Take changed ``follow.*`` values between ticks (keeps the grid)."""
        self.enabled = bool(values["follow.enabled"])
        self._counts[:] = False
        for note in values["follow.notes"]:
            self._counts[note] = True
        self.velocity_weight = values["follow.velocity_weight"]
        self.period_min, self.period_max = 60.0 / values["follow.bpm_max"], 60.0 / values["follow.bpm_min"]
        self.max_bpm_per_beat = values["follow.max_bpm_per_beat"]
        self.refractory_s = values["follow.refractory_ms"] / 1000.0
        self.grid_window = values["follow.grid_window"]
        self.phase_gain, self.tempo_gain = values["follow.phase_gain"], values["follow.tempo_gain"]
        self.relock_beats = values["follow.relock_beats"]
        self.pace = values["follow.pace"]
        self._chosen_lead_s = values["follow.lead_ms"] / 1000.0
        self.lead_s = self._chosen_lead_s + self.output_latency_s
        self.strength = values["input.strength"]

    def set_output_latency(self, seconds: float) -> None:
        """Play the band's beats this much earlier besides ``follow.lead_ms``: how long after its
        swarm time a note is heard, live (the daemon says; a replay does it again from the recording)."""
        self.output_latency_s = seconds
        self.lead_s = self._chosen_lead_s + seconds

    def reset(self, period_s: float) -> None:
        """Forget the drummer: unlocked, the grid at ``period_s`` from time 0, nothing pending."""
        self.period = min(max(period_s, self.period_min), self.period_max)
        self.ref = 0.0  # a beat of the grid, in swarm seconds
        self.ref_beat = 0  # its number, counted since the grid began (MIDI clock out counts on it)
        self.locked = False  # following a grid now
        self.ever_locked = False  # pulses start with the first lock and then never stop
        self.last_pulse = -math.inf
        self.last_on_grid = -math.inf
        self.off_grid_run = 0
        self.heard = 0
        self.pending_t, self.pending_velocity = math.nan, 0  # a hit waiting out its refractory window
        self.last_error_s = 0.0  # the last on-grid hit's offset from its beat (+ = the drummer was late)
        self.drummer_bpm = 0.0  # tempo of the last two counted hits a beat apart (what the drummer plays now)
        self._last_hit = -math.inf
        self.relocks = 0
        self._onsets[:] = -1e9

    @property
    def bpm(self) -> float:
        """The followed tempo (the grid's)."""
        return 60.0 / self.period

    @property
    def swarm_hz(self) -> float:
        """The swarm's own frequency that lets each beat pulse fire it."""
        return self.pace / self.period

    # ------------------------------------------------------------------------------------ hearing
    def hear(self, note: int, velocity: int, t: float) -> bool:
        """A note-on at swarm time ``t``; True when it is a beat candidate (its note counts)."""
        if not self._counts[note]:
            return False
        if self.pending_t == self.pending_t:  # a hit is pending (not NaN)
            if t - self.pending_t < self.refractory_s:
                if velocity > self.pending_velocity:
                    self.pending_velocity = velocity  # the loudest stroke of a flam sets the beat
                    self.pending_t = t
                return True
            self._settle()
        self.pending_t, self.pending_velocity = t, velocity
        return True

    def _settle(self) -> None:
        t, velocity = self.pending_t, self.pending_velocity
        self.pending_t = math.nan
        self.heard += 1
        weight = (velocity / 127.0) ** self.velocity_weight
        beats = (t - self._last_hit) / self.period
        if 0.9 < beats < 1.1:
            self.drummer_bpm = 60.0 / (t - self._last_hit)
        self._last_hit = t
        if self.locked and (t - self.last_on_grid > self.relock_beats * self.period or self.off_grid_run >= self.relock_beats):
            self.locked = False
            self._onsets[:] = -1e9  # a new tempo is looked for among the hits from now on
        if self.locked:
            self._correct(t, weight)
        elif weight >= _SOFT:
            self._acquire(t)

    def _correct(self, t: float, weight: float) -> None:
        """Move the grid and its period toward a hit, by its weight."""
        n = math.floor((t - self.ref) / self.period + 0.5)
        beat = self.ref + n * self.period
        error = t - beat
        offset = error / self.period / self.grid_window
        grid_weight = math.exp(-0.5 * offset * offset)
        if grid_weight >= _ON_GRID:
            self.last_on_grid, self.off_grid_run, self.last_error_s = t, 0, error
        else:
            self.off_grid_run += 1
        pull = weight * grid_weight
        self.ref_beat += n
        self.ref = beat + self.phase_gain * pull * error
        step = self.tempo_gain * pull * error
        most = self.period - 60.0 / (60.0 / self.period + self.max_bpm_per_beat)  # a faster beat by max_bpm_per_beat
        self.period = min(max(self.period + min(max(step, -most), most), self.period_min), self.period_max)

    def _acquire(self, t: float) -> None:
        """Three hits with two equal intervals inside the tempo window lock the grid on the last."""
        onsets = self._onsets
        onsets[0], onsets[1], onsets[2] = onsets[1], onsets[2], t
        first, second = onsets[1] - onsets[0], onsets[2] - onsets[1]
        if not (self.period_min <= first <= self.period_max and self.period_min <= second <= self.period_max):
            return
        if abs(first - second) > _ACQUIRE_TOLERANCE * max(first, second):
            return
        if self.ever_locked:  # the beat count goes on from the old grid's nearest beat
            self.ref_beat += math.floor((t - self.ref) / self.period + 0.5)
        self.period = 0.5 * (first + second)
        self.ref = t
        self.locked = self.ever_locked = True
        self.last_on_grid, self.off_grid_run, self.last_error_s = t, 0, 0.0
        self.relocks += 1

    def time_of(self, beat: float) -> float:
        """When the band plays ``beat`` (a beat number, fractions between), in swarm seconds: the
        grid's time, ``follow.lead_ms`` early."""
        return self.ref + (beat - self.ref_beat) * self.period - self.lead_s

    def beat_at(self, t: float) -> float:
        """The beat number the band plays at swarm time ``t`` (fractions between beats)."""
        return self.ref_beat + (t + self.lead_s - self.ref) / self.period

    # ------------------------------------------------------------------------------------ the tick
    def tick(self, t0: float, dt: float, swarm: Any) -> bool:
        """Before the step over [t0, t0 + dt): settle a hit past its refractory window, then inject
        the grid's beat if one falls in this step.  True when the swarm's own tempo should follow."""
        settled = False
        if self.pending_t == self.pending_t and t0 - self.pending_t >= self.refractory_s:
            self._settle()
            settled = True
        if not self.ever_locked:
            return False
        after = max(self.last_pulse + 0.5 * self.period, t0 + self.lead_s)
        beat = self.ref + math.ceil((after - self.ref) / self.period) * self.period
        if beat - self.lead_s < t0 + dt:  # played lead_s early: the output's latency, live
            swarm.inject((beat - self.lead_s - t0) / dt, self.strength)
            self.last_pulse = beat
        return settled


class NoteLearner:
    """Learn which notes count from the drummer: the next ``count`` distinct notes heard, or those heard
    within ``seconds`` of the first, become ``follow.notes`` (armed by the ``learnbeats`` command)."""

    def __init__(self) -> None:
        self.count = 0  # notes still wanted in all; 0: not learning
        self.seconds = 0.0
        self._notes = np.zeros(128, dtype=np.bool_)
        self._heard = 0
        self._since = math.inf  # when the first note was heard

    def arm(self, count: int, seconds: float) -> None:
        self.count, self.seconds, self._heard, self._since = count, seconds, 0, math.inf
        self._notes[:] = False

    def hear(self, note: int, t: float) -> tuple[int, ...] | None:
        """A note-on at swarm time ``t``; the notes learnt once it is the ``count``-th distinct one."""
        if not self._notes[note]:
            self._notes[note] = True
            self._heard += 1
            self._since = min(self._since, t)
        return self._learnt() if self._heard >= self.count else None

    def due(self, t: float) -> tuple[int, ...] | None:
        """The notes heard so far, once ``seconds`` have passed since the first."""
        return self._learnt() if self._heard and t - self._since >= self.seconds else None

    def _learnt(self) -> tuple[int, ...]:
        self.count = 0
        return tuple(int(n) for n in np.flatnonzero(self._notes))
