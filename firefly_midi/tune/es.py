"""Evolution strategies with a step size per key: separable natural evolution strategies (SNES,
Schaul, Glasmachers & Schmidhuber 2011) with mirrored sampling, the gradient-following family of
OpenAI's ES (Salimans et al. 2017).

The search is a Gaussian with a mean θ and one σᵢ per coordinate of the unit cube of ``space``.  Each
generation samples P/2 directions ε and evaluates θ ± σ⊙ε (mirrored pairs, which cancel the odd
part of the noise; samples past an edge are reflected back into the cube, and the update uses the
step actually taken).  The costs are replaced by the NES utilities of their ranks (a log-weighted
best half, summing to 0), so only their order matters: a failed or infeasible candidate weighs no
more than the worst ordinary one.  With u the utilities, both parameters follow the natural gradient:
- θ moves by ``lr`` · σ ⊙ Σ uₖεₖ (``sgd``; ``adam`` passes Σ uₖεₖ through Adam first), a step in
  units of the search's own width, so it shrinks as the search closes in;
- σᵢ is multiplied by exp(η_σ/2 · Σ uₖ(εₖᵢ² − 1)): it widens along a key whose long steps win and
  narrows along one whose short steps win.

Issue #19: with one σ for every key, and a rule that reset it every few generations without a new
best (which, in a noisy cost, means most of them), σ never came below ~0.03 of a range, while a 1 BPM
tolerance is ~0.01 of a tempo range: no sample could land in it but by luck.  A σ per key lets the
tempo's keys narrow while the coupling's stays wide, and the update needs no success rule, so noise
makes σ wander rather than reset.  When every σᵢ has collapsed (< ``SIGMA_COLLAPSED``), or after
``PATIENCE`` generations without a new best, the search restarts from the best sample seen with the
first σ, as the CMA-ES wrapper does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from firefly_midi.tune.ga import reflect

OPTIMIZERS = ("sgd", "adam")
SIGMA_RANGE = (1e-4, 0.5)  # in shares of each range
SIGMA_COLLAPSED = 1e-3  # every σᵢ below it: the search has converged (or collapsed on noise)
PATIENCE = 30  # generations without a new best before a restart from it


def utilities(costs: np.ndarray) -> np.ndarray:
    """NES fitness shaping: the best half by log-weights of their ranks, minus 1/n, so they sum to 0
    (lower cost, higher utility; ties by position)."""
    n = costs.size
    weights = np.maximum(0.0, np.log(n / 2 + 1) - np.log(np.arange(1, n + 1)))
    shaped = np.empty(n)
    shaped[np.argsort(costs, kind="stable")] = weights / weights.sum() - 1 / n
    return shaped


class Adam:
    """Kingma & Ba's Adam, for ascent, with bias correction."""

    def __init__(self, dim: int, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.m, self.v, self.t = np.zeros(dim), np.zeros(dim), 0
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def step(self, grad: np.ndarray, lr: float) -> np.ndarray:
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * grad * grad
        m_hat = self.m / (1 - self.beta1**self.t)
        v_hat = self.v / (1 - self.beta2**self.t)
        return lr * m_hat / (np.sqrt(v_hat) + self.eps)


class SNES:
    """Ask for the candidates to evaluate, tell their costs; repeat."""

    name = "es"

    def __init__(
        self,
        dim: int,
        population: int,
        rng: np.random.Generator,
        start: np.ndarray,
        sigma: float = 0.1,
        lr: float = 1.0,
        optimizer: str = "sgd",
        lr_decay: float = 1.0,
    ):
        if population < 2 or population % 2:
            raise ValueError("ES needs an even population of at least 2 (mirrored pairs)")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        self.rng, self.population, self.optimizer = rng, population, optimizer
        self.sigma0, self.lr, self.lr_decay = sigma, lr, lr_decay
        self.eta_sigma = (3 + np.log(dim)) / (5 * np.sqrt(dim))  # SNES's learning rate for σ
        self.mean = np.clip(np.asarray(start, dtype=float), 0.0, 1.0)
        self.sigma = np.full(dim, sigma)
        self.adam = Adam(dim)
        self.best_x, self.best_cost, self.stalled, self.restarts = self.mean.copy(), np.inf, 0, 0
        self._eps = np.zeros((0, dim))

    def ask(self) -> np.ndarray:
        if not self._eps.size:  # a repeated ask (no tell between) asks the same question
            half = self.rng.standard_normal((self.population // 2, self.mean.size))
            self._eps = np.concatenate([half, -half])
        return reflect(self.mean + self.sigma * self._eps)

    def tell(self, costs: np.ndarray) -> None:
        costs = np.asarray(costs, dtype=float)
        candidates = self.ask()
        eps = (candidates - self.mean) / self.sigma  # the steps taken, after reflection
        u = utilities(costs)
        grad_mean, grad_sigma = u @ eps, u @ (eps * eps - 1)
        step = self.adam.step(grad_mean, 1.0) if self.optimizer == "adam" else grad_mean
        self.mean = np.clip(self.mean + self.lr * self.sigma * step, 0.0, 1.0)
        self.sigma = np.clip(self.sigma * np.exp(self.eta_sigma / 2 * grad_sigma), *SIGMA_RANGE)
        self.lr *= self.lr_decay
        self._eps = np.zeros((0, self.mean.size))
        self._restart_if_stuck(candidates, costs)

    def _restart_if_stuck(self, candidates: np.ndarray, costs: np.ndarray) -> None:
        """Back to the best sample, with the first σ, once σ has collapsed or PATIENCE generations found nothing better."""
        i = int(np.argmin(costs))
        if costs[i] < self.best_cost:
            self.best_x, self.best_cost, self.stalled = candidates[i].copy(), float(costs[i]), 0
        else:
            self.stalled += 1
        if self.sigma.max() < SIGMA_COLLAPSED or self.stalled >= PATIENCE:
            self.mean, self.sigma = self.best_x.copy(), np.full(self.mean.size, self.sigma0)
            self.stalled, self.restarts, self.adam = 0, self.restarts + 1, Adam(self.mean.size)

    # ---------------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        adam = {"m": self.adam.m.tolist(), "v": self.adam.v.tolist(), "t": self.adam.t}
        best = {"x": self.best_x.tolist(), "cost": None if not np.isfinite(self.best_cost) else self.best_cost, "stalled": self.stalled}
        return {
            "mean": self.mean.tolist(),
            "lr": self.lr,
            "sigma": self.sigma.tolist(),
            "adam": adam,
            "best": best,
            "restarts": self.restarts,
            "rng": self.rng.bit_generator.state,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.mean, self.sigma = np.array(state["mean"], dtype=float), np.array(state["sigma"], dtype=float)
        self.lr, self.restarts = float(state["lr"]), int(state["restarts"])
        best = state["best"]
        self.best_x, self.stalled = np.array(best["x"], dtype=float), int(best["stalled"])
        self.best_cost = np.inf if best["cost"] is None else float(best["cost"])
        self.adam.m, self.adam.v = np.array(state["adam"]["m"]), np.array(state["adam"]["v"])
        self.adam.t = int(state["adam"]["t"])
        self.rng.bit_generator.state = state["rng"]
        self._eps = np.zeros((0, self.mean.size))
