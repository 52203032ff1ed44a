"""A tuning run: generations of an optimiser, each candidate simulated on K seeds in parallel.

The optimisers (``ga``, ``es``) only ask for points and are told their costs; this module turns a
point into parameters (``space``), simulates them headless on every seed on a pool of threads (the
swarm's numba kernels release the GIL, so threads use every core without copying the swarm into
other processes), scores the runs (``fitness``), and keeps the books: the best candidate so far,
the history of best fitness against evaluations, a checkpoint after every generation (a stopped run
resumes from it, and resumes to the very same result), and the output preset, rewritten whenever
the best improves, so Ctrl-C or a crash never loses what was found.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from firefly_midi import params as P
from firefly_midi import presets
from firefly_midi.simulate import simulate
from firefly_midi.swarm.engine import usable_cpus
from firefly_midi.tune.es import OpenAIES
from firefly_midi.tune.fitness import METRICS, Target, fitness, mean_metrics
from firefly_midi.tune.ga import Microbial
from firefly_midi.tune.space import Space

ALGORITHMS = ("ga", "es")
INFEASIBLE = 1e6  # the cost of parameters that contradict each other (e.g. freq_hz outside its bounds)
CHECKPOINT_FORMAT = 1


@dataclass
class TuneSpec:
    """Everything a tuning run depends on; two runs of equal specs give equal results."""

    preset: str
    space: Space
    targets: list[Target]
    output: Path
    algo: str = "ga"
    population: int = 16
    generations: int = 20
    seeds: int = 3
    seed: int = 0
    seconds: float = 30.0
    damage: Sequence[Any] = ()  # firefly_midi.swarm.damage.Damage events, for recovery_time_s targets
    damage_text: Sequence[str] = ()
    sigma: float = 0.1
    lr: float = 0.1
    lr_decay: float = 1.0
    optimizer: str = "adam"
    mutation: float = 0.1
    written_keys: frozenset[str] = frozenset()  # keys the output preset spells out (besides the varied ones)
    base_comment: str = ""

    def fingerprint(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed (not the stopping rules: a run may be extended)."""
        return {
            "preset": self.preset,
            "base": {k: P.plain(v) for k, v in sorted(self.space.base.items())},
            "genes": [g.describe() for g in self.space.genes],
            "targets": [t.describe() for t in self.targets],
            "algo": self.algo,
            "population": self.population,
            "seeds": self.seeds,
            "seed": self.seed,
            "seconds": self.seconds,
            "damage": list(self.damage_text),
            "es": [self.sigma, self.lr, self.lr_decay, self.optimizer],
            "ga": [self.mutation],
        }

    def sim_seeds(self) -> list[int]:
        """The simulation seeds every candidate runs on: the preset's own seed and the next K − 1."""
        first = self.space.base["swarm.seed"]
        return [(first + k) % (2**63) for k in range(self.seeds)]


def _check_options(spec: TuneSpec) -> None:
    """The optimisers' settings, refused with the flag to change (the optimisers only assert)."""
    if spec.population < 2 or (spec.algo == "es" and spec.population % 2):
        need = "an even number, at least 2 (ES samples antithetic pairs)" if spec.algo == "es" else "at least 2"
        raise P.ParamError(f"--population must be {need}, got {spec.population}")
    for flag, value in (("--sigma", spec.sigma), ("--lr", spec.lr), ("--lr-decay", spec.lr_decay), ("--mutation", spec.mutation)):
        if not 0 < value < float("inf"):
            raise P.ParamError(f"{flag} must be a positive number, got {value}")
    for flag, count in (("--seeds", spec.seeds), ("--generations", spec.generations)):
        if count < 1:
            raise P.ParamError(f"{flag} must be at least 1, got {count}")


def default_seconds(targets: list[Target], damage_at_s: float = 0.0) -> float:
    """Long enough to see every time target happen, with room after it: at least 30 s."""
    needed = [30.0]
    for t in targets:
        if METRICS[t.metric].is_time:
            start = damage_at_s if t.metric == "recovery_time_s" else 0.0
            needed.append(start + 1.5 * t.value + 10.0)
    return float(np.ceil(max(needed)))


