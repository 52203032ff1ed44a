"""Many ticks in one call, recording as they go: the offline path of simulate, render and tune."""

from __future__ import annotations

import numpy as np
from numba import njit

from firefly_midi.swarm.kernels.intrinsics import borrowed, prefer_512_bit_vectors
from firefly_midi.swarm.kernels.ticks import settings_of, tick, tick_delayed
from firefly_midi.swarm.kernels.trig import mean_field


@njit(nogil=True, cache=True)
def run(
    ticks,
    first_index,
    prev_n,
    codes,
    coef,
    phase,
    freq,
    fired,
    table,
    ids,
    times,
    hist,
    below,
    scratch,
    state,
    rng,
    sweep,
    sample_every,
    sample_phase,
    samples,
    counts,
    raster_stride,
    raster_t,
    raster_id,
    raster_n,
):
    """``ticks`` ticks in a row, recording as it goes (the offline path: simulate, render, tune).

    The tick is inlined here, so a tick costs no kernel frames.  Every ``sample_every`` ticks
    (none when 0), counting ``sample_phase`` ticks already recorded before this call, a row
    (r, Σφ, live, flashes so far in this call) goes to ``samples``; each tick's flash count to
    ``counts``; flashes of fireflies whose id is a multiple of ``raster_stride`` to
    raster_t/raster_id while they have room (raster_n[0] counts them).
    Returns (the last tick's flash count, the flashes of all these ticks).
    Instant coupling only: with delays the engine calls ``run_delayed``.
    """
    phase, freq, fired, table, ids, times = borrowed(phase, freq, fired, table, ids, times)
    codes, coef, state, rng, hist, below, scratch, sweep = borrowed(codes, coef, state, rng, hist, below, scratch, sweep)
    n = prev_n
    total = 0
    dt = settings_of(codes, coef).dt
    row = 0
    for k in range(ticks):
        index = first_index + k
        n = tick(codes, coef, phase, freq, fired, table, ids, times, hist, below, scratch, state, rng, sweep, index, n, 0)
        counts[k] = n
        total += n
        if raster_stride > 0:
            for q in range(n):
                if ids[q] % raster_stride == 0 and raster_n[0] < raster_t.size:
                    raster_t[raster_n[0]] = (index + times[q]) * dt
                    raster_id[raster_n[0]] = ids[q]
                    raster_n[0] += 1
        if sample_every > 0 and (sample_phase + k + 1) % sample_every == 0:
            c, s, phase_sum, live = mean_field(phase)
            samples[row, 0] = np.hypot(c, s) / live if live else 0.0
            samples[row, 1] = phase_sum
            samples[row, 2] = live
            samples[row, 3] = total
            row += 1
    return n, total


@njit(nogil=True, cache=True)
def run_delayed(
    ticks,
    first_index,
    prev_n,
    codes,
    coef,
    phase,
    freq,
    fired,
    table,
    ids,
    times,
    state,
    rng,
    dq_meta,
    dq_to,
    dq_t,
    sines,
    sample_every,
    sample_phase,
    samples,
    counts,
    raster_stride,
    raster_t,
    raster_id,
    raster_n,
):
    """``run`` with ``tick_delayed``: a pulse-type model with ``swarm.delay_ms`` > 0.

    Its recording is written out again rather than shared with ``run`` through an inlined helper:
    that helper, doing the same work, made numba's instant loop 16% slower (measured), and the
    instant loop is the one that must not pay for delays.
    """
    prefer_512_bit_vectors()  # ermentrout-800: 0.415 -> 0.398 µs a tick (A/B, 3 rounds); run() stays 256-bit (pulse N = 800 lost)
    phase, freq, fired, table, ids, times = borrowed(phase, freq, fired, table, ids, times)
    codes, coef, state, rng, dq_meta, dq_to, dq_t, sines = borrowed(codes, coef, state, rng, dq_meta, dq_to, dq_t, sines)
    n = prev_n
    total = 0
    dt = settings_of(codes, coef).dt
    row = 0
    for k in range(ticks):
        index = first_index + k
        n = tick_delayed(codes, coef, phase, freq, fired, table, ids, times, state, rng, dq_meta, dq_to, dq_t, sines, index, n, 0)
        counts[k] = n
        total += n
        if raster_stride > 0:
            for q in range(n):
                if ids[q] % raster_stride == 0 and raster_n[0] < raster_t.size:
                    raster_t[raster_n[0]] = (index + times[q]) * dt
                    raster_id[raster_n[0]] = ids[q]
                    raster_n[0] += 1
        if sample_every > 0 and (sample_phase + k + 1) % sample_every == 0:
            c, s, phase_sum, live = mean_field(phase)
            samples[row, 0] = np.hypot(c, s) / live if live else 0.0
            samples[row, 1] = phase_sum
            samples[row, 2] = live
            samples[row, 3] = total
            row += 1
    return n, total
