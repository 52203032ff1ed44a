"""Delayed deliveries (``swarm.delay_ms`` > 0): a ring of tick slots, filled as flashes happen.

Each of the ring's ``slots`` rows holds the deliveries landing in one tick: ``dq_to`` (receiver,
-1: everyone) and ``dq_t`` (arrival time within its tick), filled from the left; ``dq_meta`` =
[dropped, the rows' counts...].  A slot's deliveries lie side by side, so a burst of 10⁵ of them
is read in order rather than chased through a linked pool (git show e4e48e4:docs/performance.md).  Queueing
allocates nothing; a full row drops the delivery and counts it in dq_meta[DQ_DROPPED].
"""

from __future__ import annotations

import numpy as np
from numba import njit

from firefly_midi.swarm.kernels.intrinsics import prefer_512_bit_vectors
from firefly_midi.swarm.kernels.prc import ermentrout_freq_at, receive
from firefly_midi.swarm.kernels.pulse import receive_all
from firefly_midi.swarm.kernels.rng import R_COUNTER, R_KEY, uniform01
from firefly_midi.swarm.kernels.trig import TWO_PI, sincos_2pi

DQ_DROPPED, DQ_SLOTS = 0, 1


@njit(nogil=True, cache=True)
def queue_delivery(dq_meta, dq_to, dq_t, index, receiver, arrival):
    """Queue one delivery arriving ``arrival`` ticks after the start of tick ``index``.

    A ``dq_t`` without columns keeps no arrival times.  The count is stored before the row: the
    other order, with the time's store conditional, ran 2x slower at N = 10⁵ (so did a slot by
    subtraction or by a power-of-two mask instead of the modulo; not understood, measured on AVX2).
    """
    whole = np.floor(arrival)
    slot = (index + int(whole)) % dq_to.shape[0]
    count = dq_meta[DQ_SLOTS + slot]
    if count >= dq_to.shape[1]:
        dq_meta[DQ_DROPPED] += 1
        return
    dq_meta[DQ_SLOTS + slot] = count + 1
    dq_to[slot, count] = receiver
    if dq_t.shape[1] > 0:
        dq_t[slot, count] = arrival - whole


@njit(nogil=True, cache=True)
def queue_flashes(table, ids, times, start, n, delay_ticks, dq_meta, dq_to, dq_t, rng, index):
    """Queue flashes ids[start:n]: one delivery per observer, or one for everyone (global).

    Each delay is uniform in [0, delay_ticks), drawn from the counter-based generator in flash
    order, so a seed gives the same deliveries on every run.
    """
    key, counter = rng[R_KEY], rng[R_COUNTER]
    for q in range(start, n):
        if table.shape[0] == 0:
            queue_delivery(dq_meta, dq_to, dq_t, index, -1, times[q] + delay_ticks * uniform01(key, counter))
            counter += np.uint64(1)
            continue
        j = ids[q]
        for k in range(table.shape[1]):
            if table[j, k] >= 0:
                queue_delivery(dq_meta, dq_to, dq_t, index, table[j, k], times[q] + delay_ticks * uniform01(key, counter))
                counter += np.uint64(1)
    rng[R_COUNTER] = counter


@njit(nogil=True, cache=True)
def deliver_due(
    model,
    prc,
    desync,
    phase,
    freq,
    fired,
    w,
    eps,
    kappa,
    ms_b,
    f0,
    fmin,
    fmax,
    ids,
    times,
    n,
    dq_meta,
    dq_to,
    dq_t,
    index,
    lo,
    sines,
    tabled,
):
    """Apply the deliveries of tick ``index``'s slot from position ``lo`` on, newest first; return the flash count.

    ``tabled`` (Ermentrout only): ``sines`` holds sin 2πφ of every firefly for this tick.  Arrival
    times are read only where they matter: a flash set off, or the latest broadcast.  Ermentrout's
    deliveries never need one, so its rows store none (``dq_t`` without columns).

    Flashes these set off that land in this same tick are queued by the caller after the walk,
    past its end, and walked in turn.  Broadcasts (global) are added into one count and applied
    to everyone at once after the walk, in O(N) as without delays.
    """
    slot = index % dq_to.shape[0]
    broadcasts, latest_t = 0, 0.0
    for e in range(dq_meta[DQ_SLOTS + slot] - 1, lo - 1, -1):
        i = dq_to[slot, e]  # no row views: each would cost a reference count
        if i < 0:
            broadcasts += 1
            if dq_t.shape[1] > 0:
                latest_t = max(latest_t, dq_t[slot, e])
            continue
        if tabled:  # NaN in the table: flashed this tick, or silenced (one load instead of three)
            sn = sines[i]
            if sn == sn:
                freq[i] = ermentrout_freq_at(sn / TWO_PI, freq[i], 1.0, w, eps, f0, fmin, fmax)
            continue
        if fired[i] != 0 or phase[i] != phase[i]:
            continue
        phi, omega = receive(model, prc, desync, phase[i], freq[i], 1.0, w, eps, kappa, ms_b, f0, fmin, fmax)
        freq[i] = omega
        if phi < 1.0:
            phase[i] = phi
            continue
        phase[i] = 0.0
        fired[i] = 1
        ids[n] = i
        times[n] = dq_t[slot, e]
        n += 1
    if broadcasts:
        n = receive_all(
            model, prc, desync, phase, freq, fired, float(broadcasts), w, eps, kappa, ms_b, f0, fmin, fmax, latest_t, ids, times, n
        )
    return n


@njit(nogil=True, cache=True)
def sine_table(phase, fired, sines):
    """sines[i] = sin 2πφᵢ for every firefly, in one vectorised pass; NaN for the silenced and
    for those that flashed this tick, which ignore its deliveries."""
    prefer_512_bit_vectors()
    for i in range(phase.size):
        sn = sincos_2pi(phase[i])[0]
        sines[i] = sn if fired[i] == 0 else np.nan
