"""What one firefly does with the flashes it sees: phase-response curves and the pulse-type models."""

from __future__ import annotations

import numpy as np
from numba import njit

from firefly_midi.swarm.kernels.trig import TWO_PI, sincos_2pi

# Model and phase-response-curve codes: the engine maps names to these once.
PULSE, MIROLLO_STROGATZ, ERMENTROUT, KURAMOTO = 0, 1, 2, 3
CONSTANT, LINEAR, SINE, SAWTOOTH = 0, 1, 2, 3


@njit(inline="always")
def prc_unit(phi: float, prc: int, desync: bool) -> float:
    """Phase shift per unit of coupling for a flash observed at own phase ``phi``."""
    if desync:
        if prc == CONSTANT:
            return 1.0 if phi < 0.5 else (-1.0 if phi > 0.5 else 0.0)
        if prc == LINEAR:  # strongest for flashes near one's own, nothing for the opposite phase
            return 1.0 - 2.0 * phi
        return sincos_2pi(phi)[0]
    if prc == CONSTANT:
        return -1.0 if phi < 0.5 else (1.0 if phi > 0.5 else 0.0)
    if prc == LINEAR:
        return -2.0 * phi if phi < 0.5 else (2.0 * (1.0 - phi) if phi > 0.5 else 0.0)
    return -sincos_2pi(phi)[0]


@njit(inline="always")
def pulse_kick(phi: float, s: float, prc: int, desync: bool) -> float:
    """Phase after flashes worth ``s`` (= ε × flashes × weight) arrive at once.

    Sync curves push away from ½, towards 0 (clamped: one cannot move before one's own last flash)
    or towards 1 (reaching it means flashing now).  De-sync curves pull towards ½ and stop there,
    so a strong burst never overshoots the attractor it is heading for.
    """
    x = phi + s * prc_unit(phi, prc, desync)
    if desync:
        return min(x, 0.5) if phi < 0.5 else max(x, 0.5)
    return max(x, 0.0)


@njit(inline="always")
def ermentrout_freq(phi: float, omega: float, m: float, w: float, eps: float, f0: float, fmin: float, fmax: float) -> float:
    """Frequency after ``m`` flashes at phase ``phi`` (Babaoglu et al. 2007, eq. 1), composed exactly.

    One flash maps ω to ω + a(ω* - ω) with a = w(ε + g⁺ + g⁻); m of them at the same phase leave
    ω* + (1 - a)^m (ω - ω*).
    """
    return ermentrout_freq_at(sincos_2pi(phi)[0] / TWO_PI, omega, m, w, eps, f0, fmin, fmax)


@njit(inline="always")
def ermentrout_freq_at(sn: float, omega: float, m: float, w: float, eps: float, f0: float, fmin: float, fmax: float) -> float:
    """``ermentrout_freq`` given ``sn`` = sin(2πφ)/2π (from a table of a tick's sines, or computed)."""
    gp = max(sn, 0.0)
    gm = max(-sn, 0.0)
    a = w * (eps + gp + gm)
    if a <= 0.0:
        return omega
    if m == 1.0 and a <= 1.0:  # one flash (every sparse delivery): eq. 1 as written, without the division below
        return omega + w * (eps * (f0 - omega) + gp * (fmin - omega) + gm * (fmax - omega))
    target = (eps * f0 + gp * fmin + gm * fmax) / (eps + gp + gm)
    keep = max(1.0 - a, 0.0)
    if m != 1.0:  # pow(x, 1) is x exactly: one flash (the sparse case) skips the libm call
        keep = keep**m
    return target + keep * (omega - target)


@njit(inline="always")
def receive(model, prc, desync, phi, omega, m, w, eps, kappa, ms_b, f0, fmin, fmax):
    """(phase, frequency) of one firefly after ``m`` flash-equivalents, for the pulse-type models."""
    if model == ERMENTROUT:
        return phi, ermentrout_freq(phi, omega, m, w, eps, f0, fmin, fmax)
    if model == MIROLLO_STROGATZ:
        scale = np.expm1(ms_b)
        x = np.log1p(scale * phi) / ms_b + m * w * eps
        return (1.0 if x >= 1.0 else np.expm1(ms_b * x) / scale), omega
    new_phi = pulse_kick(phi, m * w * eps, prc, desync)
    if kappa > 0.0:
        omega = min(max(omega * (1.0 + m * w * kappa * prc_unit(phi, prc, desync)), fmin), fmax)
    return new_phi, omega
