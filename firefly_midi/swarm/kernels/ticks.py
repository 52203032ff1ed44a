"""One whole tick, instant or delayed, driven by two one-record arrays the engine keeps.

``settings`` (a SETTINGS record) holds the loop-invariant settings; ``carried`` (a CARRIED record)
what a tick leaves for the next.  A one-element record array costs numba's dispatch no more than a
plain array, its fields load as the packed array's slots did, and the engine pays one dispatch per
tick (see engine.Swarm._configure).
"""

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

SETTINGS = np.dtype(
    [
        ("model", np.int64),  # PULSE ... KURAMOTO
        ("prc", np.int64),  # CONSTANT ... SAWTOOTH
        ("desync", np.int64),  # 1: the curves push apart
        ("everyone", np.int64),  # 1: global coupling (no neighbour table)
        ("rewire_ticks", np.int64),  # every row of a random table is redrawn once in this many ticks (0: never)
        ("w", np.float64),  # weight of one observed flash
        ("eps", np.float64),  # ε, the pulse coupling
        ("kappa", np.float64),  # κ, interval adaptation
        ("ms_b", np.float64),  # Mirollo-Strogatz's curvature b
        ("f0", np.float64),  # Hz: the natural frequency Ermentrout's ω is pulled back to
        ("fmin", np.float64),
        ("fmax", np.float64),
        ("dt", np.float64),  # s, a tick
        ("noise", np.float64),  # phase diffusion σ, per √s
        ("k_hz", np.float64),  # Kuramoto's K/2π
        ("l_hz", np.float64),  # Kuramoto's frequency coupling L/2π
        ("delay_ticks", np.float64),  # longest delivery delay, in ticks (0: instant)
    ]
)
CARRIED = np.dtype(
    [
        ("zc", np.float64),  # the mean field e^{2πiφ} after the last Kuramoto step...
        ("zs", np.float64),
        ("advance", np.float64),  # ... and the mean phase advance of that step
        ("stale", np.float64),  # nonzero: the phases moved since (noise, damage, a kick): sum them again
        ("cascade", np.float64),  # flashes of a cascade longer than 64 passes, for the next tick
        ("recent", np.float64),  # flashes a tick, lately (the delayed path)
    ]
)


def blank(dtype: np.dtype) -> np.ndarray:
    """A one-record array of ``dtype``, zeroed; ``carried`` starts stale (no mean field yet)."""
    record = np.zeros(1, dtype=dtype)
    if dtype == CARRIED:
        record["stale"] = 1.0
    return record


@njit(nogil=True, cache=True, inline="always")
def pulse_couple_delayed(settings, phase, freq, fired, table, ids, times, n, carried, rng, dq_meta, dq_to, dq_t, sines, index):
    """Queue this tick's flashes, then deliver what is due, queueing the flashes that sets off.

    Ermentrout's deliveries leave phases alone, so the sine each needs is the same all tick long:
    when many are due (a synchronised burst: ~600 a tick at N = 800), one vectorised pass over
    every phase into ``sines`` is cheaper than a sine per delivery, each a chain of ~70 cycles.
    Same values, bit for bit, either way; ``carried.recent`` (flashes a tick over the last ~32
    ticks, times the observers per flash) estimates how many are due, without counting them.
    """
    s, kept = settings[0], carried[0]
    model, prc, desync = s.model, s.prc, s.desync != 0
    w, eps, kappa, ms_b, f0, fmin, fmax, delay_ticks = s.w, s.eps, s.kappa, s.ms_b, s.f0, s.fmin, s.fmax, s.delay_ticks
    if n:  # most ticks of a synchronised swarm: no call (its ~80 arguments, arrays passed field by field)
        queue_flashes(table, ids, times, 0, n, delay_ticks, dq_meta, dq_to, dq_t, rng, index)
    head = DQ_SLOTS + index % dq_to.shape[0]
    recent = kept.recent + (n - kept.recent) * (1.0 / 32.0)  # flashes a tick, lately
    kept.recent = recent
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
def pulse_couple(settings, phase, freq, fired, table, ids, times, carried, n):
    s, kept = settings[0], carried[0]
    model, prc, desync = s.model, s.prc, s.desync != 0
    w, eps, kappa, ms_b, f0, fmin, fmax = s.w, s.eps, s.kappa, s.ms_b, s.f0, s.fmin, s.fmax
    if desync and model == PULSE and n > 1:
        desync_same_tick(phase, freq, ids, times, n, s.dt, w * eps, prc)
    if s.everyone == 0:
        return deliver_sparse(model, prc, desync, phase, freq, fired, table, w, eps, kappa, ms_b, f0, fmin, fmax, ids, times, 0, n)
    start = 0
    carry = kept.cascade
    kept.cascade = 0.0
    for _ in range(64):
        m = n - start + carry
        if m == 0:
            return n
        t = latest(times, start, n)
        stop = n
        n = receive_all(model, prc, desync, phase, freq, fired, float(m), w, eps, kappa, ms_b, f0, fmin, fmax, t, ids, times, n)
        start, carry = stop, 0.0
    kept.cascade = n - start  # a cascade longer than 64 passes goes on next tick
    return n


