"""Kuramoto's continuous coupling: the global sine sweep by chunks, the sawtooth in O(N), neighbour lists."""

from __future__ import annotations

import numpy as np
from numba import njit

from firefly_midi.swarm.kernels.intrinsics import FAST, prefer_512_bit_vectors
from firefly_midi.swarm.kernels.trig import sincos_2pi

BLOCK = 256  # the sweep works in blocks this long so its inner loop vectorises
# The sweep's unit of work: each chunk sums its own part, and the chunks' sums are added in chunk
# order, so the result does not depend on which thread ran which chunk (see board.kuramoto_sine).
CHUNK = 8192


@njit(nogil=True, cache=True, fastmath=FAST)
def kuramoto_chunk(c, phase, freq, fired, ids, times, sums, args):
    """Chunk ``c`` of kuramoto_sine: fireflies [c·CHUNK, (c+1)·CHUNK), its flashes to ids/times from
    c·CHUNK, its sums to sums[c].

    Each block's steps are parked in times[w : w + block], w being the next free flash slot
    (w <= the block's start, so the window is the chunk's own and holds no unread flash): the
    window moves only as flashes are packed, so it stays in L1.
    """
    prefer_512_bit_vectors()
    dt, k_hz, l_hz, zc, zs = args[0], args[1], args[2], args[3], args[4]
    c0 = c * CHUNK
    c1 = min(c0 + CHUNK, phase.size)
    c_sum = 0.0
    s_sum = 0.0
    advance_sum = 0.0
    live = 0
    w = c0
    for start in range(c0, c1, BLOCK):
        lo = np.uint64(start)
        hi = np.uint64(min(start + BLOCK, c1))
        crossed = 0
        base = np.uint64(w) - lo  # the block's steps go to times[w:], which stays in L1 (see above)
        for i in range(lo, hi):
            x = phase[i]
            ok = x == x  # NaN = silenced: selects keep it out of every sum, and NaN stays NaN
            sn, cs = sincos_2pi(x if ok else 0.0)
            pull = zs * cs - zc * sn  # Im(Z e^{-iθ}) = r sin(ψ - θ)
            d = dt * (freq[i] + k_hz * pull)
            freq[i] += dt * l_hz * pull if ok else 0.0
            y = x + d
            wraps = np.floor(y)
            phase[i] = y - wraps
            times[base + i] = d  # the step, kept for the rescan below
            crossed += wraps > 0.0
            c_sum += cs if ok else 0.0
            s_sum += sn if ok else 0.0
            advance_sum += d if ok else 0.0
            live += ok
        if crossed:
            for i in range(lo, hi):
                d = times[base + i]
                if d > 0.0 and phase[i] < d:  # wrapped upwards this step
                    ids[w] = i
                    times[w] = 1.0 - phase[i] / d  # w <= base + i: that step was already read
                    fired[i] = 1
                    w += 1
    sums[c, 0] = c_sum
    sums[c, 1] = s_sum
    sums[c, 2] = advance_sum
    sums[c, 3] = live
    sums[c, 4] = w - c0


@njit(nogil=True, cache=True)
def phase_histogram(phase, counts):
    """Counts of live phases per bin (``counts`` is cleared first); returns (Σφ, live count)."""
    bins = counts.size
    counts[:] = 0
    total = 0.0
    live = 0
    for i in range(phase.size):
        x = phase[i]
        if x == x:
            counts[min(int(x * bins), bins - 1)] += 1
            total += x
            live += 1
    return total, live


@njit(nogil=True, cache=True)
def kuramoto_sawtooth(phase, freq, dt, k_hz, l_hz, counts, below, phase_sum, live):
    """One Euler step of Kuramoto with the sawtooth P(θ) = (θ mod 2π)/π - 1, P(0) = 0, in O(N).

    Σ_j P(θ_j - θ_i) = 2 Σ_j ((φ_j - φ_i) mod 1) - (N - 1), and Σ_j ((φ_j - φ_i) mod 1)
    = Σφ - Nφ_i + #{j: φ_j < φ_i}; the rank comes from the histogram ``counts`` (interpolated
    inside a bin: the error is at most 2·(occupancy of its bin - 1)/N, nothing for spread phases).  ``below`` is scratch for its prefix sums.
    """
    bins = counts.size
    acc = 0
    for b in range(bins):
        below[b] = acc
        acc += counts[b]
    for i in range(phase.size):
        x = phase[i]
        if x == x:
            pos = x * bins
            b = min(int(pos), bins - 1)
            rank = below[b] + (counts[b] - 1) * (pos - b)
            pull = (2.0 * (phase_sum - live * x + rank) - (live - 1)) / live  # mean of P over the others
            phase[i] = x + dt * (freq[i] + k_hz * pull)
            freq[i] += dt * l_hz * pull
    return 0


@njit(nogil=True, cache=True)
def kuramoto_sparse(sawtooth, phase, freq, dt, k_hz, l_hz, table, scratch):
    """One Euler step of Kuramoto over neighbour lists: each firefly averages H over its row.

    ``scratch[:N]`` must hold the phases the step starts from (neighbours are read from there).
    """
    for i in range(phase.size):
        x = scratch[i]
        if x != x:
            continue
        pull = 0.0
        seen = 0
        for k in range(table.shape[1]):
            j = table[i, k]
            if j < 0 or scratch[j] != scratch[j]:
                continue
            d = scratch[j] - x
            if sawtooth:
                d = d - np.floor(d)
                pull += 0.0 if d == 0.0 else 2.0 * d - 1.0
            else:
                pull += sincos_2pi(d)[0]
            seen += 1
        if seen:
            pull /= seen
        phase[i] = x + dt * (freq[i] + k_hz * pull)
        freq[i] += dt * l_hz * pull
    return 0


@njit(nogil=True, cache=True)
def wrap_and_detect(phase, before, fired, ids, times, n):
    """After a continuous step: wrap phases into [0, 1) and record upward crossings of 1.

    ``before`` holds each phase before the step, for the sub-tick time of the crossing.
    """
    for i in range(phase.size):
        x = phase[i]
        if x >= 1.0:
            wraps = np.floor(x)
            phase[i] = x - wraps
            step = x - before[i]
            ids[n] = i
            times[n] = min(max((wraps - before[i]) / step, 0.0), 1.0) if step > 0.0 else 1.0
            fired[i] = 1
            n += 1
        elif x < 0.0:
            phase[i] = x - np.floor(x)
    return n


@njit(nogil=True, cache=True)
def kuramoto_kick(phase, targets, everyone, amount, sawtooth):
    """An external flash on a continuous model: φ += amount · H(0 - θ), H = sin or the sawtooth.

    A phase kicked past 1 is held just below it, so the next step's crossing flashes it.
    """
    count = phase.size if everyone else targets.size
    for k in range(count):
        i = k if everyone else targets[k]
        x = phase[i]
        if x != x:
            continue
        if sawtooth:
            d = 1.0 - x  # (0 - φ) mod 1
            pull = 0.0 if x == 0.0 else 2.0 * d - 1.0
        else:
            pull = -sincos_2pi(x)[0]
        phase[i] = min(max(x + amount * pull, 0.0), 1.0 - 1e-12)
    return 0
