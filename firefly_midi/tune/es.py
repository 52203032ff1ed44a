"""OpenAI-style evolution strategies (Salimans et al. 2017, "Evolution Strategies as a Scalable
Alternative to Reinforcement Learning").

Each generation samples P/2 Gaussian directions ε and evaluates the mean θ at θ ± σε (antithetic
pairs, which cancel the noise of the even part of the fitness).  The fitnesses are replaced by their
centred ranks (evenly spread over −0.5 … 0.5), so only their order matters: a failed or infeasible
candidate, however bad its cost, weighs no more than the worst ordinary one.  The gradient estimate
ĝ = Σ (s⁺ᵢ − s⁻ᵢ) εᵢ / (P σ) moves θ by Adam (or plain SGD), with the learning rate decaying by
``lr_decay`` per generation.  θ lives in the unit cube of ``space``; candidates are clipped into it.
Fitness here is a cost, so θ climbs the ranks of −cost.

With a fixed σ and learning rate, a swarm's noisy, stepwise costs kept θ wandering around the
answer instead of closing in (issue #19).  So σ follows the search: a generation whose best sample
beats every cost seen so far widens it by ``GROW``, any other narrows it by ``SHRINK`` (a success
rule in the manner of Rechenberg's 1/5th rule), and the learning rate scales with σ, so steps
shrink as the search closes in.  After ``PATIENCE`` generations without a new best, θ moves back to
the best sample seen and σ to its initial value: a restart where the search last did well.
"""

from __future__ import annotations

from typing import Any

import numpy as np

OPTIMIZERS = ("adam", "sgd")
GROW, SHRINK = 1.2, 0.85  # σ after a generation with a new best, and after one without
SIGMA_RANGE = (0.002, 0.3)  # in shares of each range: a 1 BPM tolerance is ~0.004 of a log tempo range
PATIENCE = 6  # generations without a new best before θ goes back to the best sample


def centered_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks of ``values`` mapped evenly onto −0.5 … 0.5 (the lowest gets −0.5); ties by position."""
    ranks = np.empty(values.size)
    ranks[np.argsort(values, kind="stable")] = np.arange(values.size)
    return ranks / max(values.size - 1, 1) - 0.5


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


class OpenAIES:
    """Ask for the candidates to evaluate, tell their costs; repeat."""

    name = "es"

    def __init__(
        self,
        dim: int,
        population: int,
        rng: np.random.Generator,
        start: np.ndarray,
        sigma: float = 0.1,
        lr: float = 0.1,
        optimizer: str = "adam",
        lr_decay: float = 1.0,
    ):
        if population < 2 or population % 2:
            raise ValueError("ES needs an even population of at least 2 (antithetic pairs)")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        self.rng = rng
        self.population, self.sigma, self.lr, self.lr_decay = population, sigma, lr, lr_decay
        self.sigma0, self.optimizer = sigma, optimizer
        self.mean = np.clip(np.asarray(start, dtype=float), 0.0, 1.0)
        self.adam = Adam(dim)
        self.best_x, self.best_cost, self.stalled = self.mean.copy(), np.inf, 0
        self._eps = np.zeros((0, dim))

    def ask(self) -> np.ndarray:
        if not self._eps.size:  # a repeated ask (no tell between) asks the same question
            self._eps = self.rng.standard_normal((self.population // 2, self.mean.size))
        return np.clip(np.concatenate([self.mean + self.sigma * self._eps, self.mean - self.sigma * self._eps]), 0.0, 1.0)

    def tell(self, costs: np.ndarray) -> None:
        costs = np.asarray(costs, dtype=float)
        candidates = self.ask()
        shaped = centered_ranks(-costs)
        half = self.population // 2
        grad = (shaped[:half] - shaped[half:]) @ self._eps / (self.population * self.sigma)
        lr = self.lr * self.sigma / self.sigma0  # steps in proportion to the search's width
        step = self.adam.step(grad, lr) if self.optimizer == "adam" else lr * grad
        self.mean = np.clip(self.mean + step, 0.0, 1.0)
        self.lr *= self.lr_decay
        self._eps = np.zeros((0, self.mean.size))
        self._adapt(candidates, costs)

    def _adapt(self, candidates: np.ndarray, costs: np.ndarray) -> None:
        """σ by the success rule; back to the best sample after PATIENCE generations without one."""
        i = int(np.argmin(costs))
        if costs[i] < self.best_cost:
            self.best_x, self.best_cost, self.stalled = candidates[i].copy(), float(costs[i]), 0
            self.sigma = min(self.sigma * GROW, SIGMA_RANGE[1])
            return
        self.sigma, self.stalled = max(self.sigma * SHRINK, SIGMA_RANGE[0]), self.stalled + 1
        if self.stalled >= PATIENCE:
            self.mean, self.sigma, self.stalled = self.best_x.copy(), self.sigma0, 0
            self.adam = Adam(self.mean.size)

    # ---------------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        adam = {"m": self.adam.m.tolist(), "v": self.adam.v.tolist(), "t": self.adam.t}
        best = {"x": self.best_x.tolist(), "cost": None if not np.isfinite(self.best_cost) else self.best_cost, "stalled": self.stalled}
        return {
            "mean": self.mean.tolist(),
            "lr": self.lr,
            "sigma": self.sigma,
            "adam": adam,
            "best": best,
            "rng": self.rng.bit_generator.state,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.mean = np.array(state["mean"], dtype=float)
        self.lr, self.sigma = float(state["lr"]), float(state["sigma"])
        best = state["best"]
        self.best_x, self.stalled = np.array(best["x"], dtype=float), int(best["stalled"])
        self.best_cost = np.inf if best["cost"] is None else float(best["cost"])
        self.adam.m, self.adam.v = np.array(state["adam"]["m"]), np.array(state["adam"]["v"])
        self.adam.t = int(state["adam"]["t"])
        self.rng.bit_generator.state = state["rng"]
        self._eps = np.zeros((0, self.mean.size))
