"""The swarm as flat arrays, and how a fresh one is drawn from the parameters and a seed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from firefly_midi.params import frequency_bounds


@dataclass
class SwarmState:
    phase: np.ndarray  # float64 cycles in [0, 1); NaN = silenced
    freq: np.ndarray  # float64 Hz, the current (possibly adapted) frequency
    natural: np.ndarray  # float64 Hz, each firefly's natural frequency, kept for revival


def seed_key(seed: int) -> np.uint64:
    """The counter-based generator's key for a seed (splitmix of the seed, never zero)."""
    z = (seed + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return np.uint64((z ^ (z >> 31)) | 1)


def natural_frequencies(values: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Draw N natural frequencies.

    Gaussian and Lorentzian frequencies sit at the distribution's quantiles (i + ½)/N, shuffled:
    a sample without sampling noise, so that small swarms behave like the theory of large ones.
    Pulse-type models keep every frequency positive and under half the tick rate.
    """
    n = values["swarm.n"]
    f0 = values["swarm.freq_hz"]
    spread = values["swarm.freq_spread_hz"]
    dist = values["swarm.freq_dist"]
    q = (np.arange(n) + 0.5) / n
    if dist == "period_uniform":
        fmin, fmax = frequency_bounds(values)
        freq = 1.0 / rng.uniform(1.0 / fmax, 1.0 / fmin, n)
    elif dist == "constant" or spread == 0.0:
        freq = np.full(n, f0)
    elif dist == "uniform":
        freq = rng.uniform(f0 - spread, f0 + spread, n)
    elif dist == "gaussian":
        freq = f0 + spread * _normal_quantile(q)
        rng.shuffle(freq)
    else:  # lorentzian, half-width γ = spread
        freq = f0 + spread * np.tan(np.pi * (q - 0.5))
        rng.shuffle(freq)
    if values["swarm.model"] != "kuramoto":
        ceiling = 0.45 / (values["clock.tick_ms"] / 1000.0)
        freq = np.clip(freq, 0.01 * f0, ceiling)
    return freq.astype(np.float64)


def _normal_quantile(q: np.ndarray) -> np.ndarray:
    # Acklam's rational approximation (relative error < 1.2e-9): no scipy needed for one function.
    a = (
        -3.969683028665376e01,
        2.209460984245205e02,
        -2.759285104469687e02,
        1.383577518672690e02,
        -3.066479806614716e01,
        2.506628277459239e00,
    )
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01, -1.328068155288572e01)
    c = (
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e00,
        -2.549732539343734e00,
        4.374664141464968e00,
        2.938163982698783e00,
    )
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    out = np.empty_like(q)
    low = q < 0.02425
    high = q > 1 - 0.02425
    mid = ~(low | high)
    r = q[mid] - 0.5
    s = r * r
    out[mid] = (
        (((((a[0] * s + a[1]) * s + a[2]) * s + a[3]) * s + a[4]) * s + a[5])
        * r
        / (((((b[0] * s + b[1]) * s + b[2]) * s + b[3]) * s + b[4]) * s + 1)
    )
    for mask, sign, p in ((low, 1.0, q[low]), (high, -1.0, 1 - q[high])):
        t = np.sqrt(-2 * np.log(p))
        out[mask] = (
            sign
            * (((((c[0] * t + c[1]) * t + c[2]) * t + c[3]) * t + c[4]) * t + c[5])
            / ((((d[0] * t + d[1]) * t + d[2]) * t + d[3]) * t + 1)
        )
    return out


def fresh(values: dict[str, Any]) -> tuple[SwarmState, np.random.Generator]:
    """A new swarm with uniformly random phases, and the generator that drew it."""
    rng = np.random.default_rng(values["swarm.seed"])
    natural = natural_frequencies(values, rng)
    phase = rng.random(values["swarm.n"])
    return SwarmState(phase=phase, freq=natural.copy(), natural=natural), rng
