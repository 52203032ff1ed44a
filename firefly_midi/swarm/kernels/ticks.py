"""One whole tick, instant or delayed.  ``codes`` and ``coef`` pack the loop-invariant settings so the
engine pays one dispatch per tick (see engine.Swarm._configure)."""

from __future__ import annotations

import numpy as np
from numba import njit

from firefly_midi.swarm.kernels.board import kuramoto_sine
from firefly_midi.swarm.kernels.delay import DQ_SLOTS, deliver_due, queue_flashes, sine_table
from firefly_midi.swarm.kernels.intrinsics import borrowed
from firefly_midi.swarm.kernels.kuramoto import kuramoto_sawtooth, kuramoto_sparse, phase_histogram, wrap_and_detect
from firefly_midi.swarm.kernels.prc import ERMENTROUT, KURAMOTO, PULSE, SAWTOOTH
from firefly_midi.swarm.kernels.pulse import advance, clear_fired, deliver_sparse, desync_same_tick, latest, receive_all
from firefly_midi.swarm.kernels.rng import R_COUNTER, R_KEY, add_noise, rewire_rows
from firefly_midi.swarm.kernels.trig import mean_field, sincos_2pi

C_MODEL, C_PRC, C_DESYNC, C_GLOBAL, C_REWIRE_TICKS = 0, 1, 2, 3, 4
F_W, F_EPS, F_KAPPA, F_MS_B, F_F0, F_FMIN, F_FMAX, F_DT, F_NOISE, F_K_HZ, F_L_HZ, F_DELAY_TICKS = range(12)
M_ZC, M_ZS, M_ADVANCE, M_STALE, M_CARRY, M_RECENT = range(6)  # M_RECENT: flashes a tick, lately (delayed path)


@njit(nogil=True, cache=True, inline="always")
def pulse_couple_delayed(codes, coef, phase, freq, fired, table, ids, times, n, state, rng, dq_meta, dq_to, dq_t, sines, index):
    """Queue this tick's flashes, then deliver what is due, queueing the flashes that sets off.

    Ermentrout's deliveries leave phases alone, so the sine each needs is the same all tick long:
    when many are due (a synchronised burst: ~600 a tick at N = 800), one vectorised pass over
    every phase into ``sines`` is cheaper than a sine per delivery, each a chain of ~70 cycles.
    Same values, bit for bit, either way; ``state[M_RECENT]`` (flashes a tick over the last ~32
    ticks, times the observers per flash) estimates how many are due, without counting them.
    """
    model, prc, desync = codes[C_MODEL], codes[C_PRC], codes[C_DESYNC] != 0
    w, eps, kappa, ms_b = coef[F_W], coef[F_EPS], coef[F_KAPPA], coef[F_MS_B]
    f0, fmin, fmax, delay_ticks = coef[F_F0], coef[F_FMIN], coef[F_FMAX], coef[F_DELAY_TICKS]
    if n:  # most ticks of a synchronised swarm: no call (its ~80 arguments, arrays passed field by field)
        queue_flashes(table, ids, times, 0, n, delay_ticks, dq_meta, dq_to, dq_t, rng, index)
    head = DQ_SLOTS + index % dq_to.shape[0]
    recent = state[M_RECENT] + (n - state[M_RECENT]) * (1.0 / 32.0)  # flashes a tick, lately
    state[M_RECENT] = recent
    observers = table.shape[1] if table.shape[0] else 1
    tabled = model == ERMENTROUT and dq_meta[head] > 0 and 8.0 * recent * observers >= phase.size
    if tabled:
        sine_table(phase, fired, sines)
    walked = 0
    while dq_meta[head] > walked:
        start, end = n, dq_meta[head]
        n = deliver_due(
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
            walked,
            sines,
            tabled,
        )
        walked = end
        if n > start:
            queue_flashes(table, ids, times, start, n, delay_ticks, dq_meta, dq_to, dq_t, rng, index)
    dq_meta[head] = 0  # the slot is free for the tick ``slots`` from now
    return n


@njit(nogil=True, cache=True, inline="always")
def pulse_couple(codes, coef, phase, freq, fired, table, ids, times, state, n):
    model, prc, desync = codes[C_MODEL], codes[C_PRC], codes[C_DESYNC] != 0
    w, eps, kappa, ms_b = coef[F_W], coef[F_EPS], coef[F_KAPPA], coef[F_MS_B]
    f0, fmin, fmax = coef[F_F0], coef[F_FMIN], coef[F_FMAX]
    if desync and model == PULSE and n > 1:
        desync_same_tick(phase, freq, ids, times, n, coef[F_DT], w * eps, prc)
    if codes[C_GLOBAL] == 0:
        return deliver_sparse(model, prc, desync, phase, freq, fired, table, w, eps, kappa, ms_b, f0, fmin, fmax, ids, times, 0, n)
    start = 0
    carry = state[M_CARRY]
    state[M_CARRY] = 0.0
    for _ in range(64):
        m = n - start + carry
        if m == 0:
            return n
        t = latest(times, start, n)
        stop = n
        n = receive_all(model, prc, desync, phase, freq, fired, float(m), w, eps, kappa, ms_b, f0, fmin, fmax, t, ids, times, n)
        start, carry = stop, 0.0
    state[M_CARRY] = n - start  # a cascade longer than 64 passes goes on next tick
    return n


