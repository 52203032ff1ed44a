"""Pulse-type ticks without delay: phases advance, flashes are seen in their own tick, cascades spread."""

from __future__ import annotations

import numpy as np
from numba import njit

from firefly_midi.swarm.kernels.prc import ERMENTROUT, PULSE, ermentrout_freq, prc_unit, pulse_kick, receive

CROSSING_BLOCK = 64  # advance(): a block where a phase crossed 1 is scanned again, so short ones


@njit(nogil=True, cache=True, inline="always")
def advance(phase, freq, dt, fired, ids, times, n):
    """Move every phase on by freq·dt; record crossings of 1 with their sub-tick time.

    Two passes over blocks of CROSSING_BLOCK: a branch-free one that moves the phases and counts
    those at or past 1 (it vectorises: its indices are unsigned, so numba emits no negative-index
    check, which would stop LLVM's vectoriser), and, only in a block where one crossed, a scan
    that wraps it and records who and when.  Wrapping in the first pass and keeping the span of
    crossings instead costs 1.3x this (800 fireflies, in L1; git show e4e48e4:docs/performance.md).
    """
    size = phase.size
    for start in range(0, size, CROSSING_BLOCK):
        lo = np.uint64(start)
        hi = np.uint64(min(start + CROSSING_BLOCK, size))
        crossed = np.int32(0)  # a 32-bit count vectorises wider than a 64-bit one
        for i in range(lo, hi):
            x = phase[i] + freq[i] * dt
            phase[i] = x
            crossed += np.int32(x >= 1.0)
        if crossed:
            for i in range(lo, hi):  # a NaN (silenced) phase is never >= 1: it never flashes
                x = phase[i]
                if x >= 1.0:
                    x -= 1.0
                    phase[i] = x
                    ids[n] = i
                    times[n] = 1.0 - x / (freq[i] * dt)
                    fired[i] = 1
                    n += 1
    return n


@njit(nogil=True, cache=True, inline="always")
def receive_all(model, prc, desync, phase, freq, fired, m, w, eps, kappa, ms_b, f0, fmin, fmax, t, ids, times, n):
    """Every firefly that has not flashed this tick sees ``m`` flash-equivalents (global coupling).

    Those pushed to threshold flash now, at sub-tick time ``t``, and are absorbed: they ignore the
    rest of this tick's flashes.  The loops are picked per model, outside them, so that each one
    vectorises (one loop dispatching on the model inside ran 4-5x slower); they compute what
    ``receive`` does, bit for bit.  Mirollo-Strogatz's curve calls libm: one firefly at a time.
    """
    if model == ERMENTROUT:  # a flash changes the frequency only: no phase reaches 1 here
        for i in range(phase.size):
            f = freq[i]
            omega = ermentrout_freq(phase[i], f, m, w, eps, f0, fmin, fmax)
            freq[i] = omega if fired[i] == 0 else f
        return n
    if model == PULSE:
        return _receive_all_pulse(prc, desync, phase, freq, fired, m * w * eps, m * w * kappa, fmin, fmax, t, ids, times, n)
    return _receive_all_each(model, prc, desync, phase, freq, fired, m, w, eps, kappa, ms_b, f0, fmin, fmax, t, ids, times, n)


@njit(nogil=True, cache=True, inline="always")
def _receive_all_pulse(prc, desync, phase, freq, fired, s, adapt, fmin, fmax, t, ids, times, n):
    """The pulse model's receive_all in two passes over blocks, as ``advance``: a branch-free one
    that kicks every firefly (those that flashed keep their values through selects) and counts the
    phases it pushed to 1, and a scan, only of a block where one was, that fires them in id order.
    ``s`` = m·w·ε, ``adapt`` = m·w·κ (interval adaptation, 0 for none)."""
    size = phase.size
    for start in range(0, size, CROSSING_BLOCK):
        lo = np.uint64(start)
        hi = np.uint64(min(start + CROSSING_BLOCK, size))
        crossed = np.int32(0)
        if adapt > 0.0:  # interval adaptation: the frequency too (without it, none to compute or store)
            for i in range(lo, hi):
                x, f = phase[i], freq[i]
                phi = pulse_kick(x, s, prc, desync)
                omega = min(max(f * (1.0 + adapt * prc_unit(x, prc, desync)), fmin), fmax)
                seen = fired[i] == 0
                phase[i] = phi if seen else x
                freq[i] = omega if seen else f
                crossed += np.int32(seen and phi >= 1.0)
        else:
            for i in range(lo, hi):
                x = phase[i]
                phi = pulse_kick(x, s, prc, desync)
                seen = fired[i] == 0
                phase[i] = phi if seen else x
                crossed += np.int32(seen and phi >= 1.0)
        if crossed:
            for i in range(lo, hi):
                if fired[i] == 0 and phase[i] >= 1.0:
                    phase[i] = 0.0
                    fired[i] = 1
                    ids[n] = i
                    times[n] = t
                    n += 1
    return n


