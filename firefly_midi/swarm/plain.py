"""The plain engine: the swarm's kernels in vectorised numpy, same names and arguments as ``kernels``.

A fresh install has no machine code for the kernels, and numba takes a minute or more to make it.
The daemon plays on this engine meanwhile (``firefly_midi/handover.py``): ``Swarm(engine="numpy")``
calls these functions where it would call the kernels, on the very same buffers (phases,
frequencies, fired marks, flash ids and times, the generator's counter, the mean-field state), so
the compiled engine takes over at a tick boundary exactly where this one stopped.

Each function follows its kernel's order of operations and the same sines (the kernels' polynomial),
so a tick agrees with the kernel's to rounding (fast-math sums); tests/test_plain_engine.py compares
them.  The curves are in plain_curves.py, the Kuramoto step in plain_kuramoto.py.  What it does not
cover, ``uncovered`` names: delayed coupling of the models whose deliveries set off flashes (pulse,
Mirollo-Strogatz); Ermentrout's only change frequencies, and are covered.  A sparse pulse-type tick
delivers flash by flash in Python: fine at the shipped sizes, slow for a big burst.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from firefly_midi.swarm import reference
from firefly_midi.swarm.kernels import ticks as T
from firefly_midi.swarm.plain_curves import ERMENTROUT, KURAMOTO, PULSE, ermentrout_freq, prc_unit, receive
from firefly_midi.swarm.plain_kuramoto import kuramoto_kick, kuramoto_step, mean_field  # noqa: F401  (the Swarm calls them here)

_CASCADE_PASSES = 64  # as ticks.pulse_couple
DQ_SLOTS = 1  # delay.DQ_SLOTS: dq_meta = [dropped, each slot's count...]


def uncovered(values: dict[str, Any]) -> str:
    """Why the plain engine cannot play ``values`` ("" when it can)."""
    if values["swarm.model"] in ("pulse", "mirollo_strogatz") and values["swarm.delay_ms"] > 0.0:
        return f"delayed coupling (swarm.delay_ms > 0) of the {values['swarm.model']} model"
    return ""


# ------------------------------------------------------------------------------ the pieces
def _fire(who, phase, fired, ids, times, t, n) -> int:
    """Flash ``who`` (ids in order) now, at sub-tick time ``t``: phase 0, marked, appended at ``n``."""
    count = who.size
    phase[who] = 0.0
    fired[who] = 1
    ids[n : n + count] = who
    times[n : n + count] = t
    return n + count


def _receive_into(who, model, prc, desync, phase, freq, fired, m, w, eps, kappa, ms_b, f0, fmin, fmax, t, ids, times, n):
    """Fireflies ``who`` (unfired, live or not) see ``m`` flash-equivalents; those at 1 flash at ``t``."""
    phi, omega = receive(model, prc, desync, phase[who], freq[who], m, w, eps, kappa, ms_b, f0, fmin, fmax)
    freq[who] = omega
    if model == ERMENTROUT:
        return n
    flashing = phi >= 1.0
    phase[who] = np.where(flashing, 0.0, phi)
    return _fire(who[flashing], phase, fired, ids, times, t, n)


def receive_all(model, prc, desync, phase, freq, fired, m, w, eps, kappa, ms_b, f0, fmin, fmax, t, ids, times, n):
    who = np.flatnonzero(fired == 0)
    with np.errstate(invalid="ignore"):
        return _receive_into(who, model, prc, desync, phase, freq, fired, m, w, eps, kappa, ms_b, f0, fmin, fmax, t, ids, times, n)


def receive_subset(model, prc, desync, phase, freq, fired, targets, m, w, eps, kappa, ms_b, f0, fmin, fmax, t, ids, times, n):
    who = targets[(fired[targets] == 0) & ~np.isnan(phase[targets])]
    return _receive_into(who, model, prc, desync, phase, freq, fired, m, w, eps, kappa, ms_b, f0, fmin, fmax, t, ids, times, n)


def clear_fired(fired, ids, n):
    fired[ids[:n]] = 0
    return 0


def advance(phase, freq, dt, fired, ids, times, n):
    """Phases move on by freq·dt; those at or past 1 wrap and flash at their sub-tick time."""
    x = phase + freq * dt
    crossed = np.flatnonzero(x >= 1.0)
    x[crossed] -= 1.0
    phase[:] = x
    count = crossed.size
    ids[n : n + count] = crossed
    times[n : n + count] = 1.0 - x[crossed] / (freq[crossed] * dt)
    fired[crossed] = 1
    return n + count


def desync_same_tick(phase, freq, ids, times, n, dt, s, prc):
    """pulse.desync_same_tick, pairwise over the (at most 64) flashes of the tick."""
    n = min(n, 64)
    who, when = ids[:n], times[:n]
    lag = (when[None, :] - when[:, None]) * (freq[who] * dt)[:, None]
    tie = np.where(who[None, :] > who[:, None], 1e-9, -1e-9)
    lag = np.where(lag == 0.0, tie, lag)
    unit = prc_unit(np.where(lag > 0.0, lag, 1.0 + lag), prc, True)
    np.fill_diagonal(unit, 0.0)
    phase[who] = np.clip(phase[who] + s * unit.sum(axis=1), 0.0, 1.0 - 1e-12)
    return 0


def deliver_sparse(model, prc, desync, phase, freq, fired, table, w, eps, kappa, ms_b, f0, fmin, fmax, ids, times, start, n):
    """Flash by flash to its row of neighbours; those pushed to 1 join the queue (pulse.deliver_sparse)."""
    q = start
    while q < n:
        row = table[ids[q]]
        row = row[row >= 0]
        who = row[(fired[row] == 0) & ~np.isnan(phase[row])]
        n = _receive_into(who, model, prc, desync, phase, freq, fired, 1.0, w, eps, kappa, ms_b, f0, fmin, fmax, times[q], ids, times, n)
        q += 1
    return n


def pulse_couple(codes, coef, phase, freq, fired, table, ids, times, state, n):
    s = T.Settings(*codes[: len(T.CODE_FIELDS)].tolist(), *coef.tolist())
    coupling = (s.w, s.eps, s.kappa, s.ms_b, s.f0, s.fmin, s.fmax)
    if s.desync and s.model == PULSE and n > 1:
        desync_same_tick(phase, freq, ids, times, n, s.dt, s.w * s.eps, s.prc)
    if not s.everyone:
        return deliver_sparse(s.model, s.prc, bool(s.desync), phase, freq, fired, table, *coupling, ids, times, 0, n)
    start, carry = 0, state[T.M_CARRY]
    state[T.M_CARRY] = 0.0
    for _ in range(_CASCADE_PASSES):
        m = n - start + carry
        if m == 0:
            return n
        t = max(0.0, float(times[start:n].max(initial=0.0)))
        stop = n
        n = receive_all(s.model, s.prc, bool(s.desync), phase, freq, fired, float(m), *coupling, t, ids, times, n)
        start, carry = stop, 0.0
    state[T.M_CARRY] = n - start
    return n


# --------------------------------------------------------------------------- random draws
def fill_uniform(out, key, counter):
    out[:] = reference.uniform01(np.uint64(key), np.uint64(counter) + np.arange(out.size, dtype=np.uint64))
    return np.uint64(counter) + np.uint64(out.size)


def rewire_rows(table, lo, hi, key, counter):
    """rng.rewire_rows: row by row, peer by peer, one draw each, never oneself."""
    rows, k = hi - lo, table.shape[1]
    draws = np.empty(rows * k)
    counter = fill_uniform(draws, key, counter)
    peer = (draws * (table.shape[0] - 1)).astype(np.int64).reshape(rows, k)
    own = np.arange(lo, hi)[:, None]
    table[lo:hi] = np.where(peer >= own, peer + 1, peer)
    return counter


def rewire(table, key, counter):
    return rewire_rows(table, 0, table.shape[0], key, counter)


def wander(codes, coef, phase, table, state, rng, index):
    rewire_ticks, noise, dt = int(codes[T.C_REWIRE_TICKS]), float(coef[T.F_NOISE]), float(coef[T.F_DT])
    if rewire_ticks > 0 and index > 0:
        part, rows = index % rewire_ticks, table.shape[0]
        lo, hi = rows * part // rewire_ticks, rows * (part + 1) // rewire_ticks
        if hi > lo:
            rng[1] = rewire_rows(table, lo, hi, rng[0], rng[1])
    if noise > 0.0:
        with np.errstate(invalid="ignore"):
            phase[:] = reference.add_noise(phase, noise * np.sqrt(dt), rng[0], int(rng[1]))
        rng[1] += np.uint64(1)
        state[T.M_STALE] = 1.0


# ------------------------------------------------------------------------------- the tick
def tick(codes, coef, phase, freq, fired, table, ids, times, hist, below, scratch, state, rng, sweep, index, prev_n, external_n):
    """ticks.tick: un-mark the last flashes, wander, step; returns this tick's flash count."""
    clear_fired(fired, ids, prev_n)
    wander(codes, coef, phase, table, state, rng, index)
    if codes[T.C_MODEL] == KURAMOTO:
        return kuramoto_step(codes, coef, phase, freq, fired, table, ids, times, hist, below, scratch, state)
    n = advance(phase, freq, float(coef[T.F_DT]), fired, ids, times, external_n)
    return pulse_couple(codes, coef, phase, freq, fired, table, ids, times, state, n)


