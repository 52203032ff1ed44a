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


def uniform01(key: np.uint64, counters: np.ndarray) -> np.ndarray:
    """splitmix64 of key + counter·golden, vectorised over uint64 counters."""
    with np.errstate(over="ignore"):
        z = np.uint64(key) + counters.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / 9007199254740992.0
