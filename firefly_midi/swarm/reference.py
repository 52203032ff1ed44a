"""Plain-numpy twins of the kernels, written for clarity rather than speed.

Tests compare each kernel against its twin on random states; benchmarks time both side by side.
"""

from __future__ import annotations

import numpy as np

from firefly_midi.swarm.kernels import CONSTANT, ERMENTROUT, LINEAR, MIROLLO_STROGATZ


def advance(phase: np.ndarray, freq: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(new phase, ids that crossed 1, their sub-tick times)."""
    x = phase + freq * dt
    crossed = x >= 1.0
    new = np.where(crossed, x - 1.0, x)
    ids = np.flatnonzero(crossed)
    return new, ids, (1.0 - phase[ids]) / (freq[ids] * dt)


def prc_unit(phi: np.ndarray, prc: int, desync: bool) -> np.ndarray:
    if desync:
        if prc == CONSTANT:
            return np.sign(0.5 - phi)
        if prc == LINEAR:
            return 1.0 - 2.0 * phi
        return np.sin(2 * np.pi * phi)
    if prc == CONSTANT:
        return np.sign(phi - 0.5)
    if prc == LINEAR:
        return np.where(phi < 0.5, -2.0 * phi, np.where(phi > 0.5, 2.0 * (1.0 - phi), 0.0))
    return -np.sin(2 * np.pi * phi)


def pulse_kick(phi: np.ndarray, s: float, prc: int, desync: bool) -> np.ndarray:
    x = phi + s * prc_unit(phi, prc, desync)
    if desync:
        return np.where(phi < 0.5, np.minimum(x, 0.5), np.maximum(x, 0.5))
    return np.maximum(x, 0.0)


def ermentrout_freq(phi, omega, m, w, eps, f0, fmin, fmax):
    """m flashes applied one after another, literally as eq. 1 states (no closed form)."""
    sn = np.sin(2 * np.pi * phi) / (2 * np.pi)
    gp, gm = np.maximum(sn, 0.0), np.maximum(-sn, 0.0)
    for _ in range(int(m)):
        omega = omega + w * (eps * (f0 - omega) + gp * (fmin - omega) + gm * (fmax - omega))
    return omega


def receive(model, prc, desync, phi, omega, m, w, eps, kappa, ms_b, f0, fmin, fmax):
    if model == ERMENTROUT:
        return phi, ermentrout_freq(phi, omega, m, w, eps, f0, fmin, fmax)
    if model == MIROLLO_STROGATZ:
        scale = np.expm1(ms_b)
        x = np.log1p(scale * phi) / ms_b + m * w * eps
        return np.where(x >= 1.0, 1.0, np.expm1(ms_b * np.minimum(x, 1.0)) / scale), omega
    new_phi = pulse_kick(phi, m * w * eps, prc, desync)
    if kappa > 0.0:
        omega = np.clip(omega * (1.0 + m * w * kappa * prc_unit(phi, prc, desync)), fmin, fmax)
    return new_phi, omega


def kuramoto_sine(phase, freq, dt, k_hz, l_hz, zc, zs):
    """(new phase wrapped, new freq) for one Euler step against the mean field (zc, zs)."""
    pull = zs * np.cos(2 * np.pi * phase) - zc * np.sin(2 * np.pi * phase)
    new = phase + dt * (freq + k_hz * pull)
    return new - np.floor(new), freq + dt * l_hz * pull


def kuramoto_sawtooth_pull(phase: np.ndarray) -> np.ndarray:
    """Mean over j≠i of P(θ_j - θ_i), by the O(N²) definition."""
    d = (phase[None, :] - phase[:, None]) % 1.0
    p = np.where(d == 0.0, 0.0, 2.0 * d - 1.0)
    return p.sum(axis=1) / phase.size


def mean_field(phase: np.ndarray) -> complex:
    live = phase[~np.isnan(phase)]
    return complex(np.exp(2j * np.pi * live).mean())


def splitmix64(key: np.uint64, counters: np.ndarray) -> np.ndarray:
    """splitmix64 of key + counter·golden, vectorised over uint64 counters."""
    with np.errstate(over="ignore"):
        z = np.uint64(key) + counters.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform01(key: np.uint64, counters: np.ndarray) -> np.ndarray:
    return (splitmix64(key, counters) >> np.uint64(11)).astype(np.float64) / 9007199254740992.0


def mix32(x: np.ndarray) -> np.ndarray:
    """lowbias32 over uint32 values (as uint64)."""
    mask = np.uint64(0xFFFFFFFF)
    x = x ^ (x >> np.uint64(16))
    x = (x * np.uint64(0x7FEB352D)) & mask
    x = x ^ (x >> np.uint64(15))
    x = (x * np.uint64(0x846CA68B)) & mask
    return x ^ (x >> np.uint64(16))


def add_noise(phase: np.ndarray, sigma: float, key: np.uint64, counter: int) -> np.ndarray:
    """The phases after one tick's noise (kernels.add_noise; its counter moves on by one)."""
    seed = splitmix64(key, np.array([counter], dtype=np.uint64))[0]
    low, high = seed & np.uint64(0xFFFFFFFF), seed >> np.uint64(32)
    ids = np.arange(phase.size, dtype=np.uint64)
    bits = mix32(mix32((ids + low) & np.uint64(0xFFFFFFFF)) ^ high)
    u = (bits >> np.uint64(1)).astype(np.float64) / 2147483648.0
    return np.clip(phase + sigma * np.sqrt(3.0) * (2.0 * u - 1.0), 0.0, 1.0)


def queue_flashes(table, ids, times, start, delay_ticks, pending, key, counter, index):
    """Queue flashes ids[start:] into ``pending`` (absolute tick -> [(receiver, time in tick)]).

    One delivery per observer (receiver -1 = everyone, for global), each with a uniform delay in
    [0, delay_ticks) drawn in flash order.  Returns the advanced counter.
    """
    for q in range(start, len(ids)):
        receivers = [-1] if table.shape[0] == 0 else [int(r) for r in table[ids[q]] if r >= 0]
        for receiver in receivers:
            u = uniform01(key, np.array([counter], dtype=np.uint64))[0]
            counter += 1
            arrival = times[q] + delay_ticks * u
            whole = np.floor(arrival)
            pending.setdefault(index + int(whole), []).append((receiver, arrival - whole))
    return counter


def couple_delayed(model, prc, desync, phase, freq, fired, table, ids, times, coupling, delay_ticks, pending, key, counter, index):
    """One tick of delayed coupling: queue this tick's flashes, then deliver those due, newest first.

    ``coupling`` = (w, eps, kappa, ms_b, f0, fmin, fmax).  Updates phase/freq/fired in place and
    returns (flash ids, flash times, counter), the flashes set off here appended to ``ids``.
    """
    ids, times = list(ids), list(times)
    counter = queue_flashes(table, ids, times, 0, delay_ticks, pending, key, counter, index)
    while pending.get(index):
        start, broadcasts = len(ids), []
        for receiver, t in reversed(pending.pop(index)):
            if receiver < 0:
                broadcasts.append(t)
            elif not fired[receiver] and not np.isnan(phase[receiver]):
                _apply(model, prc, desync, phase, freq, fired, np.array([receiver]), 1, coupling, t, ids, times)
        if broadcasts:
            everyone = np.flatnonzero(fired == 0)
            _apply(model, prc, desync, phase, freq, fired, everyone, len(broadcasts), coupling, max(broadcasts), ids, times)
        counter = queue_flashes(table, ids, times, start, delay_ticks, pending, key, counter, index)
    return ids, times, counter


def _apply(model, prc, desync, phase, freq, fired, who, m, coupling, t, ids, times):
    phi, omega = receive(model, prc, desync, phase[who], freq[who], m, *coupling)
    freq[who] = omega
    flashing = phi >= 1.0
    phase[who] = np.where(flashing, 0.0, phi)
    for i in who[flashing]:
        fired[i] = 1
        ids.append(int(i))
        times.append(t)