@dataclass
class Best:
    x: np.ndarray | None = None
    fitness: float = float("inf")
    metrics: dict[str, float | None] = field(default_factory=dict)


@dataclass
class TuneResult:
    best: Best
    values: dict[str, Any]
    generations: int
    evaluations: int
    simulations: int
    infeasible: int
    wall_s: float
    history: list[tuple[int, float]]
    interrupted: bool = False
    resumed_from: int = 0

    def met(self, spec: TuneSpec) -> dict[str, bool]:
        """Per metric: whether the mean over the seeds came within the target's tolerance."""
        met = {}
        for t in spec.targets:
            value = self.best.metrics.get(t.metric)
            met[t.metric] = value is not None and abs(value - t.value) <= t.tolerance
        return met

    def verdict(self, spec: TuneSpec) -> list[str]:
        """In words, per target: what was reached against what was wanted."""
        met, lines = self.met(spec), []
        for t in spec.targets:
            value = self.best.metrics.get(t.metric)
            got = "never measured" if value is None else f"{value:.4g}"
            off = "" if value is None or met[t.metric] else f", off by {abs(value - t.value):.3g}"
            lines.append(f"{t.metric}: {got}, wanted {t.value:g} ± {t.tolerance:g}: {'met' if met[t.metric] else 'not met'}{off}")
        if all(met.values()):
            lines.append("every target met")
        else:
            lines.append("not every target met: try more --generations, wider --vary ranges, other keys to --vary, or --algo")
        return lines

    def as_json(self, spec: TuneSpec) -> dict[str, Any]:
        return {
            "fitness": self.best.fitness,
            "metrics": self.best.metrics,
            "targets_met": self.met(spec),
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
            "interrupted": self.interrupted,
            "output": str(spec.output),
        }