def run(ticks, first_index, prev_n, *buffers_and_recorder):
    """offline.run: ``ticks`` ticks in a row, recording as that kernel does."""
    return _run(tick, 14, ticks, first_index, prev_n, buffers_and_recorder)


def _run(step, count, ticks, first_index, prev_n, buffers_and_recorder):
    buffers, record = buffers_and_recorder[:count], buffers_and_recorder[count:]
    sample_every, sample_phase, samples, counts, raster_stride, raster_t, raster_id, raster_n = record
    coef, phase, ids, times = buffers[1], buffers[2], buffers[6], buffers[7]
    dt, n, total, row = float(coef[T.F_DT]), prev_n, 0, 0
    for k in range(ticks):
        index = first_index + k
        n = step(*buffers, index, n, 0)
        counts[k] = n
        total += n
        if raster_stride > 0 and n:
            picked = np.flatnonzero(ids[:n] % raster_stride == 0)[: raster_t.size - raster_n[0]]
            at = raster_n[0]
            raster_t[at : at + picked.size] = (index + times[picked]) * dt
            raster_id[at : at + picked.size] = ids[picked]
            raster_n[0] += picked.size
        if sample_every > 0 and (sample_phase + k + 1) % sample_every == 0:
            c, s, phase_sum, live = mean_field(phase)
            samples[row] = (np.hypot(c, s) / live if live else 0.0, phase_sum, live, total)
            row += 1
    return n, total


