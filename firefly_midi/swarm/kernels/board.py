"""The Kuramoto sweep's work board: chunks claimed one at a time by the stepping thread and any helpers.

Chunks are claimed with atomic_add on SW_NEXT and counted as they finish (SW_DONE).  The sweep's
float arguments follow the int64 words, viewed as float64.  The board stays a plain int64 array:
the atomics work on its slots.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from firefly_midi.swarm.kernels.intrinsics import atomic_add, atomic_load, atomic_store
from firefly_midi.swarm.kernels.kuramoto import CHUNK, kuramoto_chunk

SW_NEXT, SW_DONE, SW_STOP, SW_CHUNKS, SW_HELPED = range(5)  # SW_HELPED: chunks helpers ran, for reports
SW_ARGS = 8  # sweep[SW_ARGS:SW_ARGS + 5] as float64: dt, k_hz, l_hz, zc, zs
SWEEP_SIZE = SW_ARGS + 5


def idle_sweep() -> np.ndarray:
    """A sweep board with no chunk to claim until kuramoto_sine publishes one.

    SW_NEXT starts past any chunk count, so a helper started before the first sweep claims
    nothing (at 0 it would run chunk 0 on the board's empty arguments while the stepping thread
    runs it too: docs/reliability.md).  Between sweeps it stays past the count by itself (every
    claim adds 1).
    """
    sweep = np.zeros(SWEEP_SIZE, dtype=np.int64)
    sweep[SW_NEXT] = 1 << 62
    return sweep


@njit(nogil=True, cache=True)
def take_chunks(sweep, phase, freq, fired, ids, times, sums):
    """Run chunks of the sweep published in ``sweep`` until none is left to claim; return how many ran here."""
    args = sweep[SW_ARGS : SW_ARGS + 5].view(np.float64)
    chunks = sums.shape[0]
    ran = 0
    while True:
        c = atomic_add(sweep, SW_NEXT, 1)  # acquire: the sweep's arguments were stored before SW_NEXT = 0
        if c >= chunks:
            return ran
        kuramoto_chunk(c, phase, freq, fired, ids, times, sums, args)
        atomic_add(sweep, SW_DONE, 1)  # release: the chunk's writes are seen before the count
        ran += 1


@njit(nogil=True, cache=True)
def kuramoto_helper(sweep, phase, freq, fired, ids, times, scratch):
    """A helper thread's share of every sweep until sweep[SW_STOP] is set (Swarm.run starts it).

    It waits spinning, so it lives only through one offline run; the thread that steps the swarm
    never waits for it to start a chunk, only for a chunk it has started (see kuramoto_sine).
    """
    chunks = (phase.size + CHUNK - 1) // CHUNK
    sums = scratch[: 5 * chunks].reshape((chunks, 5))
    while atomic_load(sweep, SW_STOP) == 0:
        if atomic_load(sweep, SW_NEXT) < chunks:
            atomic_add(sweep, SW_HELPED, take_chunks(sweep, phase, freq, fired, ids, times, sums))
    return 0


@njit(nogil=True, cache=True)
def kuramoto_sine(phase, freq, dt, k_hz, l_hz, zc, zs, scratch, fired, ids, times, sweep):
    """One Euler step of Kuramoto with H = sin and the mean field (zc, zs) = mean of e^{2πiφ}.

    ``k_hz`` = K/2π and ``l_hz`` = L/2π turn the rad/s couplings into cycles/s.  The sums over
    the phases this step starts from come back out, so the caller has the next mean field without
    a second pass over memory.  Flashes go to ids/times from 0 (in id order).

    The swarm is cut in chunks of CHUNK fireflies, published in ``sweep`` (SWEEP_SIZE int64 words)
    for this thread and any helpers to claim one by one; this thread waits only for chunks a helper
    has started, so a helper that is late (or none at all) costs nothing.  Each chunk sums its own
    part into ``scratch`` (5 a chunk) and writes its flashes at its own offset; then the chunks'
    sums are added and their flashes packed, in chunk order, so the result is the same bit for bit
    whoever ran which chunk.  Returns (Σcos, Σsin, Σ advance, live count, flash count).
    """
    size = phase.size
    chunks = (size + CHUNK - 1) // CHUNK
    sums = scratch[: 5 * chunks].reshape((chunks, 5))
    args = sweep[SW_ARGS : SW_ARGS + 5].view(np.float64)
    args[0], args[1], args[2], args[3], args[4] = dt, k_hz, l_hz, zc, zs
    sweep[SW_CHUNKS] = chunks
    atomic_store(sweep, SW_DONE, 0)
    atomic_store(sweep, SW_NEXT, 0)  # release: publishes the arguments; claims may start
    take_chunks(sweep, phase, freq, fired, ids, times, sums)
    while atomic_load(sweep, SW_DONE) < chunks:
        pass  # a helper's chunk in flight: at most CHUNK fireflies, ~10 µs
    c_sum = 0.0
    s_sum = 0.0
    advance_sum = 0.0
    live = 0
    n = 0
    for c in range(chunks):
        c_sum += sums[c, 0]
        s_sum += sums[c, 1]
        advance_sum += sums[c, 2]
        live += int(sums[c, 3])
        count = int(sums[c, 4])
        c0 = c * CHUNK
        if n != c0:
            for q in range(count):  # n <= c0: packing downwards never overwrites unread flashes
                ids[n + q] = ids[c0 + q]
                times[n + q] = times[c0 + q]
        n += count
    return c_sum, s_sum, advance_sum, live, n
