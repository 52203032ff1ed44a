"""The counter-based generators (splitmix64, a 32-bit hash) and what draws from them: noise, peer redraws.

The random state is (key, counter), passed in and handed back: never a global, so a seed replays.
"""

from __future__ import annotations

import numpy as np
from numba import njit

R_KEY, R_COUNTER = 0, 1  # the generator's state array: [key, counter] (uint64)


@njit(inline="always")
def splitmix64(key, counter):
    z = key + counter * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(inline="always")
def uniform01(key, counter):
    z = splitmix64(key, counter)
    return float(np.int64(z >> np.uint64(11))) * (1.0 / 9007199254740992.0)  # < 2**53: exact; a signed conversion is one instruction


@njit(inline="always")
def mix32(x):
    """lowbias32 (C. Wellons' 32-bit integer hash).  numba widens integer arithmetic to 64 bits,
    so every step is cast back to uint32: LLVM then works in 8 lanes of 32 bits (vpmulld)."""
    x = np.uint32(x ^ (x >> np.uint32(16)))
    x = np.uint32(x * np.uint32(0x7FEB352D))
    x = np.uint32(x ^ (x >> np.uint32(15)))
    x = np.uint32(x * np.uint32(0x846CA68B))
    return np.uint32(x ^ (x >> np.uint32(16)))


@njit(inline="always")
def noise_bits(i, low, high):
    """32 random bits for firefly ``i`` in a tick seeded (low, high): two rounds, the second keyed."""
    return mix32(np.uint32(mix32(np.uint32(i + low)) ^ high))


@njit(nogil=True, cache=True)
def fill_uniform(out, key, counter):
    """Fill ``out`` with uniform [0, 1) draws from the counter-based generator; return the counter."""
    for i in range(out.size):
        out[i] = uniform01(key, counter + np.uint64(i))
    return counter + np.uint64(out.size)


@njit(nogil=True, cache=True, inline="always")
def add_noise(phase, sigma, key, counter):
    """Add uniform noise of standard deviation ``sigma`` to every phase (a diffusion over many ticks).

    One splitmix64 draw per tick seeds a 32-bit hash of each firefly's id (``noise_bits``), so the
    stream is a pure function of (seed, tick) and the numpy reference reproduces it.  32-bit lanes
    vectorise where 64-bit multiplies do not (AVX2 has none): splitmix64 per firefly cost 2.7 ns
    a firefly on an AVX2 EPYC (a third of a pulse tick at N = 10⁵), this 1.2 ns.  Returns the new counter.
    """
    seed = splitmix64(key, counter)
    low, high = np.uint32(seed & np.uint64(0xFFFFFFFF)), np.uint32(seed >> np.uint64(32))
    shake(phase, sigma * np.sqrt(3.0), low, high)
    return counter + np.uint64(1)


@njit(nogil=True, cache=True)
def shake(phase, half_width, low, high):
    """add_noise's pass over the phases.  A function of its own: with the seed worked out in the
    same function, LLVM vectorised this loop 1.4x slower (measured, not understood)."""
    for i in range(phase.size):
        u = float(np.int32(noise_bits(np.uint32(i), low, high) >> np.uint32(1))) * (1.0 / 2147483648.0)
        x = phase[i] + half_width * (2.0 * u - 1.0)
        phase[i] = min(max(x, 0.0), 1.0)  # at 1 the next advance flashes it


@njit(nogil=True, cache=True, inline="always")
def rewire(table, key, counter):
    """Redraw each row of ``table`` as random peers other than the row's own firefly."""
    return rewire_rows(table, 0, table.shape[0], key, counter)


@njit(nogil=True, cache=True)
def rewire_rows(table, lo, hi, key, counter):
    """Redraw rows lo..hi-1 of ``table`` as random peers other than the row's own firefly."""
    n = table.shape[0]
    for j in range(lo, hi):
        for k in range(table.shape[1]):
            peer = int(uniform01(key, counter) * (n - 1))
            counter += np.uint64(1)
            table[j, k] = peer + 1 if peer >= j else peer
    return counter
