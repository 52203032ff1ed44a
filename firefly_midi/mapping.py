"""Flashes → MIDI events, shared by the live daemon and the offline render.

Pure logic: no ports, threads, sockets or clocks.  The daemon calls ``Mapper.tick`` once per swarm
tick (every millisecond), so a tick with no flashes allocates nothing, and every buffer is made in
``__init__``; a small numba kernel counts the flashes per voice.

What a flash plays (``mapping.*`` parameters):
- ``voices``: the swarm is split into V voices, by id (contiguous ranges), by natural frequency
  (slowest group plays the lowest note) or by grid region (rectangular tiles as square as
  possible).  Voice v plays note v of the voice notes on channel ``channels[v % len]``.
- ``per_firefly``: firefly i plays scale note i (wrapping the note range) on channel i % len.
- ``density``: one voice of everyone, playing the root.

Voice notes and the split into voices: ``voicing.py``.

Re-trigger discipline: a synchronised burst of a voice is spread over tens of ticks, so "sound
whenever a firefly of the voice flashes" would machine-gun.  A voice sounds at the FIRST flash of a
burst (no latency) and then holds off for half the swarm's live period: flashes in the hold-off
belong to the same burst and are only counted.

Velocity = velocity_min + (velocity_max - velocity_min) · curve(share), where share is the fraction
of the voice's fireflies that flashed in its PREVIOUS complete burst (for the first burst: the share
that flashed in its first tick).  A synchronising swarm therefore plays a crescendo that lags one
beat, with zero latency.  Curves: linear, soft (√), hard (square), fixed (always velocity_max).  In
per_firefly mode share is replaced by the swarm's order parameter r.

Notes last ``note_ms``, or ``note_fraction`` of the live period when that is above 0.  One (channel,
note) sounds at most once: re-triggering a note still sounding sends its note-off first, then the
note-on (overlapping same notes are how synths get stuck notes).  Pending note-offs live in a fixed
table of (channel, note) slots; if more notes sound than ``pending_capacity``, the oldest is ended
early rather than anything being dropped.  Caps (``max_notes_per_tick``, ``max_notes_per_s`` as a
token bucket) drop the excess and count it in ``dropped_notes``; nothing is queued.

Optional outputs: the order parameter r as a CC (``cc_order``), at most every 10 ms when it changes;
MIDI clock (``clock_out``): start at the first tick, 24 clocks per beat at the live tempo (one beat
per swarm cycle) at the exact sub-tick time of each 1/24 crossing, stop on panic.

The kernels are in ``note_kernels.py``, the event buffer in ``events.py``; what comes in (note-ons as
flashes, MIDI clock in) in ``inputs.py``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from firefly_midi import midi
from firefly_midi import params as P
from firefly_midi.events import EVENT_CAPACITY, EventBuffer
from firefly_midi.midi import ALL_NOTES_OFF, NOTE_OFF, NOTE_ON
from firefly_midi.midi_clock import ClockOut
from firefly_midi.note_kernels import KERNELS
from firefly_midi.swarm.tempo import LiveTempo
from firefly_midi.voicing import Layout

CONTROL = midi.CONTROL_CHANGE
SLOTS = 16 * 128  # one pending note-off per (channel, note)
CC_INTERVAL_S = 0.010
CURVES = {"linear": 0, "soft": 1, "hard": 2, "fixed": 3}
_LAYOUT_KEYS = P.keys_with_effect("relayout", "reshape")


# ----------------------------------------------------------------------------------------------- mapper
class Mapper:
    """Turns each tick's flashes into note, CC and clock events in ``self.events``."""

    def __init__(
        self,
        values: dict[str, Any],
        swarm: Any,
        pending_capacity: int = 4096,
        event_capacity: int = EVENT_CAPACITY,
        tempo: LiveTempo | None = None,
    ):
        """``tempo``: a live tempo to share (the mapper updates it every tick); by default its own.
        The kernels are those of the swarm's engine (compiled, or interpreted while numba compiles)."""
        self.swarm = swarm
        self.dt = float(swarm.dt)
        self.values = checked({**getattr(swarm, "values", {}), **values})
        self.events = EventBuffer(event_capacity)
        self.pending_capacity = min(max(1, pending_capacity), SLOTS)
        self.tempo = tempo or LiveTempo(swarm.n, self.dt, 4.0, self.values["swarm.freq_hz"])
        self.use_engine(getattr(swarm, "engine", "compiled"))
        self.clock = ClockOut()
        self.notes_out = 0
        self.dropped_notes = 0
        self._used = [False] * 16
        self._off_time = np.full(SLOTS, np.inf)  # pending note-off time per (channel, note) slot
        self._on_time = np.zeros(SLOTS)
        self._sounding = 0
        self._next_off = np.inf
        self._cc_value = -1
        self._cc_time = -np.inf
        self._apply(self.values, layout=True)
        self._tokens = self.bucket_capacity
        self._warm_up()

    def use_engine(self, engine: str) -> None:
        """The compiled kernels, or (engine "numpy") their interpreted twins, from the next call on."""
        k = self.kernels = KERNELS[engine]()
        self.events.sort_kernel = k.sort_events
        self.tempo.cycles_hz = k.whole_cycles_hz

    def _warm_up(self) -> None:
        """Call every kernel once on nothing, so the first real tick does not load machine code."""
        none, k = self.layout.voice_of[:0], self.kernels
        k.plan_bursts(
            none, self._first[:0], self.layout.voice_of, self._counts, self._first, self._touched, self._hold_until,
            self._burst, self.layout.size, 0.0, self.dt, 0.0, 0, self._start_voice, self._start_time, self._start_share,
        )  # fmt: skip
        ev = self.events
        k.collect_due_offs(self._off_time, -np.inf, ev.time_s, ev.status, ev.data1, ev.data2, ev.size, 0)
        k.sort_events(ev.time_s, ev.status, ev.data1, ev.data2, ev.size, 0)
        k.oldest_sounding(self._off_time, self._on_time)
        _ = self.tempo.hz

    # ------------------------------------------------------------------- set-up and live changes
    def _apply(self, values: dict[str, Any], layout: bool) -> None:
        v = values
        if layout:
            self.layout = Layout(v, np.asarray(self.swarm.state.natural))
            self._voice_state(self.layout.voices, self.swarm.n)
        self.mode = v["mapping.mode"]
        self.velocity_min, self.velocity_max = v["mapping.velocity_min"], v["mapping.velocity_max"]
        self.curve = v["mapping.velocity_curve"]
        self.note_s, self.note_fraction = v["mapping.note_ms"] / 1000.0, v["mapping.note_fraction"]
        self.max_per_tick = v["mapping.max_notes_per_tick"]
        self.rate = float(v["mapping.max_notes_per_s"])
        # Burst allowance: a whole tick's worth if a second's worth allows it, never above a second's.
        self.bucket_capacity = min(self.rate, max(self.rate / 10.0, float(self.max_per_tick)))
        self.cc_order, self.cc_channel = v["mapping.cc_order"], v["mapping.cc_channel"] - 1
        self.clock_out = v["mapping.clock_out"]
        self.tempo.nominal_hz = v["swarm.freq_hz"]

    def _voice_state(self, voices: int, n: int) -> None:
        """Per-voice burst state and scratch for the counting kernel, sized once per layout."""
        self._counts = np.zeros(voices, dtype=np.int64)
        self._first = np.zeros(voices, dtype=np.float64)
        self._touched = np.zeros(max(1, min(voices, n)), dtype=np.int64)
        self._hold_until = np.full(voices, -np.inf)
        self._burst = np.zeros(voices, dtype=np.int64)
        self._start_voice = np.zeros(128, dtype=np.int64)  # at most max_notes_per_tick (≤ 128) kept
        self._start_time = np.zeros(128, dtype=np.float64)
        self._start_share = np.zeros(128, dtype=np.float64)
        if self.tempo.n_live != n:  # the swarm was redrawn with another size
            self.tempo.n_live = n
            self.tempo.reset()

    def update(self, values: dict[str, Any]) -> None:
        """Apply changed parameters between ticks; notes already sounding keep their offs."""
        merged = checked({**self.values, **values})
        relayout = any(merged[k] != self.values[k] for k in _LAYOUT_KEYS) or self.swarm.n != self.layout.voice_of.size
        self.values = merged
        self._apply(merged, layout=relayout)
        self._tokens = min(self._tokens, self.bucket_capacity)

    # ------------------------------------------------------------------------------- the tick
    def tick(self, k: int, ids: np.ndarray, times: np.ndarray, r: float, keep: bool = False, quiet: bool = False) -> int:
        """Events due in [k·dt, (k+1)·dt) after the step from tick k (flash i at (k + times[i])·dt);
        ``keep``: after those already in ``events`` (the steps a tick caught up), not instead;
        ``quiet``: the flashes count for the tempo but start no note (a long stall's catch-up)."""
        events = self.events
        if not keep:
            events.clear()
        t0 = k * self.dt
        end = t0 + self.dt
        self.tempo.update(ids.size)
        self._tokens = min(self.bucket_capacity, self._tokens + self.rate * self.dt)
        if self.clock_out:
            self.clock.tick(events, t0, self.dt, self.tempo.hz)
        elif self.clock.running:
            self.clock.stop(events, t0)
        if ids.size and not quiet:
            self._start_notes(ids, times, t0, r)
        if self._next_off < end:
            self._end_due_notes(end)
        if self.cc_order >= 0:
            self._send_order(t0, r)
        events.sort()
        return events.count

    def _start_notes(self, ids: np.ndarray, times: np.ndarray, t0: float, r: float) -> None:
        hz = self.tempo.hz
        limit = min(self.max_per_tick, int(self._tokens))
        lay = self.layout
        kept, starts = self.kernels.plan_bursts(
            ids, times, lay.voice_of, self._counts, self._first, self._touched, self._hold_until, self._burst, lay.size,
            t0, self.dt, 0.5 / hz, limit, self._start_voice, self._start_time, self._start_share,
        )  # fmt: skip
        self.dropped_notes += starts - kept
        self._tokens -= kept
        length = self.note_fraction / hz if self.note_fraction > 0.0 else self.note_s
        for j in range(kept):
            v = int(self._start_voice[j])
            share = r if self.mode == "per_firefly" else float(self._start_share[j])
            self._play(float(self._start_time[j]), int(lay.channel[v]), int(lay.note[v]), self.velocity(share), length)

    def velocity(self, share: float) -> int:
        """velocity_min..velocity_max by the curve of ``share`` (0..1)."""
        share = min(max(share, 0.0), 1.0) if share == share else 0.0
        if self.curve == "fixed":
            return self.velocity_max
        shaped = math.sqrt(share) if self.curve == "soft" else share * share if self.curve == "hard" else share
        return round(self.velocity_min + (self.velocity_max - self.velocity_min) * shaped)

    def _play(self, t: float, channel: int, note: int, velocity: int, length: float) -> None:
        """Note-on at t, first ending the same note if it still sounds, or the oldest if full."""
        events = self.events
        if events.count + 2 > events.capacity:  # room for an off and the on, or no note at all
            events.overflow += 1
            self.dropped_notes += 1
            return
        slot = channel * 128 + note
        pending = self._off_time[slot]
        if pending != np.inf:  # still sounding: its off now (or when due, if that is earlier)
            events.push(min(pending, t), NOTE_OFF | channel, note, 0)
        elif self._sounding >= self.pending_capacity:
            self._end_early(self.kernels.oldest_sounding(self._off_time, self._on_time), t)
            self._sounding += 1
        else:
            self._sounding += 1
        events.push(t, NOTE_ON | channel, note, velocity)
        self._off_time[slot] = t + length
        self._on_time[slot] = t
        self._next_off = min(self._next_off, t + length)
        self._used[channel] = True
        self.notes_out += 1

    def reflexed(self, voice: int, t: float, velocity: int, shorten: float) -> None:
        """The native JACK callback played ``voice``'s note-on already (firefly_midi/reflex.py): its
        burst starts at ``t`` as if this mapper had played it (hold-off, caps, the note-off, which
        comes ``shorten`` earlier: the note-on left that much before the tick's would have)."""
        lay = self.layout
        self._hold_until[voice] = t + 0.5 / self.tempo.hz
        self._burst[voice] = 0
        self._tokens -= 1
        channel, note = int(lay.channel[voice]), int(lay.note[voice])
        slot = channel * 128 + note
        if self._off_time[slot] == np.inf:
            self._sounding += 1
        off = t + max(self.note_fraction / self.tempo.hz if self.note_fraction > 0.0 else self.note_s, 2 * shorten) - shorten
        self._off_time[slot] = off
        self._on_time[slot] = t
        self._next_off = min(self._next_off, off)
        self._used[channel] = True
        self.notes_out += 1

    def _end_early(self, slot: int, t: float) -> None:
        self.events.push(t, NOTE_OFF | (slot // 128), slot % 128, 0)
        self._off_time[slot] = np.inf
        self._sounding -= 1

    def _end_due_notes(self, end: float) -> None:
        ev = self.events
        count, freed, left, self._next_off = self.kernels.collect_due_offs(
            self._off_time, end, ev.time_s, ev.status, ev.data1, ev.data2, ev.size, ev.count
        )
        ev.count = count
        ev.overflow += left
        self._sounding -= freed

    def _send_order(self, t0: float, r: float) -> None:
        if t0 - self._cc_time < CC_INTERVAL_S - 1e-9 or r != r:
            return
        value = min(127, max(0, round(r * 127)))
        if value != self._cc_value and self.events.push(t0, CONTROL | self.cc_channel, self.cc_order, value):
            self._cc_value, self._cc_time = value, t0
            self._used[self.cc_channel] = True

    # ------------------------------------------------------------------------------- stopping
    def panic(self, k: int) -> int:
        """Every pending note-off now, All Notes Off on every channel used, clock stop."""
        events = self.events
        events.clear()
        t = k * self.dt
        for slot in np.flatnonzero(self._off_time != np.inf).tolist():
            events.push(t, NOTE_OFF | (slot // 128), slot % 128, 0)
        for channel in self.channels_used:
            events.push(t, CONTROL | (channel - 1), ALL_NOTES_OFF, 0)
        self.clock.stop(events, t)
        self._off_time[:] = np.inf
        self._sounding = 0
        self._next_off = np.inf
        return events.count

    # ------------------------------------------------------------------------------- telemetry
    @property
    def overflow_events(self) -> int:
        return self.events.overflow

    @property
    def channels_used(self) -> tuple[int, ...]:
        """1-based channels this mapper has sent on."""
        return tuple(c + 1 for c in range(16) if self._used[c])

    @property
    def sounding(self) -> int:
        return self._sounding

    def members_near(self, note: int) -> np.ndarray | None:
        return self.layout.members_near(note)


def checked(values: dict[str, Any]) -> dict[str, Any]:
    """The defaults with ``values`` over them, every ``mapping.*`` and ``input.*`` value checked."""
    merged = P.defaults()
    merged.update(values)
    for key in merged:
        if key.startswith(("mapping.", "input.")):
            merged[key] = P.check(key, merged[key])
    return merged