@njit(nogil=True, cache=True)
def kuramoto_step(codes, coef, phase, freq, fired, table, ids, times, hist, below, scratch, state, sweep):
    dt, k_hz, l_hz = coef[F_DT], coef[F_K_HZ], coef[F_L_HZ]
    sawtooth = codes[C_PRC] == SAWTOOTH
    if codes[C_GLOBAL] != 0 and not sawtooth:
        if state[M_STALE] != 0.0:
            c, s, _, live = mean_field(phase)
            zc, zs = (c / live, s / live) if live else (0.0, 0.0)
            state[M_STALE] = 0.0
        else:  # carried forward from the last step, rotated by the mean advance since (engine doc)
            sn, cs = sincos_2pi(state[M_ADVANCE])
            zc = state[M_ZC] * cs - state[M_ZS] * sn
            zs = state[M_ZC] * sn + state[M_ZS] * cs
        c, s, adv, live, n = kuramoto_sine(phase, freq, dt, k_hz, l_hz, zc, zs, scratch, fired, ids, times, sweep)
        if live:
            state[M_ZC], state[M_ZS], state[M_ADVANCE] = c / live, s / live, adv / live
        return n
    scratch[: phase.size] = phase
    if codes[C_GLOBAL] != 0:
        total, live = phase_histogram(phase, hist)
        if live:
            kuramoto_sawtooth(phase, freq, dt, k_hz, l_hz, hist, below, total, live)
    else:
        kuramoto_sparse(sawtooth, phase, freq, dt, k_hz, l_hz, table, scratch)
    return wrap_and_detect(phase, scratch, fired, ids, times, 0)


@njit(nogil=True, cache=True, inline="always")
def wander(codes, coef, phase, table, state, rng, index):
    """What changes a swarm apart from coupling, at the start of a tick: new peers and noise.

    Peers are redrawn a slice of rows a tick, so that every row is new once per ``rewire_ticks``:
    the peer lists change continuously, as the views of NEWSCAST (the overlay in Babaoglu et al.)
    do.  Redrawing all of them in one tick cost 10-19 ms at N = 10⁵ with 30 peers: a dozen
    skipped ticks every second in the daemon.
    """
    rewire_ticks = codes[C_REWIRE_TICKS]
    if rewire_ticks > 0 and index > 0:
        part, rows = index % rewire_ticks, table.shape[0]
        lo, hi = rows * part // rewire_ticks, rows * (part + 1) // rewire_ticks
        if hi > lo:
            rng[R_COUNTER] = rewire_rows(table, lo, hi, rng[R_KEY], rng[R_COUNTER])
    if coef[F_NOISE] > 0.0:
        rng[R_COUNTER] = add_noise(phase, coef[F_NOISE] * np.sqrt(coef[F_DT]), rng[R_KEY], rng[R_COUNTER])
        state[M_STALE] = 1.0


@njit(nogil=True, cache=True, inline="always")
def tick(codes, coef, phase, freq, fired, table, ids, times, hist, below, scratch, state, rng, sweep, index, prev_n, external_n):
    """Everything one tick does, in order; returns the number of flashes in ids/times.

    ``prev_n`` flashes of the last tick are un-marked first; ``external_n`` > 0 means the engine
    already applied external flashes into ids/times[:external_n] this tick (pulse-type models).
    Instant coupling only (``swarm.delay_ms`` = 0): delays go through ``tick_delayed``.
    """
    phase, freq, fired, table, ids, times = borrowed(phase, freq, fired, table, ids, times)
    codes, coef, state, rng, hist, below, scratch, sweep = borrowed(codes, coef, state, rng, hist, below, scratch, sweep)
    clear_fired(fired, ids, prev_n)
    wander(codes, coef, phase, table, state, rng, index)
    if codes[C_MODEL] == KURAMOTO:
        return kuramoto_step(codes, coef, phase, freq, fired, table, ids, times, hist, below, scratch, state, sweep)
    n = advance(phase, freq, coef[F_DT], fired, ids, times, external_n)
    return pulse_couple(codes, coef, phase, freq, fired, table, ids, times, state, n)


@njit(nogil=True, cache=True, inline="always")
def tick_delayed(codes, coef, phase, freq, fired, table, ids, times, state, rng, dq_meta, dq_to, dq_t, sines, index, prev_n, external_n):
    """``tick`` for a pulse-type model with ``swarm.delay_ms`` > 0: flashes go through the delivery pool.

    The engine picks this or ``tick`` once per call, so the instant path carries neither the pool
    nor a branch on the delay (kuramoto never has delays: its coef[F_DELAY_TICKS] is 0).
    """
    phase, freq, fired, table, ids, times = borrowed(phase, freq, fired, table, ids, times)
    codes, coef, state, rng, dq_meta, dq_to, dq_t, sines = borrowed(codes, coef, state, rng, dq_meta, dq_to, dq_t, sines)
    clear_fired(fired, ids, prev_n)
    wander(codes, coef, phase, table, state, rng, index)
    n = advance(phase, freq, coef[F_DT], fired, ids, times, external_n)
    return pulse_couple_delayed(codes, coef, phase, freq, fired, table, ids, times, n, state, rng, dq_meta, dq_to, dq_t, sines, index)