# ------------------------------------------------------------------------- delayed deliveries
def queue_flashes(table, ids, times, start, n, delay_ticks, dq_meta, dq_to, dq_t, rng, index):
    """delay.queue_flashes: one delivery per observer (or one for everyone), draws in flash order,
    appended to their slots' rows in that order; a full row drops and counts."""
    flashers = ids[start:n]
    if table.shape[0] == 0:
        receivers, when = np.full(flashers.size, -1, dtype=np.int64), times[start:n]
    else:
        rows = table[flashers]
        seen = rows >= 0
        receivers = rows[seen].astype(np.int64)
        when = np.broadcast_to(times[start:n, None], rows.shape)[seen]
    draws = np.empty(receivers.size)
    rng[1] = fill_uniform(draws, rng[0], rng[1])
    arrival = when + delay_ticks * draws
    whole = np.floor(arrival)
    slot = (index + whole.astype(np.int64)) % dq_to.shape[0]
    order = np.argsort(slot, kind="stable")
    slot, receivers, frac = slot[order], receivers[order], (arrival - whole)[order]
    rank = np.arange(slot.size) - np.searchsorted(slot, slot, side="left")
    at = dq_meta[DQ_SLOTS + slot] + rank
    kept = at < dq_to.shape[1]
    dq_meta[0] += int(np.count_nonzero(~kept))
    dq_to[slot[kept], at[kept]] = receivers[kept]
    if dq_t.shape[1] > 0:
        dq_t[slot[kept], at[kept]] = frac[kept]
    np.add.at(dq_meta, DQ_SLOTS + slot[kept], 1)


def deliver_ermentrout(phase, freq, fired, coupling, dq_meta, dq_to, index):
    """delay.deliver_due for Ermentrout: each delivery to an unflashed firefly moves its frequency
    (as many times as it has deliveries, each the one-flash map), broadcasts after, all at once."""
    slot = index % dq_to.shape[0]
    due = dq_to[slot, : dq_meta[DQ_SLOTS + slot]]
    broadcasts = int(np.count_nonzero(due < 0))
    who, times_seen = np.unique(due[due >= 0], return_counts=True)
    listening = (fired[who] == 0) & ~np.isnan(phase[who])
    who, times_seen = who[listening], times_seen[listening]
    for round_ in range(int(times_seen.max(initial=0))):
        each = who[times_seen > round_]
        freq[each] = ermentrout_freq(phase[each], freq[each], 1.0, *_ermentrout_args(coupling))
    if broadcasts:
        listeners = np.flatnonzero(fired == 0)
        freq[listeners] = ermentrout_freq(phase[listeners], freq[listeners], float(broadcasts), *_ermentrout_args(coupling))


def _ermentrout_args(coupling):
    w, eps, _kappa, _ms_b, f0, fmin, fmax = coupling
    return w, eps, f0, fmin, fmax


def tick_delayed(codes, coef, phase, freq, fired, table, ids, times, state, rng, dq_meta, dq_to, dq_t, sines, index, prev_n, external_n):
    """ticks.tick_delayed for Ermentrout (``uncovered`` keeps the others on the kernels)."""
    clear_fired(fired, ids, prev_n)
    wander(codes, coef, phase, table, state, rng, index)
    s = T.Settings(*codes[: len(T.CODE_FIELDS)].tolist(), *coef.tolist())
    n = advance(phase, freq, s.dt, fired, ids, times, external_n)
    if n:
        queue_flashes(table, ids, times, 0, n, s.delay_ticks, dq_meta, dq_to, dq_t, rng, index)
    state[T.M_RECENT] += (n - state[T.M_RECENT]) * (1.0 / 32.0)
    head = DQ_SLOTS + index % dq_to.shape[0]
    if dq_meta[head] > 0:
        deliver_ermentrout(phase, freq, fired, (s.w, s.eps, s.kappa, s.ms_b, s.f0, s.fmin, s.fmax), dq_meta, dq_to, index)
    dq_meta[head] = 0
    return n


def run_delayed(ticks, first_index, prev_n, *buffers_and_recorder):
    """offline.run_delayed: as ``run``, over ``tick_delayed``."""
    return _run(tick_delayed, 14, ticks, first_index, prev_n, buffers_and_recorder)