@njit(nogil=True, cache=True, inline="always")
def _receive_all_each(model, prc, desync, phase, freq, fired, m, w, eps, kappa, ms_b, f0, fmin, fmax, t, ids, times, n):
    for i in range(phase.size):
        if fired[i] == 0:
            phi, omega = receive(model, prc, desync, phase[i], freq[i], m, w, eps, kappa, ms_b, f0, fmin, fmax)
            freq[i] = omega
            if phi >= 1.0:
                phase[i] = 0.0
                fired[i] = 1
                ids[n] = i
                times[n] = t
                n += 1
            else:
                phase[i] = phi
    return n


@njit(nogil=True, cache=True, inline="always")
def receive_subset(model, prc, desync, phase, freq, fired, targets, m, w, eps, kappa, ms_b, f0, fmin, fmax, t, ids, times, n):
    """As receive_all, for the fireflies listed in ``targets`` only (an external flash on a region)."""
    for k in range(targets.size):
        i = targets[k]
        if fired[i] == 0 and phase[i] == phase[i]:
            phi, omega = receive(model, prc, desync, phase[i], freq[i], m, w, eps, kappa, ms_b, f0, fmin, fmax)
            freq[i] = omega
            if phi >= 1.0:
                phase[i] = 0.0
                fired[i] = 1
                ids[n] = i
                times[n] = t
                n += 1
            else:
                phase[i] = phi
    return n


@njit(nogil=True, cache=True, inline="always")
def deliver_sparse(model, prc, desync, phase, freq, fired, table, w, eps, kappa, ms_b, f0, fmin, fmax, ids, times, start, n):
    """Deliver flashes ids[start:n] one by one to their neighbours (``table[j]``, -1 = none).

    A neighbour pushed over threshold joins the queue at the same sub-tick time, so a cascade
    spreads within the tick, and each firefly flashes at most once per tick.
    """
    q = start
    while q < n:
        j = ids[q]
        t = times[q]
        for k in range(table.shape[1]):
            i = table[j, k]
            if i < 0 or fired[i] != 0 or phase[i] != phase[i]:
                continue
            phi, omega = receive(model, prc, desync, phase[i], freq[i], 1.0, w, eps, kappa, ms_b, f0, fmin, fmax)
            freq[i] = omega
            if phi >= 1.0:
                phase[i] = 0.0
                fired[i] = 1
                ids[n] = i
                times[n] = t
                n += 1
            else:
                phase[i] = phi
        q += 1
    return n


@njit(nogil=True, cache=True, inline="always")
def clear_fired(fired, ids, n):
    for k in range(n):
        fired[ids[k]] = 0
    return 0


@njit(nogil=True, cache=True, inline="always")
def latest(times, start, stop):
    t = 0.0
    for k in range(start, stop):
        t = max(t, times[k])
    return t


@njit(nogil=True, cache=True, inline="always")
def desync_same_tick(phase, freq, ids, times, n, dt, s, prc):
    """De-sync: fireflies that flashed in the same tick still see each other, in sub-tick order.

    Absorption is right for sync but would leave two de-syncing fireflies locked together forever:
    the earlier one sees the later flash just after its own (pushed on), the later one sees the
    earlier flash just before its own (held back).  Pairwise, so only for up to 64 flashes a tick.
    """
    n = min(n, 64)
    for a in range(n):
        i = ids[a]
        shift = 0.0
        for b in range(n):
            if b == a:
                continue
            lag = (times[b] - times[a]) * freq[i] * dt
            if lag == 0.0:
                lag = 1e-9 if ids[b] > i else -1e-9
            shift += s * prc_unit(lag if lag > 0.0 else 1.0 + lag, prc, True)
        phase[i] = min(max(phase[i] + shift, 0.0), 1.0 - 1e-12)
    return 0
