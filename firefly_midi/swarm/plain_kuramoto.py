"""The plain engine's Kuramoto step and kick, over arrays (twins of kernels/kuramoto.py, board.py and
ticks.kuramoto_step: the same mean field carried between ticks, the same histogram ranks)."""

from __future__ import annotations

import numpy as np

from firefly_midi.swarm.kernels import ticks as T
from firefly_midi.swarm.plain_curves import SAWTOOTH, sincos_2pi


def kuramoto_sine(phase, freq, dt, k_hz, l_hz, zc, zs, fired, ids, times):
    """One Euler step against the mean field (zc, zs), as board.kuramoto_sine; returns (c, s, advance, live, n)."""
    ok = ~np.isnan(phase)
    sn, cs = sincos_2pi(np.where(ok, phase, 0.0))
    pull = zs * cs - zc * sn
    d = dt * (freq + k_hz * pull)
    freq += np.where(ok, dt * l_hz * pull, 0.0)
    y = phase + d
    phase[:] = y - np.floor(y)
    crossed = np.flatnonzero((d > 0.0) & (phase < d))
    count = crossed.size
    ids[:count] = crossed
    times[:count] = 1.0 - phase[crossed] / d[crossed]
    fired[crossed] = 1
    return cs[ok].sum(), sn[ok].sum(), d[ok].sum(), int(ok.sum()), count


def mean_field(phase):
    ok = ~np.isnan(phase)
    y = np.where(ok, phase, 0.0)
    sn, cs = sincos_2pi(y)
    return float(cs[ok].sum()), float(sn[ok].sum()), float(y.sum()), int(ok.sum())


def kuramoto_sawtooth(phase, freq, dt, k_hz, l_hz, counts, below):
    """kuramoto.kuramoto_sawtooth with its histogram ranks (phase_histogram's too)."""
    bins = counts.size
    ok = ~np.isnan(phase)
    x = phase[ok]
    b = np.minimum((x * bins).astype(np.int64), bins - 1)
    counts[:] = np.bincount(b, minlength=bins)
    live = x.size
    if not live:
        return
    below[0] = 0
    np.cumsum(counts[:-1], out=below[1:])
    rank = below[b] + (counts[b] - 1) * (x * bins - b)
    pull = (2.0 * (x.sum() - live * x + rank) - (live - 1)) / live
    phase[ok] = x + dt * (freq[ok] + k_hz * pull)
    freq[ok] += dt * l_hz * pull


def kuramoto_sparse(sawtooth, phase, freq, dt, k_hz, l_hz, table, scratch):
    x = scratch[: phase.size]
    peer = x[np.maximum(table, 0)]
    seen = (table >= 0) & ~np.isnan(peer)
    d = peer - x[:, None]
    if sawtooth:
        d = d - np.floor(d)
        term = np.where(d == 0.0, 0.0, 2.0 * d - 1.0)
    else:
        term = sincos_2pi(d)[0]
    count = seen.sum(axis=1)
    pull = np.where(seen, term, 0.0).sum(axis=1) / np.maximum(count, 1)
    live = ~np.isnan(x)
    phase[live] = x[live] + dt * (freq[live] + k_hz * pull[live])
    freq[live] += dt * l_hz * pull[live]


def wrap_and_detect(phase, before, fired, ids, times, n):
    x = phase.copy()
    up = np.flatnonzero(x >= 1.0)
    wraps = np.floor(x[up])
    step = x[up] - before[up]
    with np.errstate(invalid="ignore", divide="ignore"):
        when = np.where(step > 0.0, np.clip((wraps - before[up]) / step, 0.0, 1.0), 1.0)
    down = x < 0.0
    phase[down] = x[down] - np.floor(x[down])
    phase[up] = x[up] - wraps
    count = up.size
    ids[n : n + count] = up
    times[n : n + count] = when
    fired[up] = 1
    return n + count


def kuramoto_step(codes, coef, phase, freq, fired, table, ids, times, hist, below, scratch, state):
    s = T.Settings(*codes[: len(T.CODE_FIELDS)].tolist(), *coef.tolist())
    sawtooth = s.prc == SAWTOOTH
    if s.everyone and not sawtooth:
        if state[T.M_STALE] != 0.0:
            c, sn, _, live = mean_field(phase)
            zc, zs = (c / live, sn / live) if live else (0.0, 0.0)
            state[T.M_STALE] = 0.0
        else:  # carried forward, rotated by the mean advance since (as ticks.kuramoto_step)
            rot_s, rot_c = sincos_2pi(np.array([state[T.M_ADVANCE]]))
            zc = state[T.M_ZC] * rot_c[0] - state[T.M_ZS] * rot_s[0]
            zs = state[T.M_ZC] * rot_s[0] + state[T.M_ZS] * rot_c[0]
        c, sn, adv, live, n = kuramoto_sine(phase, freq, s.dt, s.k_hz, s.l_hz, zc, zs, fired, ids, times)
        if live:
            state[T.M_ZC], state[T.M_ZS], state[T.M_ADVANCE] = c / live, sn / live, adv / live
        return n
    scratch[: phase.size] = phase
    if s.everyone:
        kuramoto_sawtooth(phase, freq, s.dt, s.k_hz, s.l_hz, hist, below)
    else:
        kuramoto_sparse(sawtooth, phase, freq, s.dt, s.k_hz, s.l_hz, table, scratch)
    return wrap_and_detect(phase, scratch, fired, ids, times, 0)


def kuramoto_kick(phase, targets, everyone, amount, sawtooth):
    who = np.arange(phase.size) if everyone else targets
    x = phase[who]
    pull = np.where(x == 0.0, 0.0, 2.0 * (1.0 - x) - 1.0) if sawtooth else -sincos_2pi(x)[0]
    phase[who] = np.where(np.isnan(x), x, np.clip(x + amount * pull, 0.0, 1.0 - 1e-12))
    return 0
