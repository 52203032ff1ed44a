"""One whole tick, instant or delayed.  ``codes`` and ``coef`` pack the loop-invariant settings so the
engine pays one dispatch per tick (see engine.Swarm._configure); the kernels read them by name.

The packing stays two plain arrays: a one-record structured array with the same fields cost numba's
dispatch 0.08 µs more a call (0.36 against 0.28 µs, measured), 4% of a step at N = 800.  Inside a
kernel ``settings_of`` unpacks them into a ``Settings`` namedtuple, which costs nothing: its fields
are the loads the index constants made, and LLVM drops the ones a kernel does not use.
"""

from __future__ import annotations

from collections import namedtuple

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

# codes (int64): model and curve codes (prc.PULSE..., prc.CONSTANT...), 1 for de-sync, 1 for global
# coupling, and the ticks in which every row of a random table is redrawn (0: never).
CODE_FIELDS = ("model", "prc", "desync", "everyone", "rewire_ticks")
C_MODEL, C_PRC, C_DESYNC, C_GLOBAL, C_REWIRE_TICKS = range(len(CODE_FIELDS))
# coef (float64): flash weight, ε, κ, Mirollo-Strogatz's b, f0 and the frequency bounds (Hz), the tick (s),
# noise σ (per √s), Kuramoto's K/2π and L/2π (Hz), and the longest delivery delay (ticks; 0: instant).
COEF_FIELDS = ("w", "eps", "kappa", "ms_b", "f0", "fmin", "fmax", "dt", "noise", "k_hz", "l_hz", "delay_ticks")
F_W, F_EPS, F_KAPPA, F_MS_B, F_F0, F_FMIN, F_FMAX, F_DT, F_NOISE, F_K_HZ, F_L_HZ, F_DELAY_TICKS = range(len(COEF_FIELDS))
Settings = namedtuple("Settings", CODE_FIELDS + COEF_FIELDS)
# state (float64), what a tick leaves for the next: the mean field and mean advance of the last Kuramoto
# step, whether the phases moved since (stale), a cascade's carry, and flashes a tick, lately (delayed path).
M_ZC, M_ZS, M_ADVANCE, M_STALE, M_CARRY, M_RECENT = range(6)


@njit(inline="always")
def settings_of(codes, coef):
    """The packed settings by name (``desync`` and ``everyone`` as booleans)."""
    return Settings(
        codes[C_MODEL],
        codes[C_PRC],
        codes[C_DESYNC] != 0,
        codes[C_GLOBAL] != 0,
        codes[C_REWIRE_TICKS],
        coef[F_W],
        coef[F_EPS],
        coef[F_KAPPA],
        coef[F_MS_B],
        coef[F_F0],
        coef[F_FMIN],
        coef[F_FMAX],
        coef[F_DT],
        coef[F_NOISE],
        coef[F_K_HZ],
        coef[F_L_HZ],
        coef[F_DELAY_TICKS],
    )


@njit(nogil=True, cache=True, inline="always")
def pulse_couple_delayed(codes, coef, phase, freq, fired, table, ids, times, n, state, rng, dq_meta, dq_to, dq_t, sines, index):
    """Queue this tick's flashes, then deliver what is due, queueing the flashes that sets off.

    Ermentrout's deliveries leave phases alone, so the sine each needs is the same all tick long:
    when many are due (a synchronised burst: ~600 a tick at N = 800), one vectorised pass over
    every phase into ``sines`` is cheaper than a sine per delivery, each a chain of ~70 cycles.
    Same values, bit for bit, either way; ``state[M_RECENT]`` (flashes a tick over the last ~32
    ticks, times the observers per flash) estimates how many are due, without counting them.
    """
    s = settings_of(codes, coef)
    delay_ticks = s.delay_ticks
    if n:  # most ticks of a synchronised swarm: no call (its ~80 arguments, arrays passed field by field)
        queue_flashes(table, ids, times, 0, n, delay_ticks, dq_meta, dq_to, dq_t, rng, index)
    head = DQ_SLOTS + index % dq_to.shape[0]
    recent = state[M_RECENT] + (n - state[M_RECENT]) * (1.0 / 32.0)  # flashes a tick, lately
    state[M_RECENT] = recent
    observers = table.shape[1] if table.shape[0] else 1
    tabled = s.model == ERMENTROUT and dq_meta[head] > 0 and 8.0 * recent * observers >= phase.size
    if tabled:
        sine_table(phase, fired, sines)
    walked = 0
    while dq_meta[head] > walked:
        start, end = n, dq_meta[head]
        n = deliver_due(
            s.model,
            s.prc,
            s.desync,
            phase,
            freq,
            fired,
            s.w,
            s.eps,
            s.kappa,
            s.ms_b,
            s.f0,
            s.fmin,
            s.fmax,
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
    s = settings_of(codes, coef)
    model, prc, desync, w, eps, kappa, ms_b, f0, fmin, fmax = s.model, s.prc, s.desync, s.w, s.eps, s.kappa, s.ms_b, s.f0, s.fmin, s.fmax
    if desync and model == PULSE and n > 1:
        desync_same_tick(phase, freq, ids, times, n, s.dt, w * eps, prc)
    if not s.everyone:
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
    settings = settings_of(codes, coef)
    dt, k_hz, l_hz = settings.dt, settings.k_hz, settings.l_hz
    sawtooth = settings.prc == SAWTOOTH
    if settings.everyone and not sawtooth:
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
    if settings.everyone:
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
    s = settings_of(codes, coef)
    rewire_ticks = s.rewire_ticks
    if rewire_ticks > 0 and index > 0:
        part, rows = index % rewire_ticks, table.shape[0]
        lo, hi = rows * part // rewire_ticks, rows * (part + 1) // rewire_ticks
        if hi > lo:
            rng[R_COUNTER] = rewire_rows(table, lo, hi, rng[R_KEY], rng[R_COUNTER])
    if s.noise > 0.0:
        rng[R_COUNTER] = add_noise(phase, s.noise * np.sqrt(s.dt), rng[R_KEY], rng[R_COUNTER])
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
    if settings_of(codes, coef).model == KURAMOTO:
        return kuramoto_step(codes, coef, phase, freq, fired, table, ids, times, hist, below, scratch, state, sweep)
    n = advance(phase, freq, settings_of(codes, coef).dt, fired, ids, times, external_n)
    return pulse_couple(codes, coef, phase, freq, fired, table, ids, times, state, n)


@njit(nogil=True, cache=True, inline="always")
def tick_delayed(codes, coef, phase, freq, fired, table, ids, times, state, rng, dq_meta, dq_to, dq_t, sines, index, prev_n, external_n):
    """``tick`` for a pulse-type model with ``swarm.delay_ms`` > 0: flashes go through the delivery pool.

    The engine picks this or ``tick`` once per call, so the instant path carries neither the pool
    nor a branch on the delay (kuramoto never has delays: its ``delay_ticks`` is 0).
    """
    phase, freq, fired, table, ids, times = borrowed(phase, freq, fired, table, ids, times)
    codes, coef, state, rng, dq_meta, dq_to, dq_t, sines = borrowed(codes, coef, state, rng, dq_meta, dq_to, dq_t, sines)
    clear_fired(fired, ids, prev_n)
    wander(codes, coef, phase, table, state, rng, index)
    n = advance(phase, freq, settings_of(codes, coef).dt, fired, ids, times, external_n)
    return pulse_couple_delayed(codes, coef, phase, freq, fired, table, ids, times, n, state, rng, dq_meta, dq_to, dq_t, sines, index)