class Tuner:
    """Runs a TuneSpec: ``run()`` until the generations, the time budget or a stop fitness is reached."""

    def __init__(self, spec: TuneSpec, jobs: int | None = None, checkpoint: Path | None = None, restart: bool = False):
        if spec.algo not in ALGORITHMS:
            raise P.ParamError(f"--algo must be one of {', '.join(ALGORITHMS)}, got {spec.algo!r}")
        if not spec.targets:
            raise P.ParamError("give at least one --target, e.g. --target sync_time_s=20")
        if any(t.metric == "recovery_time_s" for t in spec.targets) and not spec.damage:
            raise P.ParamError("a recovery_time_s target needs a --damage to recover from")
        _check_options(spec)
        self.spec = spec
        self.jobs = max(1, jobs or usable_cpus())
        self.checkpoint = checkpoint
        self.optimizer = self._make_optimizer()
        self.best = Best()
        self.generation = 0
        self.evaluations = self.simulations = self.infeasible = 0
        self.history: list[tuple[int, float]] = []
        self.resumed_from = 0
        if checkpoint is not None and checkpoint.is_file() and not restart:
            self._resume(checkpoint)

    def _make_optimizer(self) -> Microbial | OpenAIES:
        s, rng, start = self.spec, np.random.default_rng(self.spec.seed), self.spec.space.start()
        if s.algo == "ga":
            return Microbial(s.space.dim, s.population, rng, start=start, mutation=s.mutation)
        return OpenAIES(s.space.dim, s.population, rng, start, s.sigma, s.lr, s.optimizer, s.lr_decay)

    # ------------------------------------------------------------------------------- the loop
    def run(
        self,
        generations: int | None = None,
        budget_s: float | None = None,
        stop_at: float | None = None,
        progress: Callable[[Tuner], None] | None = None,
    ) -> TuneResult:
        """Run generations until ``generations`` in all, ``budget_s`` of wall time or a best ≤ ``stop_at``."""
        total = self.spec.generations if generations is None else generations
        started, interrupted = time.perf_counter(), False
        with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="tune") as pool:
            try:
                while self.generation < total and not self._done(started, budget_s, stop_at):
                    self._generation(pool)
                    if progress:
                        progress(self)
            except KeyboardInterrupt:
                interrupted = True  # the pool finishes the simulations already running; the books stay as they were
                pool.shutdown(wait=True, cancel_futures=True)
        finished = not interrupted and (self.generation >= self.spec.generations or (stop_at is not None and self.best.fitness <= stop_at))
        if finished and self.checkpoint is not None:
            self.checkpoint.unlink(missing_ok=True)  # done: a checkpoint is for runs cut short (Ctrl-C, --budget-s)
        return self._result(time.perf_counter() - started, interrupted)

    def _done(self, started: float, budget_s: float | None, stop_at: float | None) -> bool:
        if budget_s is not None and time.perf_counter() - started >= budget_s:
            return True
        return stop_at is not None and self.best.fitness <= stop_at

    def _generation(self, pool: ThreadPoolExecutor) -> None:
        candidates = self.optimizer.ask()
        costs, metrics = self._evaluate(candidates, pool)
        self.optimizer.tell(costs)  # only now does anything change: an interrupt before leaves all as it was
        self.generation += 1
        self.evaluations += len(candidates)
        improved = False
        for x, cost, measured in zip(candidates, costs, metrics, strict=True):
            if cost < self.best.fitness:
                self.best, improved = Best(x.copy(), float(cost), measured), True
        self.history.append((self.evaluations, self.best.fitness))
        if improved:
            self.write_output()
        if self.checkpoint is not None:
            self._write_checkpoint(self.checkpoint)

    def _evaluate(self, candidates: np.ndarray, pool: ThreadPoolExecutor) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Each candidate's fitness over the seeds, the simulations spread over the pool."""
        seeds = self.spec.sim_seeds()
        runs: list[tuple[int, dict[str, Any]]] = []
        feasible = []
        for i, x in enumerate(candidates):
            values = self.spec.space.values(x)
            try:
                P.check_consistency(values)
            except P.ParamError:
                continue
            feasible.append(i)
            runs.extend((i, {**values, "swarm.seed": s}) for s in seeds)
        measured = list(pool.map(self._simulate, [values for _, values in runs]))
        self.simulations += len(measured)
        self.infeasible += len(candidates) - len(feasible)
        costs = np.full(len(candidates), INFEASIBLE)
        metrics: list[dict[str, Any]] = [{} for _ in candidates]
        for i in feasible:
            mine = [m for (j, _), m in zip(runs, measured, strict=True) if j == i]
            costs[i] = fitness(self.spec.targets, mine, self.spec.seconds)
            metrics[i] = mean_metrics(self.spec.targets, mine)
        return costs, metrics

    def _simulate(self, values: dict[str, Any]) -> dict[str, Any]:
        if self.spec.damage:
            result, _, _ = simulate(values, self.spec.seconds, damage=self.spec.damage)
        else:
            result, _, _ = simulate(values, self.spec.seconds)
        return result

    # ------------------------------------------------------------------------------ results
    def best_values(self) -> dict[str, Any]:
        x = self.best.x if self.best.x is not None else self.spec.space.start()
        return self.spec.space.values(x)

    def _result(self, wall_s: float, interrupted: bool) -> TuneResult:
        if self.best.x is not None:
            self.write_output()
        return TuneResult(
            self.best,
            self.best_values(),
            self.generation,
            self.evaluations,
            self.simulations,
            self.infeasible,
            wall_s,
            list(self.history),
            interrupted,
            self.resumed_from,
        )

    def write_output(self) -> None:
        """The best preset so far, as a normal preset file with a comment on how it was tuned."""
        values = self.best_values()
        keys = set(self.spec.written_keys) | {g.key for g in self.spec.space.genes}
        text = presets.dumps(values, self._comment(values), only=keys)
        presets.parse(text, str(self.spec.output))  # never write a preset that could not be read back
        presets.write_atomic(self.spec.output, text)

    def _comment(self, values: dict[str, Any]) -> str:
        s, b = self.spec, self.best
        achieved = ", ".join(f"{k} = {P.show(v)}" for k, v in b.metrics.items()) or "-"
        lines = [
            f"Tuned by `firefly-midi tune` from the preset {s.preset}.",
            f"Algorithm: {s.algo}, population {s.population}, {self.generation} generations, "
            f"{self.evaluations} evaluations, each {s.seeds} seeds × {s.seconds:g} s; tuner seed {s.seed}.",
            "Targets: " + "; ".join(t.describe() for t in s.targets),
            f"Achieved (mean over the seeds): {achieved}; fitness {b.fitness:.3g} (0 = exact, 1 = one tolerance off).",
            "Varied: " + "; ".join(f"{g.describe()} → {P.show(values[g.key])}" for g in s.space.genes),
        ]
        if s.damage_text:
            lines.append("Damage: " + ", ".join(s.damage_text))
        if s.base_comment:
            lines += ["", f"The preset {s.preset} said:", *s.base_comment.splitlines()]
        return "\n".join(lines)

    # ---------------------------------------------------------------------------- checkpoints
    def _write_checkpoint(self, path: Path) -> None:
        best = {"x": None if self.best.x is None else self.best.x.tolist(), "fitness": self.best.fitness, "metrics": self.best.metrics}
        state = {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": self.spec.fingerprint(),
            "generation": self.generation,
            "counts": [self.evaluations, self.simulations, self.infeasible],
            "optimizer": self.optimizer.state(),
            "best": best,
            "history": self.history,
        }
        presets.write_atomic(path, json.dumps(state))

    def _resume(self, path: Path) -> None:
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise P.ParamError(f"cannot read the checkpoint ({exc}); pass --restart to start over", source=str(path)) from None
        if state.get("format") != CHECKPOINT_FORMAT or state.get("fingerprint") != json.loads(json.dumps(self.spec.fingerprint())):
            raise P.ParamError("this checkpoint is of another tuning run; pass --restart to start over, or another -o", source=str(path))
        self.optimizer.restore(state["optimizer"])
        self.generation = self.resumed_from = int(state["generation"])
        self.evaluations, self.simulations, self.infeasible = state["counts"]
        best = state["best"]
        if best["x"] is not None:
            self.best = Best(np.array(best["x"]), float(best["fitness"]), best["metrics"])
        self.history = [(int(e), float(f)) for e, f in state["history"]]


