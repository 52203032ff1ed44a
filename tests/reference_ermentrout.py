"""Ermentrout's adaptive-frequency fireflies as Babaoglu et al. (2007) set them up, simulated exactly.

An event-driven simulation in continuous time, written from the model's description alone (docs/
models.md and presets/ermentrout-800.toml), not from the engine: no ticks, no kernels, no shared
constants.  Each firefly's phase φ (cycles) grows at its frequency ω; at φ = 1 it flashes and
starts again from 0.  Its flash is seen by ``observers`` peers drawn at random (with replacement,
never itself), a list each firefly draws afresh once every ``rewire_s`` (at its own offset in that
interval, as an overlay's views change).  Each observer sees the flash after a uniform random delay
in [0, delay_s] and, at its phase φ then, moves only its frequency (eq. 1):

    ω ← ω + ε (f0 − ω) + g⁺(φ) (fmin − ω) + g⁻(φ) (fmax − ω),   g± = max(±sin 2πφ / 2π, 0)

Nothing changes between events, so the next flash is the earliest of each firefly's exactly known
next flash time: there is no step size to be wrong.  The metrics follow docs/models.md, computed
from the exact flash times: r sampled every ``sample_s``; sync time = the first sample after which
r ≥ 0.95 holds to the end; the mean frequency over the run's second half (at most its last 10 s) from
flashes plus phase progress; the emission window = the shortest share of that mean period holding
95% of the last period's flashes.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fireflies:
    """The model's parameters (ermentrout-800's by default)."""

    n: int = 800
    f0: float = 1.0
    fmin: float = 1 / 1.15
    fmax: float = 1 / 0.85
    eps: float = 0.01
    observers: int = 30
    rewire_s: float = 1.0
    delay_s: float = 0.0


@dataclass(frozen=True)
class Outcome:
    sync_time_s: float | None
    emission_window: float
    mean_freq_hz: float
    flashes: int


def simulate(model: Fireflies, seconds: float, seed: int, sample_s: float = 0.01) -> Outcome:
    """Run ``model`` for ``seconds`` from random phases and periods uniform in [1/fmax, 1/fmin]."""
    rng = np.random.default_rng(seed)
    n = model.n
    omega = 1.0 / rng.uniform(1.0 / model.fmax, 1.0 / model.fmin, n)
    next_flash = (1.0 - rng.random(n)) / omega  # absolute time of each firefly's next flash
    offsets = rng.random(n) * model.rewire_s
    rows = np.zeros((n, model.observers), dtype=np.int64)
    drawn_for = np.full(n, np.iinfo(np.int64).min)  # the rewiring interval each row was drawn for: none yet
    pending: list[tuple[float, int]] = []  # delayed deliveries: (arrival time, observer)
    flash_times: list[float] = []
    samples_t = np.arange(sample_s, seconds + sample_s / 2, sample_s)
    r = np.empty(samples_t.size)
    next_sample = 0
    half = max(seconds / 2, seconds - 10.0)
    phase_sum_at_half: float | None = None
    flashes_after_half = 0

    def phases(t: float) -> np.ndarray:
        return 1.0 - (next_flash - t) * omega

    def see(observer: np.ndarray, t: float) -> None:
        """Apply eq. 1 to ``observer`` (distinct ids) for one flash each, seen at time t."""
        phi = 1.0 - (next_flash[observer] - t) * omega[observer]
        s = np.sin(2 * math.pi * phi) / (2 * math.pi)
        w = omega[observer]
        new = w + model.eps * (model.f0 - w) + np.maximum(s, 0) * (model.fmin - w) + np.maximum(-s, 0) * (model.fmax - w)
        omega[observer] = new
        next_flash[observer] = t + (1.0 - phi) / new

    while True:
        j = int(np.argmin(next_flash))
        t_flash = next_flash[j]
        t = min(t_flash, pending[0][0] if pending else math.inf)
        while next_sample < samples_t.size and samples_t[next_sample] <= t:
            r[next_sample] = abs(np.exp(2j * math.pi * phases(samples_t[next_sample])).mean())
            next_sample += 1
        if phase_sum_at_half is None and t >= half:
            phase_sum_at_half = float(phases(half).sum())
        if t > seconds:
            break
        if pending and pending[0][0] <= t_flash:
            arrival, observer = heapq.heappop(pending)
            see(np.array([observer]), arrival)
            continue
        next_flash[j] = t + 1.0 / omega[j]
        flash_times.append(t)
        flashes_after_half += t >= half
        interval = math.floor((t - offsets[j]) / model.rewire_s)
        if interval != drawn_for[j]:
            peers = rng.integers(0, n - 1, model.observers)
            rows[j] = peers + (peers >= j)  # never itself
            drawn_for[j] = interval
        if model.delay_s > 0:
            for observer, delay in zip(rows[j], rng.uniform(0, model.delay_s, model.observers), strict=True):
                heapq.heappush(pending, (t + delay, int(observer)))
            continue
        observers = rows[j]
        while observers.size:  # a peer drawn twice sees the flash twice, one after the other
            distinct, first = np.unique(observers, return_index=True)
            see(distinct, t)
            observers = np.delete(observers, first)

    progress = float(phases(seconds).sum()) - (phase_sum_at_half or 0.0)
    mean_freq = (flashes_after_half + progress) / (n * (seconds - half))
    return Outcome(sync_time(samples_t, r), emission_window(np.array(flash_times), seconds, 1.0 / mean_freq), mean_freq, len(flash_times))


def sync_time(t: np.ndarray, r: np.ndarray, threshold: float = 0.95) -> float | None:
    if r[-1] < threshold:
        return None
    below = np.flatnonzero(r < threshold)
    return float(t[below[-1] + 1]) if below.size else float(t[0])


def emission_window(flash_times: np.ndarray, end: float, period: float, share: float = 0.95) -> float:
    """Shortest arc of the period (as a share of it) holding ``share`` of the last period's flashes."""
    last = np.sort(flash_times[flash_times > end - period] % period)
    m = math.ceil(share * last.size)
    wrapped = np.concatenate([last, last + period])
    return float((wrapped[m - 1 : m - 1 + last.size] - wrapped[: last.size]).min() / period)
