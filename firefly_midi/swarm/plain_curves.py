"""The plain engine's curves: phase responses and the pulse-type models' receive, over arrays
(twins of kernels/prc.py and kernels/trig.py's sines, the same polynomial)."""

from __future__ import annotations

import numpy as np

from firefly_midi.swarm.kernels import prc as _prc
from firefly_midi.swarm.kernels import trig

PULSE, MIROLLO_STROGATZ, ERMENTROUT, KURAMOTO = _prc.PULSE, _prc.MIROLLO_STROGATZ, _prc.ERMENTROUT, _prc.KURAMOTO
CONSTANT, LINEAR, SAWTOOTH = _prc.CONSTANT, _prc.LINEAR, _prc.SAWTOOTH


def sincos_2pi(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """trig.sincos_2pi over an array: the same polynomial, so the same values to rounding."""
    y = x - np.floor(x + 0.5)
    fold = np.abs(y) > 0.25
    z = np.where(fold, np.copysign(0.5, y) - y, y)
    r = z * trig.TWO_PI
    u = r * r
    s = r + r * u * (trig.S3 + u * (trig.S5 + u * (trig.S7 + u * (trig.S9 + u * trig.S11))))
    c = 1.0 + u * (trig.C2 + u * (trig.C4 + u * (trig.C6 + u * (trig.C8 + u * (trig.C10 + u * trig.C12)))))
    return s, np.where(fold, -c, c)


def prc_unit(phi: np.ndarray, prc: int, desync: bool) -> np.ndarray:
    if prc == CONSTANT:
        sign = np.where(phi < 0.5, -1.0, np.where(phi > 0.5, 1.0, 0.0))
        return -sign if desync else sign
    if prc == LINEAR:
        if desync:
            return 1.0 - 2.0 * phi
        return np.where(phi < 0.5, -2.0 * phi, np.where(phi > 0.5, 2.0 * (1.0 - phi), 0.0))
    sine = sincos_2pi(phi)[0]
    return sine if desync else -sine


def pulse_kick(phi: np.ndarray, s: float, prc: int, desync: bool) -> np.ndarray:
    x = phi + s * prc_unit(phi, prc, desync)
    if desync:
        return np.where(phi < 0.5, np.minimum(x, 0.5), np.maximum(x, 0.5))
    return np.maximum(x, 0.0)


def ermentrout_freq(phi, omega, m, w, eps, f0, fmin, fmax):
    sn = sincos_2pi(phi)[0] / trig.TWO_PI
    gp, gm = np.maximum(sn, 0.0), np.maximum(-sn, 0.0)
    a = w * (eps + gp + gm)
    with np.errstate(invalid="ignore", divide="ignore"):
        one = omega + w * (eps * (f0 - omega) + gp * (fmin - omega) + gm * (fmax - omega))
        target = (eps * f0 + gp * fmin + gm * fmax) / (eps + gp + gm)
        keep = np.maximum(1.0 - a, 0.0)
        if m != 1.0:
            keep = keep**m
        composed = target + keep * (omega - target)
    exact = one if m == 1.0 else composed
    return np.where(a <= 0.0, omega, np.where(a <= 1.0, exact, composed))


def receive(model, prc, desync, phi, omega, m, w, eps, kappa, ms_b, f0, fmin, fmax):
    """(phases, frequencies) after ``m`` flash-equivalents, for arrays of fireflies (prc.receive)."""
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
