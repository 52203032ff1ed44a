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

Voice notes: the scale from ``root`` upward over ``octaves`` octaves plus the top root; V voices are
spread evenly across that list.  With more voices than notes the scale keeps going up, octave by
octave, and wraps back to the root rather than passing note 127.

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

Input: ``InputMap`` turns incoming note-ons into external flashes (``Swarm.inject``), and ``ClockIn``
measures the tempo of incoming MIDI clock.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numba import njit

from firefly_midi import interpreted as interp
from firefly_midi import midi
from firefly_midi import params as P
from firefly_midi.midi import ALL_NOTES_OFF, NOTE_OFF, NOTE_ON
from firefly_midi.midi_clock import ClockOut
from firefly_midi.swarm import topology
from firefly_midi.swarm.tempo import LiveTempo, whole_cycles_hz

SCALE_STEPS: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
    "whole_tone": (0, 2, 4, 6, 8, 10),
    "chromatic": tuple(range(12)),
}

CONTROL, CLOCK, START, STOP = midi.CONTROL_CHANGE, midi.TIMING_CLOCK, midi.SONG_START, midi.SONG_STOP
SLOTS = 16 * 128  # one pending note-off per (channel, note)
EVENT_CAPACITY = 4096  # above the worst tick with the largest caps: 2048 offs + 3·128 + CC + clock
CC_INTERVAL_S = 0.010
CURVES = {"linear": 0, "soft": 1, "hard": 2, "fixed": 3}
_LAYOUT_KEYS = P.keys_with_effect("relayout", "reshape")


# ----------------------------------------------------------------------------------------------- notes
def scale_notes(scale: str, root: int, octaves: int) -> list[int]:
    """The scale from ``root`` over ``octaves`` octaves, plus the top root."""
    steps = SCALE_STEPS[scale]
    return [root + 12 * o + s for o in range(octaves) for s in steps] + [root + 12 * octaves]


def scale_up_to_127(scale: str, root: int) -> list[int]:
    """Every note of the scale from ``root`` up to 127: where extra voices go."""
    steps = SCALE_STEPS[scale]
    return [n for o in range(11) for s in steps if (n := root + 12 * o + s) <= 127]


def voice_notes(scale: str, root: int, octaves: int, voices: int) -> list[int]:
    """V notes spread evenly over the scale range; more voices than notes climb on, then wrap."""
    notes = scale_notes(scale, root, octaves)
    if voices == 1:
        return [root]
    if voices <= len(notes):
        return [notes[round(v * (len(notes) - 1) / (voices - 1))] for v in range(voices)]
    climbing = scale_up_to_127(scale, root)
    return [climbing[v % len(climbing)] for v in range(voices)]


