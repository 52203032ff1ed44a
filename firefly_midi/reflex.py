"""The tick's side of the reflex (issue 16): what an input note-on would play at once, armed on the
native JACK client, and what the callback played, registered with the mapper.

After each tick ``Reflex.arm`` works out, from the phases the next step starts from, which voices an
incoming note-on would push over threshold straight away (the external flash's own flashes, not the
cascade they set off) and at what lowest velocity, keeps those whose note would start a burst (past
the hold-off, not sounding, not the very first burst), and arms them on the client
(firefly_midi/jack/reflex.py).  The callback plays them in the input's own cycle.  Before the next
tick polls its input ``Reflex.take_back`` disarms; when the callback had claimed the table, the notes
it played are registered with the mapper (``Mapper.reflexed``: hold-off, the note-off, the caps) so
the step that then sees the input plays nothing twice.  The swarm itself still hears the input
through the ordinary path, so its state is the same with or without the reflex.

Armed only where the prediction is the step's: pulse-type models whose input flashes at once
(pulse, Mirollo-Strogatz in sync mode), voices or density mapping, input on, not following, not
paused; anything else leaves the reflex disarmed and notes take the ordinary path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from firefly_midi.jack import layout
from firefly_midi.jack import reflex as native
from firefly_midi.swarm.kernels.prc import receive

CAPACITY = layout.REFLEX_CAPACITY
_MODELS = ("pulse", "mirollo_strogatz")


@njit(nogil=True, cache=True)
def fires_at(model, prc, phi, omega, strength, in_degree, velocity, scaled, coupling):
    """Whether an input of ``velocity`` pushes a firefly at ``phi`` to threshold (Swarm._apply_external's sums)."""
    s = strength * (velocity / 127.0) if scaled else strength
    m = max(s, 0.0) * in_degree
    w, eps, kappa, ms_b, f0, fmin, fmax = coupling
    return receive(model, prc, False, phi, omega, m, w, eps, kappa, ms_b, f0, fmin, fmax)[0] >= 1.0


@njit(nogil=True, cache=True)
def plan(phase, freq, voice_of, eligible, lowest, model, prc, strength, in_degree, scaled, coupling, out_voice, limit):
    """Lowest input velocity (1..127, 128: none) that flashes a firefly of each eligible voice, and
    the first ``limit`` such voices in ``out_voice``; returns how many.  Velocity thresholds by
    bisection: a stronger input flashes a superset (the kicks grow with strength past phase 0.5)."""
    lowest[:] = 128
    for i in range(phase.size):
        v = voice_of[i]
        phi = phase[i]
        if eligible[v] == 0 or phi != phi or not fires_at(model, prc, phi, freq[i], strength, in_degree, 127, scaled, coupling):
            continue
        lo, hi = 1, 127
        if scaled:
            while lo < hi:
                mid = (lo + hi) // 2
                if fires_at(model, prc, phi, freq[i], strength, in_degree, mid, scaled, coupling):
                    hi = mid
                else:
                    lo = mid + 1
        lowest[v] = min(lowest[v], lo)
    count = 0
    for v in range(lowest.size):
        if lowest[v] <= 127 and count < limit:
            out_voice[count] = v
            count += 1
    return count


@njit(nogil=True, cache=True)
def mark_eligible(eligible, hold_until, burst, off_time, on_time, channel, note, t_next, settled):
    """Voices whose next flash would start a burst with a known velocity, on a note whose last
    note-off has left: the mapper frees a slot as it queues the off, which leaves a lookahead later,
    so the last note must have begun ``settled`` (its length + lookahead + two ticks) before."""
    for v in range(eligible.size):
        slot = channel[v] * 128 + note[v]
        free = off_time[slot] == np.inf and on_time[slot] <= t_next - settled
        eligible[v] = 1 if hold_until[v] <= t_next and burst[v] > 0 and free else 0


class Reflex:
    """Arms the native client's reflex after each tick and registers what it played (tick thread)."""

    def __init__(self) -> None:
        self.gen = 0
        self.busy = 0  # the last generation the callback claimed
        self.state: np.ndarray | None = None  # the client state armed, or None
        self.played = 0  # notes the callback played and the mapper registered
        self.warm = False  # the kernels are loaded (warm_up): until then nothing is armed
        self.messages, self.velocities = np.zeros(CAPACITY, np.int64), np.zeros(CAPACITY, np.int64)
        self.lows, self.highs = np.zeros(CAPACITY, np.int64), np.zeros(CAPACITY, np.int64)
        self.voices, self.notes_velocity = np.zeros(CAPACITY, np.int64), np.zeros(CAPACITY, np.int64)
        self._eligible, self._lowest = np.zeros(1, np.uint8), np.zeros(1, np.int64)
        self._layout: Any = None
        self._note_range = np.zeros((128, 2), np.int64)

    def warm_up(self) -> None:
        """Compile (or load) the kernels now: never on the tick."""
        native.warm_up()
        self.warm = True
        one = np.zeros(1)
        plan(one, one, np.zeros(1, np.int64), np.zeros(1, np.uint8), np.zeros(1, np.int64), 0, 0, 1.0, 1.0, True,
             (1.0,) * 7, np.zeros(1, np.int64), 0)  # fmt: skip
        mark_eligible(np.zeros(1, np.uint8), one, np.zeros(1, np.int64), np.full(128, np.inf), np.zeros(128),
                      np.zeros(1, np.int64), np.zeros(1, np.int64), 0.0, 0.0)  # fmt: skip

    # ------------------------------------------------------------------------- before the tick
    def take_back(self, player: Any) -> int:
        """Disarm; register the notes the callback played (returns how many)."""
        state, self.state = self.state, None
        if state is None:
            return 0
        mask = native.take_back(state)
        if mask == native.NOT_CLAIMED:
            return 0
        self.busy = self.gen
        values, swarm = player.values, player.swarm
        shorten = values["clock.lookahead_ms"] / 1000.0 + swarm.dt  # it left this much before the tick's notes would
        t, played = swarm.ticks * swarm.dt, 0
        for index in range(CAPACITY):
            if (mask >> index) & 1:
                player.mapper.reflexed(int(self.voices[index]), t, int(self.notes_velocity[index]), shorten)
                played += 1
        self.played += played
        return played

    # -------------------------------------------------------------------------- after the tick
    def arm(self, ports: Any, player: Any) -> bool:
        """Arm the reflex for the next step where it holds; False when it is left disarmed."""
        values = player.values
        if not self.warm or not values["input.reflex"] or not self._holds(player):
            return False
        reflex_state = getattr(ports, "reflex_state", None)
        state = reflex_state() if reflex_state is not None else None
        if state is None:
            return False
        count = self._plan(player)
        if count == 0:
            return False
        inputs = player.parts.inputs
        channels = sum(1 << c for c in range(16) if inputs._channel_ok[c])
        self.gen += 1
        if not native.arm(state, self.gen, self.busy, channels, values["input.reflex_frames"], self.messages,
                          self.velocities, self.lows, self.highs, count):  # fmt: skip
            return False
        self.state = state
        return True

    def _holds(self, player: Any) -> bool:
        v = player.values
        return (
            not player.paused
            and not player.follower.enabled
            and player.parts.inputs.enabled
            and v["swarm.model"] in _MODELS
            and v["swarm.mode"] == "sync"
            and v["mapping.mode"] != "per_firefly"
        )

    def _plan(self, player: Any) -> int:
        """Fill the entries; returns how many."""
        mapper, swarm, values = player.mapper, player.swarm, player.values
        lay = mapper.layout
        if self._eligible.size != lay.voices:
            self._eligible, self._lowest = np.zeros(lay.voices, np.uint8), np.zeros(lay.voices, np.int64)
        if lay is not self._layout:
            self._index_notes(lay)
        t_next = swarm.ticks * swarm.dt
        length = mapper.note_fraction / mapper.tempo.hz if mapper.note_fraction > 0.0 else mapper.note_s
        settled = length + values["clock.lookahead_ms"] / 1000.0 + 2 * swarm.dt
        mark_eligible(self._eligible, mapper._hold_until, mapper._burst, mapper._off_time, mapper._on_time, lay.channel, lay.note,
                      t_next, settled)  # fmt: skip
        limit = min(CAPACITY, mapper.max_per_tick, int(min(mapper.bucket_capacity, mapper._tokens + mapper.rate * swarm.dt)))
        count = plan(
            swarm.state.phase, swarm.state.freq, lay.voice_of, self._eligible, self._lowest, swarm.codes[0], swarm.codes[1],
            float(values["input.strength"]), float(swarm.in_degree), bool(values["input.velocity_scaled"]),
            swarm._receive_coupling, self.voices, limit,
        )  # fmt: skip
        by_voice = values["input.target"] == "voice"
        note_min, note_max = values["input.note_min"], values["input.note_max"]
        for index in range(count):
            v = int(self.voices[index])
            channel, note = int(lay.channel[v]), int(lay.note[v])
            velocity = mapper.velocity(min(float(mapper._burst[v]) / float(lay.size[v]), 1.0))
            self.notes_velocity[index] = velocity
            self.messages[index] = (3 << 24) | (velocity << 16) | (note << 8) | (0x90 | channel)
            self.velocities[index] = self._lowest[v]
            lo, hi = (int(self._note_range[note, 0]), int(self._note_range[note, 1])) if by_voice else (0, 127)
            self.lows[index], self.highs[index] = max(lo, note_min), min(hi, note_max)
            if any(self.messages[j] & 0xFFFF == self.messages[index] & 0xFFFF for j in range(index)):
                self.velocities[index] = 128  # two voices on one note: the first plays it
        return count

    def _index_notes(self, lay: Any) -> None:
        """The input notes whose nearest played note is each played note (input.target = voice)."""
        self._layout = lay
        self._note_range[:, 0], self._note_range[:, 1] = 128, -1
        for note, nearest in enumerate(lay.nearest_note):
            self._note_range[nearest, 0] = min(self._note_range[nearest, 0], note)
            self._note_range[nearest, 1] = max(self._note_range[nearest, 1], note)
