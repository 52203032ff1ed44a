"""What a tuning run found, in the words, JSON and preset comment the user reads.

Both scores are always given: the search seeds' (what the optimiser saw) and the hold-out seeds'
(what a listener will hear from a seed the tuner never tried).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from firefly_midi import params as P
from firefly_midi.tune.fitness import targets_met
from firefly_midi.tune.spec import TuneSpec
from firefly_midi.tune.standings import Candidate, Score

STOP_REASONS = {
    "held": "every target held on the hold-out seeds",
    "generations": "the generation cap was reached",
    "stalled": "the best stopped improving",
    "budget": "the time budget was spent",
    "interrupted": "interrupted",
}


@dataclass
class TuneResult:
    best: Candidate | None
    values: dict[str, Any]
    done: bool  # the best holds on the search and the hold-out seeds
    stop_reason: str
    generations: int
    evaluations: int
    simulations: int
    infeasible: int
    wall_s: float
    history: list[tuple[int, float, float]]  # (evaluations, best fitness over its seeds, seconds since the start)
    holdout_history: list[tuple[int, float]]  # (evaluations, hold-out fitness) of every check
    resumed_from: int = 0

    @property
    def interrupted(self) -> bool:
        return self.stop_reason == "interrupted"

    @property
    def fitness(self) -> float:
        return self.best.search.fitness if self.best else float("inf")

    @property
    def holdout(self) -> Score | None:
        return self.best.holdout if self.best else None

    def met(self, spec: TuneSpec) -> dict[str, bool]:
        """Per metric: whether the mean over the search seeds came within the target's tolerance."""
        return targets_met(spec.targets, self.best.search.metrics if self.best else {})

    def holdout_met(self, spec: TuneSpec) -> dict[str, bool] | None:
        """Per metric: whether the hold-out mean came within the tolerance by at least its standard error."""
        return None if self.holdout is None else targets_met(spec.targets, self.holdout.metrics, self.holdout.errors)

    def verdict(self, spec: TuneSpec) -> list[str]:
        """In words, per target: what was reached on the search and the hold-out seeds against what was wanted."""
        lines, search_met, holdout_met = [], self.met(spec), self.holdout_met(spec) or {}
        searched = self.best.search.metrics if self.best else {}
        held = self.holdout.metrics if self.holdout else {}
        for t in spec.targets:
            errors = self.holdout.errors if self.holdout else {}
            got = [_show(searched.get(t.metric)), _show(held.get(t.metric)) + _error(errors.get(t.metric))]
            met = search_met[t.metric] and holdout_met.get(t.metric, False)
            lines.append(
                f"{t.metric}: {got[0]} (search), {got[1]} (hold-out), wanted {t.value:g} ± {t.tolerance:g}: {'met' if met else 'not met'}"
            )
        if self.done:
            lines.append(f"every target met, and it held on {spec.holdout} hold-out seeds")
        else:
            lines.append(
                "not done: " + STOP_REASONS[self.stop_reason] + " before every target held on the hold-out seeds; "
                "try a larger --budget-s, wider --vary ranges, other keys to --vary, or another --algo"
            )
        return lines

    def as_json(self, spec: TuneSpec) -> dict[str, Any]:
        return {
            "done": self.done,
            "stop_reason": self.stop_reason,
            "fitness": self.fitness,
            "metrics": self.best.search.metrics if self.best else {},
            "targets_met": self.met(spec),
            "holdout_fitness": self.holdout.fitness if self.holdout else None,
            "holdout_metrics": self.holdout.metrics if self.holdout else None,
            "holdout_errors": self.holdout.errors if self.holdout else None,
            "holdout_targets_met": self.holdout_met(spec),
            "seeds": spec.sim_seeds(),
            "holdout_seeds": spec.holdout_seeds(),
            "best": {g.key: P.plain(self.values[g.key]) for g in spec.space.genes},
            "targets": [t.describe() for t in spec.targets],
            "algo": spec.algo,
            "generations": self.generations,
            "evaluations": self.evaluations,
            "simulations": self.simulations,
            "infeasible": self.infeasible,
            "wall_s": self.wall_s,
            "evaluations_per_s": self.evaluations / self.wall_s if self.wall_s > 0 else None,
            "history": self.history,
            "holdout_history": self.holdout_history,
            "interrupted": self.interrupted,
            "output": str(spec.output),
        }


def _show(value: float | None) -> str:
    return "never measured" if value is None else f"{value:.4g}"


def comment(spec: TuneSpec, best: Candidate | None, values: dict[str, Any], counts: tuple[int, int], done: bool) -> str:
    """The tuned preset's opening comment: how it was tuned, and what it gave on both sets of seeds."""
    generations, evaluations = counts
    lines = [
        f"Tuned by `firefly-midi tune` from the preset {spec.preset}.",
        f"Algorithm: {spec.algo}, population {spec.population}, {generations} generations, "
        f"{evaluations} evaluations, each {spec.seeds} seeds × {spec.seconds:g} s; tuner seed {spec.seed}.",
        "Targets: " + "; ".join(t.describe() for t in spec.targets),
    ]
    if best is not None:
        lines.append(f"Search seeds {_seeds(spec.sim_seeds())}: {_score(best.search)}.")
        if best.holdout is None:
            lines.append(f"Hold-out seeds {_seeds(spec.holdout_seeds())}: not checked.")
        else:
            verdict = "holds" if done else "does not hold"
            lines.append(f"Hold-out seeds {_seeds(spec.holdout_seeds())}, never searched: {_score(best.holdout)}; {verdict}.")
    lines.append("Varied: " + "; ".join(f"{g.describe()} → {P.show(values[g.key])}" for g in spec.space.genes))
    if spec.damage_text:
        lines.append("Damage: " + ", ".join(spec.damage_text))
    if spec.base_comment:
        lines += ["", f"The preset {spec.preset} said:", *spec.base_comment.splitlines()]
    return "\n".join(lines)


def _score(score: Score) -> str:
    achieved = ", ".join(f"{k} = {P.show(v)}{_error(score.errors.get(k))}" for k, v in score.metrics.items()) or "-"
    return f"{achieved} (means ± standard errors); fitness {score.fitness:.3g} (0 = exact, 1 = one tolerance off)"


def _error(error: float | None) -> str:
    return "" if error is None else f" ± {error:.2g}"


def _seeds(seeds: list[int]) -> str:
    return f"{seeds[0]}..{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