@njit(nogil=True, cache=True)
def kuramoto_step(settings, phase, freq, fired, table, ids, times, hist, below, scratch, carried, sweep):
    st, kept = settings[0], carried[0]
    dt, k_hz, l_hz = st.dt, st.k_hz, st.l_hz
    sawtooth = st.prc == SAWTOOTH
    if st.everyone != 0 and not sawtooth:
        if kept.stale != 0.0:
            c, s, _, live = mean_field(phase)
            zc, zs = (c / live, s / live) if live else (0.0, 0.0)
            kept.stale = 0.0
        else:  # carried forward from the last step, rotated by the mean advance since (engine doc)
            sn, cs = sincos_2pi(kept.advance)
            zc = kept.zc * cs - kept.zs * sn
            zs = kept.zc * sn + kept.zs * cs
        c, s, adv, live, n = kuramoto_sine(phase, freq, dt, k_hz, l_hz, zc, zs, scratch, fired, ids, times, sweep)
        if live:
            kept.zc, kept.zs, kept.advance = c / live, s / live, adv / live
        return n
    scratch[: phase.size] = phase
    if st.everyone != 0:
        total, live = phase_histogram(phase, hist)
        if live:
            kuramoto_sawtooth(phase, freq, dt, k_hz, l_hz, hist, below, total, live)
    else:
        kuramoto_sparse(sawtooth, phase, freq, dt, k_hz, l_hz, table, scratch)
    return wrap_and_detect(phase, scratch, fired, ids, times, 0)


@njit(nogil=True, cache=True, inline="always")
def wander(settings, phase, table, carried, rng, index):
    """What changes a swarm apart from coupling, at the start of a tick: new peers and noise.

    Peers are redrawn a slice of rows a tick, so that every row is new once per ``rewire_ticks``:
    the peer lists change continuously, as the views of NEWSCAST (the overlay in Babaoglu et al.)
    do.  Redrawing all of them in one tick cost 10-19 ms at N = 10⁵ with 30 peers: a dozen
    skipped ticks every second in the daemon.
    """
    s = settings[0]
    rewire_ticks = s.rewire_ticks
    if rewire_ticks > 0 and index > 0:
        part, rows = index % rewire_ticks, table.shape[0]
        lo, hi = rows * part // rewire_ticks, rows * (part + 1) // rewire_ticks
        if hi > lo:
            rng[R_COUNTER] = rewire_rows(table, lo, hi, rng[R_KEY], rng[R_COUNTER])
    if s.noise > 0.0:
        rng[R_COUNTER] = add_noise(phase, s.noise * np.sqrt(s.dt), rng[R_KEY], rng[R_COUNTER])
        carried[0].stale = 1.0


@njit(nogil=True, cache=True, inline="always")
def tick(settings, phase, freq, fired, table, ids, times, hist, below, scratch, carried, rng, sweep, index, prev_n, external_n):
    """Everything one tick does, in order; returns the number of flashes in ids/times.

    ``prev_n`` flashes of the last tick are un-marked first; ``external_n`` > 0 means the engine
    already applied external flashes into ids/times[:external_n] this tick (pulse-type models).
    Instant coupling only (``swarm.delay_ms`` = 0): delays go through ``tick_delayed``.
    """
    phase, freq, fired, table, ids, times = borrowed(phase, freq, fired, table, ids, times)
    settings, carried, rng, hist, below, scratch, sweep = borrowed(settings, carried, rng, hist, below, scratch, sweep)
    clear_fired(fired, ids, prev_n)
    wander(settings, phase, table, carried, rng, index)
    if settings[0].model == KURAMOTO:
        return kuramoto_step(settings, phase, freq, fired, table, ids, times, hist, below, scratch, carried, sweep)
    n = advance(phase, freq, settings[0].dt, fired, ids, times, external_n)
    return pulse_couple(settings, phase, freq, fired, table, ids, times, carried, n)


@njit(nogil=True, cache=True, inline="always")
def tick_delayed(settings, phase, freq, fired, table, ids, times, carried, rng, dq_meta, dq_to, dq_t, sines, index, prev_n, external_n):
    """``tick`` for a pulse-type model with ``swarm.delay_ms`` > 0: flashes go through the delivery pool.

    The engine picks this or ``tick`` once per call, so the instant path carries neither the pool
    nor a branch on the delay (kuramoto never has delays: its ``delay_ticks`` is 0).
    """
    phase, freq, fired, table, ids, times = borrowed(phase, freq, fired, table, ids, times)
    settings, carried, rng, dq_meta, dq_to, dq_t, sines = borrowed(settings, carried, rng, dq_meta, dq_to, dq_t, sines)
    clear_fired(fired, ids, prev_n)
    wander(settings, phase, table, carried, rng, index)
    n = advance(phase, freq, settings[0].dt, fired, ids, times, external_n)
    return pulse_couple_delayed(settings, phase, freq, fired, table, ids, times, n, carried, rng, dq_meta, dq_to, dq_t, sines, index)