# -------------------------------------------------------------------------------------- set-up
def prepare(
    preset: str,
    output: Path,
    targets: list[str],
    vary: list[str] | None = None,
    assignments: list[str] | None = None,
    damage: list[str] | None = None,
    seconds: float | None = None,
    **options: Any,
) -> TuneSpec:
    """A TuneSpec from command-line texts: the preset and ``--set``s, ``--target``s, ``--vary``s, ``--damage``s."""
    from firefly_midi.swarm.damage import parse as parse_damage
    from firefly_midi.tune.fitness import parse_target

    base = presets.resolve(preset, assignments)
    parsed_targets = [parse_target(text) for text in targets]
    events = [parse_damage(text) for text in damage or []]
    first_damage = min((e.at_s for e in events), default=0.0)
    run_s = seconds if seconds is not None else default_seconds(parsed_targets, first_damage)
    if not run_s > 0:
        raise P.ParamError(f"--seconds must be positive, got {run_s}")
    if any(e.at_s >= run_s for e in events):
        raise P.ParamError(f"--damage must happen within the {run_s:g} s of each run (see --seconds)")
    path = presets.locate(preset)
    written = set(presets.load(preset)) | {P.parse_assignment(a)[0] for a in assignments or []}
    return TuneSpec(
        preset=path.stem,
        space=Space.build(base, vary or [], [t.metric for t in parsed_targets]),
        targets=parsed_targets,
        output=output,
        seconds=run_s,
        damage=events,
        damage_text=list(damage or []),
        written_keys=frozenset(written),
        base_comment=leading_comment(presets.read_text(path)),
        **options,
    )


def leading_comment(text: str) -> str:
    """The comment block a preset file opens with (what it says it sounds like), without the '#'."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].removeprefix(" "))
    return "\n".join(lines)


class ProgressBar:
    """A tqdm bar over generations, with the best fitness and the evaluations (silent off a terminal)."""

    def __init__(self, tuner: Tuner, total: int):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=tuner.generation, unit="gen", desc=f"tune {tuner.spec.algo}", disable=None, leave=True)

    def __call__(self, tuner: Tuner) -> None:
        self.bar.set_postfix(best=f"{tuner.best.fitness:.3g}", evals=tuner.evaluations, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
