"""The mapper's numba kernels: burst planning, due note-offs, the oldest sounding note, event order.

Each has an interpreted twin (``interpreted.py``) that the numpy engine plays while these compile;
``KERNELS`` picks the set by engine name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numba import njit

from firefly_midi import interpreted as interp
from firefly_midi.midi import NOTE_OFF
from firefly_midi.swarm.tempo import whole_cycles_hz


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
