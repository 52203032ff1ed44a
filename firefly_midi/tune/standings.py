"""The tuner's standings: the best few candidates found, scored on the search seeds and, once they look
good, on hold-out seeds the search never used.

A candidate is *promising* when its search fitness is within ``CHECK_WITHIN`` times the goal (1, or
``--stop-at``); each promising candidate among the best ``KEEP`` is checked once on the hold-out
seeds.  From then on it ranks by its fitness over every seed it ran on (search and hold-out
together), so one that fitted its search seeds by luck drops down the table and the next is checked:
the best few are re-ranked on more seeds.  A candidate *holds* when its targets are reached on the
search seeds, and on the hold-out seeds with a margin: each hold-out mean within its tolerance by at
least its standard error, so a mean that scrapes the edge of a tolerance on five seeds is not taken
for one that will stay inside it on the next five.  The best that holds is the answer, and the run
is done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from firefly_midi.tune.fitness import Target, targets_met

KEEP = 8
CHECK_WITHIN = 2.0


@dataclass
class Score:
    """A fitness (the mean over some seeds), the metrics (their means) it came from, and their standard errors."""

    fitness: float
    metrics: dict[str, float | None]
    errors: dict[str, float | None] = field(default_factory=dict)

    def reached(self, targets: list[Target], stop_at: float | None, margin: bool = False) -> bool:
        """Every target within its tolerance (by a standard error, with ``margin``), or the fitness at most ``stop_at``."""
        met = targets_met(targets, self.metrics, self.errors if margin else None)
        return all(met.values()) or (stop_at is not None and self.fitness <= stop_at)

    def as_json(self) -> dict[str, Any]:
        return {"fitness": self.fitness, "metrics": self.metrics, "errors": self.errors}


@dataclass
class Candidate:
    x: np.ndarray
    search: Score
    holdout: Score | None = None


class Standings:
    """The best ``KEEP`` candidates, ranked by their fitness over every seed they ran on."""

    def __init__(self, targets: list[Target], seeds: int, holdout: int, stop_at: float | None = None):
        self.targets, self.seeds, self.holdout_seeds, self.stop_at = targets, seeds, holdout, stop_at
        self.table: list[Candidate] = []

    def rank(self, c: Candidate) -> float:
        if c.holdout is None:
            return c.search.fitness
        k, h = self.seeds, self.holdout_seeds
        return (k * c.search.fitness + h * c.holdout.fitness) / (k + h)

    def holds(self, c: Candidate) -> bool:
        """Reached on the search seeds, and on the hold-out seeds with a margin of a standard error."""
        if c.holdout is None:
            return False
        return c.search.reached(self.targets, self.stop_at) and c.holdout.reached(self.targets, self.stop_at, margin=True)

    def offer(self, x: np.ndarray, search: Score) -> bool:
        """Keep the candidate if it is among the best; whether it was kept."""
        if len(self.table) >= KEEP and search.fitness >= self.rank(self.table[-1]):
            return False
        self.table.append(Candidate(np.array(x, dtype=float), search))
        self._sort()
        del self.table[KEEP:]
        return True

    def to_check(self) -> list[Candidate]:
        """The promising candidates not yet checked on the hold-out seeds, best first."""
        within = CHECK_WITHIN * (self.stop_at if self.stop_at is not None else 1.0)
        return [c for c in self.table if c.holdout is None and c.search.fitness <= within]

    def record(self, c: Candidate, holdout: Score) -> None:
        c.holdout = holdout
        self._sort()

    def _sort(self) -> None:
        self.table.sort(key=lambda c: (not self.holds(c), self.rank(c)))  # stable: the earlier of equals first

    @property
    def best(self) -> Candidate | None:
        """The best candidate that holds, else the best by rank."""
        return self.table[0] if self.table else None

    def answer(self) -> Candidate | None:
        """What the tuner gives the user: the best candidate checked on the hold-out seeds (it may be the
        best that holds), else the best; so a preset written is, once any check ran, a checked one."""
        return next((c for c in self.table if c.holdout is not None), self.best)

    @property
    def done(self) -> bool:
        return bool(self.table) and self.holds(self.table[0])

    # ---------------------------------------------------------------------- checkpoints
    def state(self) -> list[dict[str, Any]]:
        return [{"x": c.x.tolist(), "search": c.search.as_json(), "holdout": c.holdout and c.holdout.as_json()} for c in self.table]

    def restore(self, state: list[dict[str, Any]]) -> None:
        self.table = [Candidate(np.array(c["x"], dtype=float), Score(**c["search"]), c["holdout"] and Score(**c["holdout"])) for c in state]
        self._sort()