# ----------------------------------------------------------------------------------------------- voices
def tile_grid(voices: int, rows: int, cols: int) -> tuple[int, int]:
    """(tile rows, tile columns) multiplying to ``voices`` whose tiles are the most nearly square."""
    pairs = [(a, voices // a) for a in range(1, voices + 1) if voices % a == 0]
    return min(pairs, key=lambda ab: (abs(math.log((rows / ab[0]) / (cols / ab[1]))), ab[0]))


def voice_of_fireflies(values: dict[str, Any], natural: np.ndarray) -> np.ndarray:
    """Each firefly's voice index (int64), by ``mapping.mode`` and ``mapping.split``."""
    n = natural.size
    ids = np.arange(n, dtype=np.int64)
    mode, voices = values["mapping.mode"], values["mapping.voices"]
    if mode == "per_firefly":
        return ids
    if mode == "density":
        return np.zeros(n, dtype=np.int64)
    split = values["mapping.split"]
    if split == "frequency":  # slowest first, so the lowest notes go to the slowest fireflies
        out = np.empty(n, dtype=np.int64)
        out[np.argsort(natural, kind="stable")] = ids * voices // n
        return out
    if split == "region":
        rows, cols = topology.grid_shape(n)
        tile_rows, tile_cols = tile_grid(voices, rows, cols)
        return (ids // cols * tile_rows // rows) * tile_cols + (ids % cols * tile_cols // cols)
    return ids * voices // n


class Layout:
    """Who plays what: voice of each firefly, note, channel and size of each voice."""

    def __init__(self, values: dict[str, Any], natural: np.ndarray):
        mode = values["mapping.mode"]
        channels = [c - 1 for c in values["mapping.channels"]]
        scale, root, octaves = values["mapping.scale"], values["mapping.root"], values["mapping.octaves"]
        self.voice_of = voice_of_fireflies(values, natural)
        count = {"per_firefly": natural.size, "density": 1}.get(mode, values["mapping.voices"])
        if mode == "per_firefly":
            notes = np.array(scale_notes(scale, root, octaves), dtype=np.int64)
            self.note = notes[np.arange(count) % notes.size]
        else:
            self.note = np.array(voice_notes(scale, root, octaves, count), dtype=np.int64)
        self.channel = np.array(channels, dtype=np.int64)[np.arange(count) % len(channels)]
        self.size = np.bincount(self.voice_of, minlength=count).astype(np.int64)
        self.voices = count
        self._index_by_note(natural.size)

    def _index_by_note(self, n: int) -> None:
        """Fireflies grouped by the note they play, and the nearest played note to every note."""
        firefly_note = self.note[self.voice_of]
        order = np.argsort(firefly_note, kind="stable")
        played, starts = np.unique(firefly_note[order], return_index=True)
        bounds = [*starts.tolist(), n]
        self.members_by_note: list[np.ndarray | None] = [None] * 128
        for j, note in enumerate(played.tolist()):
            self.members_by_note[note] = np.ascontiguousarray(order[bounds[j] : bounds[j + 1]], dtype=np.int64)
        self.nearest_note = [int(played[np.argmin(np.abs(played - note))]) for note in range(128)] if n else [0] * 128

    def members_near(self, note: int) -> np.ndarray | None:
        """Ids of the fireflies playing the played note nearest ``note`` (the lower one on a tie)."""
        return self.members_by_note[self.nearest_note[note]]


# ----------------------------------------------------------------------------------------------- kernels
@njit(nogil=True, cache=True)
def _earlier(t_a, v_a, t_b, v_b):
    return t_a < t_b or (t_a == t_b and v_a < v_b)


@njit(nogil=True, cache=True)
def plan_bursts(
    ids, times, voice_of, counts, first, touched, hold_until, burst, size, t0, dt, holdoff, limit, out_voice, out_time, out_share
):
    """Count this tick's flashes per voice and find the voices that start a burst.

    A voice starts a burst when its first flash this tick is past its hold-off; the share that
    will set its velocity is that of its previous complete burst.  Every start moves the voice's
    hold-off on, but only the ``limit`` earliest (by time, then voice) are written to out_*,
    sorted; the others are the caps' excess.  Returns (kept, starts).
    """
    k = 0
    for q in range(ids.size):
        v = voice_of[ids[q]]
        if counts[v] == 0:
            touched[k] = v
            first[v] = times[q]
            k += 1
        elif times[q] < first[v]:
            first[v] = times[q]
        counts[v] += 1
    kept = 0
    starts = 0
    for j in range(k):
        v = touched[j]
        t = t0 + first[v] * dt
        if t < hold_until[v]:
            burst[v] += counts[v]
        else:
            share = min((burst[v] if burst[v] > 0 else counts[v]) / size[v], 1.0)
            burst[v] = counts[v]
            hold_until[v] = t + holdoff
            starts += 1
            kept = _insert_sorted(out_voice, out_time, out_share, kept, limit, v, t, share)
        counts[v] = 0
    return kept, starts


@njit(nogil=True, cache=True)
def _insert_sorted(out_voice, out_time, out_share, kept, limit, v, t, share):
    """Insert into the first ``kept`` entries sorted by (time, voice), keeping at most ``limit``."""
    if kept == limit and (limit == 0 or not _earlier(t, v, out_time[kept - 1], out_voice[kept - 1])):
        return kept
    pos = min(kept, limit - 1)
    while pos > 0 and _earlier(t, v, out_time[pos - 1], out_voice[pos - 1]):
        out_voice[pos] = out_voice[pos - 1]
        out_time[pos] = out_time[pos - 1]
        out_share[pos] = out_share[pos - 1]
        pos -= 1
    out_voice[pos] = v
    out_time[pos] = t
    out_share[pos] = share
    return min(kept + 1, limit)


@njit(nogil=True, cache=True)
def collect_due_offs(off_time, end, ev_time, ev_status, ev_d1, ev_d2, ev_size, count):
    """Write a note-off for every slot due before ``end``; free those slots.

    A slot whose off finds the event buffer full stays pending (sent next tick, never lost).
    Returns (new count, slots freed, offs left for lack of room, earliest off still pending).
    """
    freed = 0
    left = 0
    next_off = np.inf
    for slot in range(off_time.size):
        t = off_time[slot]
        if t < end:
            if count < ev_time.size:
                ev_time[count] = t
                ev_status[count] = NOTE_OFF | (slot // 128)
                ev_d1[count] = slot % 128
                ev_d2[count] = 0
                ev_size[count] = 3
                count += 1
                off_time[slot] = np.inf
                freed += 1
                continue
            left += 1
        if off_time[slot] < next_off:
            next_off = off_time[slot]
    return count, freed, left, next_off


@njit(nogil=True, cache=True)
def oldest_sounding(off_time, on_time):
    """The sounding slot that started first (-1 if none)."""
    best = -1
    for slot in range(off_time.size):
        if off_time[slot] != np.inf and (best < 0 or on_time[slot] < on_time[best]):
            best = slot
    return best


@njit(nogil=True, cache=True)
def sort_events(ev_time, ev_status, ev_d1, ev_d2, ev_size, count):
    """Stable insertion sort of the first ``count`` events by time (they arrive nearly sorted)."""
    for i in range(1, count):
        t, s, a, b, z = ev_time[i], ev_status[i], ev_d1[i], ev_d2[i], ev_size[i]
        j = i
        while j > 0 and ev_time[j - 1] > t:
            ev_time[j] = ev_time[j - 1]
            ev_status[j] = ev_status[j - 1]
            ev_d1[j] = ev_d1[j - 1]
            ev_d2[j] = ev_d2[j - 1]
            ev_size[j] = ev_size[j - 1]
            j -= 1
        ev_time[j], ev_status[j], ev_d1[j], ev_d2[j], ev_size[j] = t, s, a, b, z
    return 0


class MapKernels(NamedTuple):
    """The kernels a mapper calls (its tempo's included)."""

    plan_bursts: Callable
    collect_due_offs: Callable
    oldest_sounding: Callable
    sort_events: Callable
    whole_cycles_hz: Callable


@functools.cache
def _interpreted_kernels() -> MapKernels:
    twins = interp.collect_due_offs, interp.oldest_sounding
    return MapKernels(interp.interpreted(plan_bursts), *twins, interp.interpreted(sort_events), interp.interpreted(whole_cycles_hz))


def _compiled_kernels() -> MapKernels:
    return MapKernels(plan_bursts, collect_due_offs, oldest_sounding, sort_events, whole_cycles_hz)


KERNELS = {"compiled": _compiled_kernels, "numpy": _interpreted_kernels}


# ----------------------------------------------------------------------------------------------- events
class EventBuffer:
    """Preallocated MIDI events of one tick: parallel arrays, in time order, never grown."""

    def __init__(self, capacity: int = EVENT_CAPACITY):
        self.time_s = np.zeros(capacity, dtype=np.float64)  # absolute swarm seconds
        self.status = np.zeros(capacity, dtype=np.uint8)
        self.data1 = np.zeros(capacity, dtype=np.uint8)
        self.data2 = np.zeros(capacity, dtype=np.uint8)
        self.size = np.zeros(capacity, dtype=np.uint8)  # 1..3 bytes
        self.count = 0
        self.overflow = 0
        self._messages = ([0], [0, 0], [0, 0, 0])  # one reusable list per message size
        self.sort_kernel = sort_events  # or its interpreted twin (Mapper.use_engine)

    @property
    def capacity(self) -> int:
        return self.time_s.size

    def clear(self) -> None:
        self.count = 0

    def push(self, time_s: float, status: int, data1: int = 0, data2: int = 0, size: int = 3) -> bool:
        """Append one event; False (and counted) when full."""
        i = self.count
        if i >= self.time_s.size:
            self.overflow += 1
            return False
        self.time_s[i] = time_s
        self.status[i] = status
        self.data1[i] = data1
        self.data2[i] = data2
        self.size[i] = size
        self.count = i + 1
        return True

    def message(self, i: int) -> list[int]:
        """Event i as a list of ints, in a reused list: valid until the next call of the same size."""
        size = int(self.size[i])
        out = self._messages[size - 1]
        out[0] = int(self.status[i])
        if size > 1:
            out[1] = int(self.data1[i])
        if size > 2:
            out[2] = int(self.data2[i])
        return out

    def sort(self) -> None:
        if self.count > 1:
            self.sort_kernel(self.time_s, self.status, self.data1, self.data2, self.size, self.count)

    def as_list(self) -> list[tuple[float, list[int]]]:
        """(time, bytes) of every event: for tests and offline use (allocates)."""
        return [(float(self.time_s[i]), list(self.message(i))) for i in range(self.count)]


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
        self.values = _checked({**getattr(swarm, "values", {}), **values})
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
        merged = _checked({**self.values, **values})
        relayout = any(merged[k] != self.values[k] for k in _LAYOUT_KEYS) or self.swarm.n != self.layout.voice_of.size
        self.values = merged
        self._apply(merged, layout=relayout)
        self._tokens = min(self._tokens, self.bucket_capacity)

    # ------------------------------------------------------------------------------- the tick
    def tick(self, k: int, ids: np.ndarray, times: np.ndarray, r: float) -> int:
        """Events due in [k·dt, (k+1)·dt) after the step from tick k (flash i at (k + times[i])·dt)."""
        events = self.events
        events.clear()
        t0 = k * self.dt
        end = t0 + self.dt
        self.tempo.update(ids.size)
        self._tokens = min(self.bucket_capacity, self._tokens + self.rate * self.dt)
        if self.clock_out:
            self.clock.tick(events, t0, self.dt, self.tempo.hz)
        elif self.clock.running:
            self.clock.stop(events, t0)
        if ids.size:
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


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    merged = P.defaults()
    merged.update(values)
    for key in merged:
        if key.startswith(("mapping.", "input.")):
            merged[key] = P.check(key, merged[key])
    return merged


# ----------------------------------------------------------------------------------------------- input
@dataclass
class InputCounts:
    """What became of the incoming messages: one counter per fate, shared by everything that hears."""

    flashes: int = 0  # note-ons the swarm saw
    ignored: int = 0  # messages that do nothing here (or arrived while paused)
    other: int = 0  # clock messages and controllers bound by MIDI learn
    dropped: int = 0  # over input.max_per_tick, or the swarm's queue of external flashes was full


class InputMap:
    """What an incoming MIDI message does: note-ons become flashes the swarm sees."""

    def __init__(self, values: dict[str, Any], mapper: Mapper, counts: InputCounts | None = None):
        self.mapper = mapper
        self.counts = counts or InputCounts()
        self.update(values)

    def update(self, values: dict[str, Any]) -> None:
        v = _checked(values)
        self.enabled = v["input.enabled"]
        wanted = v["input.channels"]
        self._channel_ok = [not wanted or (c + 1) in wanted for c in range(16)]
        self.note_min, self.note_max = v["input.note_min"], v["input.note_max"]
        self.strength = v["input.strength"]
        self.velocity_scaled = v["input.velocity_scaled"]
        self.by_voice = v["input.target"] == "voice"

    def apply(self, message: Sequence[int], time_frac: float, swarm: Any) -> bool:
        """Inject ``message`` if it is a note-on that counts; False for anything else, never raising."""
        note_on = self.note_on(message)
        if note_on is None:
            self.counts.ignored += 1
            return False
        note, velocity = note_on
        strength = self.strength * (velocity / 127.0 if self.velocity_scaled else 1.0)
        targets = self.mapper.members_near(note) if self.by_voice else None
        if not swarm.inject(time_frac, strength, targets):
            self.counts.dropped += 1  # refused by the swarm: its queue of external flashes was full
            return False
        self.counts.flashes += 1
        return True

    def note_on(self, message: Any) -> tuple[int, int] | None:
        """(note, velocity) of a note-on that passes the filters, else None."""
        if not self.enabled:
            return None
        try:
            if len(message) != 3:
                return None
            status, note, velocity = message[0], message[1], message[2]
        except (TypeError, KeyError, IndexError):
            return None
        if not all(isinstance(b, int | np.integer) for b in (status, note, velocity)):
            return None
        if not (0x90 <= status <= 0x9F and 0 <= note <= 127 and 0 < velocity <= 127):
            return None
        if not self._channel_ok[status & 0x0F] or not self.note_min <= note <= self.note_max:
            return None
        return int(note), int(velocity)


class ClockIn:
    """Tempo of incoming MIDI clock: beats per second from the median of the last 24 intervals."""

    GAP_S = 2.0

    def __init__(self) -> None:
        self._intervals = np.zeros(24)
        self._scratch = np.zeros(24)
        self.reset()

    def reset(self) -> None:
        self._clocks = 0
        self._last: float | None = None

    def feed(self, time_s: float) -> None:
        """One 0xF8 arrived at ``time_s``; a gap over 2 s (or time going back) starts afresh."""
        if self._last is not None and not 0.0 <= time_s - self._last <= self.GAP_S:
            self.reset()
        if self._last is not None:
            self._intervals[(self._clocks - 1) % 24] = time_s - self._last
        self._clocks += 1
        self._last = time_s

    def handle(self, message: Sequence[int], time_s: float) -> bool:
        """Take a raw clock (0xF8), start (0xFA) or stop (0xFC) message; False for anything else."""
        try:
            status = message[0] if len(message) == 1 else None
        except (TypeError, KeyError, IndexError):
            return False
        if status == CLOCK:
            self.feed(time_s)
        elif status in (START, STOP):
            self.reset()
        else:
            return False
        return True

    def stop(self) -> None:
        self.reset()

    def tempo_hz(self, now: float | None = None) -> float | None:
        """Beats per second, or None before 24 clocks (or when the last is over 2 s before ``now``)."""
        if self._clocks < 24 or (now is not None and self._last is not None and now - self._last > self.GAP_S):
            return None
        used = min(self._clocks - 1, 24)
        window = self._scratch[:used]
        window[:] = self._intervals[:used]
        window.sort()
        median = 0.5 * (window[(used - 1) // 2] + window[used // 2])
        return 1.0 / (24.0 * median) if median > 0.0 else None
