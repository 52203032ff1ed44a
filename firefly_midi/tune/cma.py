"""CMA-ES (Hansen's covariance matrix adaptation), from the ``cmaes`` package, behind the tuner's
ask/tell interface, with restarts.

CMA-ES samples a Gaussian around its mean, moves the mean toward the better half of the samples and
learns the covariance and the step size σ from the path the mean takes: a search that stretches
along the valleys of the cost and shrinks as it closes in, with no step size or learning rate to
set.  The unit cube of ``space`` is its box (the library resamples candidates outside it).

A swarm's metrics are noisy, so σ can collapse onto a point that only looked good on the search
seeds; when the library's own stopping tests fire (σ or the spread of costs too small), the search
restarts from the best point told so far with the initial σ, keeping the budget in use.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from cmaes import CMA


class CMAES:
    """Ask for the candidates to evaluate, tell their costs; repeat."""

    name = "cmaes"

    def __init__(self, dim: int, population: int, rng: np.random.Generator, start: np.ndarray, sigma: float = 0.2):
        if population < 2:
            raise ValueError("CMA-ES needs a population of at least 2")
        self.rng, self.population, self.sigma = rng, population, sigma
        self.best_x, self.best_cost = np.clip(np.asarray(start, dtype=float), 0.0, 1.0), np.inf
        self.restarts = 0
        self.cma = self._fresh(self.best_x)
        self._asked = np.zeros((0, dim))

    def _fresh(self, mean: np.ndarray) -> CMA:
        bounds = np.tile([0.0, 1.0], (mean.size, 1))
        seed = int(self.rng.integers(2**31 - 1))
        return CMA(mean=mean, sigma=self.sigma, bounds=bounds, seed=seed, population_size=self.population)

    def ask(self) -> np.ndarray:
        if not self._asked.size:  # a repeated ask (no tell between) asks the same question
            self._asked = np.array([self.cma.ask() for _ in range(self.population)])
        return self._asked.copy()

    def tell(self, costs: np.ndarray) -> None:
        costs = np.asarray(costs, dtype=float)
        self.cma.tell(list(zip(self._asked, costs, strict=True)))
        i = int(np.argmin(costs))
        if costs[i] < self.best_cost:
            self.best_x, self.best_cost = self._asked[i].copy(), float(costs[i])
        self._asked = np.zeros((0, self.best_x.size))
        if self.cma.should_stop():
            self.cma, self.restarts = self._fresh(self.best_x), self.restarts + 1

    # ---------------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        return {
            "cma": {name: _encode(value) for name, value in vars(self.cma).items()},
            "best_x": self.best_x.tolist(),
            "best_cost": None if not np.isfinite(self.best_cost) else self.best_cost,
            "restarts": self.restarts,
            "rng": self.rng.bit_generator.state,
        }

    def restore(self, state: dict[str, Any]) -> None:
        for name, value in state["cma"].items():
            setattr(self.cma, name, _decode(value))
        self.best_x = np.array(state["best_x"], dtype=float)
        self.best_cost = np.inf if state["best_cost"] is None else float(state["best_cost"])
        self.restarts = int(state["restarts"])
        self.rng.bit_generator.state = state["rng"]
        self._asked = np.zeros((0, self.best_x.size))


# The library keeps its state in plain attributes: numbers, arrays and a legacy RandomState.  They are
# written as tagged JSON so that a checkpoint stays text, like the other optimisers' (no pickle).
def _encode(value: Any) -> Any:
    if isinstance(value, np.random.RandomState):
        kind, keys, pos, has_gauss, gauss = value.get_state()
        return {"RandomState": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)]}
    if isinstance(value, np.ndarray):
        return {"array": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float):
        return value
    raise TypeError(f"cannot checkpoint a {type(value).__name__} of the CMA-ES state")


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "RandomState" in value:
        kind, keys, pos, has_gauss, gauss = value["RandomState"]
        state = np.random.RandomState()
        state.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
        return state
    if isinstance(value, dict) and "array" in value:
        return np.array(value["array"], dtype=value["dtype"])
    return value
