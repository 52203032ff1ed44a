"""OpenAI-style evolution strategies (Salimans et al. 2017, "Evolution Strategies as a Scalable
Alternative to Reinforcement Learning").

Each generation samples P/2 Gaussian directions ε and evaluates the mean θ at θ ± σε (antithetic
pairs, which cancel the noise of the even part of the fitness).  The fitnesses are replaced by their
centred ranks (evenly spread over −0.5 … 0.5), so only their order matters: a failed or infeasible
candidate, however bad its cost, weighs no more than the worst ordinary one.  The gradient estimate
ĝ = Σ (s⁺ᵢ − s⁻ᵢ) εᵢ / (P σ) moves θ by Adam (or plain SGD), with the learning rate decaying by
``lr_decay`` per generation.  θ lives in the unit cube of ``space``; candidates are clipped into it.
Fitness here is a cost, so θ climbs the ranks of −cost.
"""

from __future__ import annotations

from typing import Any

import numpy as np

OPTIMIZERS = ("adam", "sgd")


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
        self.optimizer = optimizer
        self.mean = np.clip(np.asarray(start, dtype=float), 0.0, 1.0)
        self.adam = Adam(dim)
        self._eps = np.zeros((0, dim))

    def ask(self) -> np.ndarray:
        if not self._eps.size:  # a repeated ask (no tell between) asks the same question
            self._eps = self.rng.standard_normal((self.population // 2, self.mean.size))
        return np.clip(np.concatenate([self.mean + self.sigma * self._eps, self.mean - self.sigma * self._eps]), 0.0, 1.0)

    def tell(self, costs: np.ndarray) -> None:
        shaped = centered_ranks(-np.asarray(costs, dtype=float))
        half = self.population // 2
        grad = (shaped[:half] - shaped[half:]) @ self._eps / (self.population * self.sigma)
        step = self.adam.step(grad, self.lr) if self.optimizer == "adam" else self.lr * grad
        self.mean = np.clip(self.mean + step, 0.0, 1.0)
        self.lr *= self.lr_decay
        self._eps = np.zeros((0, self.mean.size))

    # ---------------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        adam = {"m": self.adam.m.tolist(), "v": self.adam.v.tolist(), "t": self.adam.t}
        return {"mean": self.mean.tolist(), "lr": self.lr, "adam": adam, "rng": self.rng.bit_generator.state}

    def restore(self, state: dict[str, Any]) -> None:
        self.mean = np.array(state["mean"], dtype=float)
        self.lr = float(state["lr"])
        self.adam.m, self.adam.v = np.array(state["adam"]["m"]), np.array(state["adam"]["v"])
        self.adam.t = int(state["adam"]["t"])
        self.rng.bit_generator.state = state["rng"]
        self._eps = np.zeros((0, self.mean.size))
