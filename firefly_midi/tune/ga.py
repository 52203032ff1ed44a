"""The microbial genetic algorithm (Harvey 2009, "The Microbial Genetic Algorithm").

A steady-state GA in a few lines: pick two individuals, compare their fitness, and the loser becomes a
"microbe" infected by the winner: each of its genes is overwritten by the winner's with probability
``crossover`` (½, uniform crossover), then one random gene of it mutates.  The winner is untouched,
so the best individual is never lost (elitism for free).

Here the tournaments of one generation are drawn as disjoint pairs (a random pairing of the
population), so the P/2 losers can be evaluated in parallel; a generation costs P/2 evaluations.
Genes live in [0, 1] (see ``space``); a mutation is a Gaussian step of ``mutation`` reflected at the
edges, so it stays inside the gene's range.  Fitness is a cost (lower wins).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def reflect(x: np.ndarray) -> np.ndarray:
    """Fold values back into [0, 1] as a mirror would (0.1 past an edge lands 0.1 inside it)."""
    folded = np.mod(x, 2.0)
    return np.where(folded > 1.0, 2.0 - folded, folded)


class Microbial:
    """Ask for the individuals to evaluate, tell their costs; repeat."""

    name = "ga"

    def __init__(
        self,
        dim: int,
        population: int,
        rng: np.random.Generator,
        start: np.ndarray | None = None,
        mutation: float = 0.1,
        crossover: float = 0.5,
    ):
        if population < 2:
            raise ValueError("the microbial GA needs a population of at least 2")
        self.rng = rng
        self.mutation = mutation
        self.crossover = crossover
        self.x = rng.random((population, dim))
        if start is not None:
            self.x[0] = start  # the preset itself competes: the GA never returns worse than it
        self.cost = np.full(population, np.inf)
        self._pending: np.ndarray = np.arange(population)
        self._children: np.ndarray = self.x.copy()

    def ask(self) -> np.ndarray:
        """The candidates to evaluate next: the whole first population, then each generation's losers."""
        if self._pending.size:  # not yet told: the first population (or the same question again)
            return self._children.copy()
        pairs = self.rng.permutation(len(self.x))[: len(self.x) // 2 * 2].reshape(-1, 2)
        losers = np.empty(len(pairs), dtype=np.int64)
        children = np.empty((len(pairs), self.x.shape[1]))
        for i, (a, b) in enumerate(pairs):
            winner, loser = (a, b) if self.cost[a] <= self.cost[b] else (b, a)
            children[i] = self._infect(self.x[loser], self.x[winner])
            losers[i] = loser
        self._pending, self._children = losers, children
        return children.copy()

    def _infect(self, loser: np.ndarray, winner: np.ndarray) -> np.ndarray:
        child = np.where(self.rng.random(loser.size) < self.crossover, winner, loser)
        gene = self.rng.integers(loser.size)
        child[gene] = reflect(np.array(child[gene] + self.rng.normal(0.0, self.mutation)))
        return child

    def tell(self, costs: np.ndarray) -> None:
        """The costs of the candidates ``ask`` returned, in the same order."""
        self.x[self._pending] = self._children
        self.cost[self._pending] = costs
        self._pending = np.empty(0, dtype=np.int64)

    def best(self) -> tuple[np.ndarray, float]:
        i = int(np.argmin(self.cost))
        return self.x[i].copy(), float(self.cost[i])

    # ---------------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        return {"x": self.x.tolist(), "cost": _finite(self.cost), "rng": self.rng.bit_generator.state}

    def restore(self, state: dict[str, Any]) -> None:
        self.x = np.array(state["x"], dtype=float)
        self.cost = np.array([np.inf if c is None else c for c in state["cost"]])
        self.rng.bit_generator.state = state["rng"]
        told = np.isfinite(self.cost).all()
        self._pending = np.empty(0, dtype=np.int64) if told else np.arange(len(self.x))
        self._children = self.x.copy()


def _finite(values: np.ndarray) -> list[float | None]:
    """JSON has no infinity: an unevaluated cost is written as null."""
    return [float(v) if np.isfinite(v) else None for v in values]
