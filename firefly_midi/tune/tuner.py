"""A tuning run: generations of an optimiser, each candidate simulated on K seeds in parallel, the best
checked on H hold-out seeds.

The optimisers (``cma``, ``ga``, ``es``) only ask for points and are told their costs; this module
turns a point into parameters (``space``), simulates them headless on every seed on a pool of
threads (the swarm's numba kernels release the GIL, so threads use every core without copying the
swarm into other processes), scores the runs (``fitness``), and keeps the books: the standings of
the best candidates with their search and hold-out scores (``standings``), the history, a checkpoint
after every generation (a stopped run resumes from it, and resumes to the very same result), and the
output preset, rewritten whenever the best changes, so Ctrl-C or a crash never loses what was found.
Before the first generation, the search is started where the models put the target tempo (``prior``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from firefly_midi import params as P
from firefly_midi import presets
from firefly_midi.simulate import simulate
from firefly_midi.swarm.engine import usable_cpus
from firefly_midi.tune.cma import CMAES
from firefly_midi.tune.es import SNES
from firefly_midi.tune.fitness import fitness, mean_metrics, standard_errors
from firefly_midi.tune.ga import Microbial
from firefly_midi.tune.prior import anchor
from firefly_midi.tune.result import TuneResult, comment
from firefly_midi.tune.spec import TuneSpec, check_options
from firefly_midi.tune.standings import Candidate, Score, Standings
from firefly_midi.tune.stopping import StopRule

INFEASIBLE = 1e6  # the cost of parameters that contradict each other (e.g. freq_hz outside its bounds)
CHECKPOINT_FORMAT = 2
Optimizer = Microbial | SNES | CMAES


class Tuner:
    """Runs a TuneSpec: ``run()`` until the best holds on the hold-out seeds or a limit is reached."""

    def __init__(self, spec: TuneSpec, jobs: int | None = None, checkpoint: Path | None = None, restart: bool = False):
        check_options(spec)
        self.spec = spec
        self.jobs = max(1, jobs or usable_cpus())
        self.checkpoint = checkpoint
        self.optimizer: Optimizer | None = None  # made once the start point is anchored
        self.start: np.ndarray | None = None
        self.standings = Standings(spec.targets, spec.seeds, spec.holdout)
        self.generation = self.since_best = 0
        self.evaluations = self.simulations = self.infeasible = 0
        self.history: list[tuple[int, float, float]] = []
        self.holdout_history: list[tuple[int, float]] = []
        self.resumed_from, self.elapsed_before = 0, 0.0
        self._clock = (time.perf_counter(), 0.0)  # (this session's start, elapsed before it)
        self._generation_walls: list[float] = []
        self._simulation_wall = 0.0
        self._written: tuple[Any, ...] | None = None
        if checkpoint is not None and checkpoint.is_file() and not restart:
            self._resume(checkpoint)

    def _make_optimizer(self, start: np.ndarray) -> Optimizer:
        s, rng = self.spec, np.random.default_rng(self.spec.seed)
        assert s.population is not None and s.sigma is not None
        if s.algo == "ga":
            return Microbial(s.space.dim, s.population, rng, start=start, mutation=s.mutation)
        if s.algo == "cmaes":
            return CMAES(s.space.dim, s.population, rng, start, s.sigma)
        return SNES(s.space.dim, s.population, rng, start, s.sigma, s.lr, s.optimizer, s.lr_decay)

    # ------------------------------------------------------------------------------- the loop
    def run(
        self,
        generations: int | None = None,
        budget_s: float | None = None,
        stop_at: float | None = None,
        progress: Callable[[Tuner], None] | None = None,
        rule: StopRule | None = None,
    ) -> TuneResult:
        """Run generations until the best holds or a limit of ``rule`` (default: ``StopRule.of`` the arguments)."""
        rule = rule or StopRule.of(budget_s, generations, stop_at)
        self.standings.stop_at = rule.stop_at
        self._clock = (time.perf_counter(), self.elapsed_before)
        reason = None
        with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="tune") as pool:
            try:
                while (reason := self._stop_reason(rule)) is None:
                    self._step(pool)
                    if progress:
                        progress(self)
                self._last_check(pool)
            except KeyboardInterrupt:
                reason = "interrupted"  # the pool finishes the simulations already running; the books stay as they were
                pool.shutdown(wait=True, cancel_futures=True)
        if reason in ("held", "stalled") and self.checkpoint is not None:
            self.checkpoint.unlink(missing_ok=True)  # over: a checkpoint is for runs cut short (a cap, a budget, Ctrl-C)
        return self._result(reason)

    def elapsed(self) -> float:
        return self._clock[1] + time.perf_counter() - self._clock[0]

    def _stop_reason(self, rule: StopRule) -> str | None:
        if self.standings.done:
            return "held"
        if rule.out_of_generations(self.generation):
            return "generations"
        if rule.stalled(self.since_best):
            return "stalled"
        session = time.perf_counter() - self._clock[0]
        if rule.out_of_time(session, max(self._generation_walls[-3:], default=0.0), self._check_wall()):  # the dearest lately
            return "budget"
        return None

    def _check_wall(self) -> float:
        """What one hold-out check costs: its simulations, a round of the pool at a time."""
        return self._simulation_wall * -(-self.spec.holdout // self.jobs)

    def _step(self, pool: ThreadPoolExecutor) -> None:
        started, before = time.perf_counter(), self._standing()
        if self.optimizer is None:
            self._begin(pool)
        else:
            self._generation(pool)
        self._after(pool, before)
        self._generation_walls.append(time.perf_counter() - started)

    def _begin(self, pool: ThreadPoolExecutor) -> None:
        """Anchor the start on the models' prior, then make the optimiser there (generation 0)."""
        start = self.spec.space.start()
        if self.spec.anchor:
            start = anchor(self.spec.space, self.spec.targets, start, lambda x: self._search(x, pool))
        self.start, self.optimizer = start, self._make_optimizer(start)

    def _generation(self, pool: ThreadPoolExecutor) -> None:
        assert self.optimizer is not None
        candidates = self.optimizer.ask()
        costs, _ = self._search(candidates, pool)
        self.optimizer.tell(costs)  # only now does the optimiser change: an interrupt before leaves it as it was
        self.generation += 1

    def _search(self, candidates: np.ndarray, pool: ThreadPoolExecutor) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Score candidates on the search seeds and offer them to the standings."""
        costs, metrics, errors = self._evaluate(candidates, pool, self.spec.sim_seeds())
        self.evaluations += len(candidates)
        for x, cost, measured, error in zip(candidates, costs, metrics, errors, strict=True):
            if cost < INFEASIBLE:
                self.standings.offer(x, Score(float(cost), measured, error))
        return costs, metrics

    def _after(self, pool: ThreadPoolExecutor, before: tuple[bool, float]) -> None:
        """The books after a generation: hold-out checks, history, output, checkpoint."""
        self._check(pool, self.standings.to_check())
        now = self._standing()
        self.since_best = 0 if now < before or not self.history else self.since_best + 1
        if self.standings.best is not None:
            self.history.append((self.evaluations, now[1], round(self.elapsed(), 3)))
        self.write_output()
        if self.checkpoint is not None and self.standings.best is not None:  # nothing found yet: nothing to keep
            self._write_checkpoint(self.checkpoint)

    def _standing(self) -> tuple[bool, float]:
        best = self.standings.best
        return (True, float("inf")) if best is None else (not self.standings.holds(best), self.standings.rank(best))

    def _check(self, pool: ThreadPoolExecutor, candidates: list[Candidate]) -> None:
        """Score candidates on the hold-out seeds, all at once, and re-rank them."""
        if not candidates:
            return
        costs, metrics, errors = self._evaluate(np.array([c.x for c in candidates]), pool, self.spec.holdout_seeds())
        for c, cost, measured, error in zip(candidates, costs, metrics, errors, strict=True):
            self.standings.record(c, Score(float(cost), measured, error))
            self.holdout_history.append((self.evaluations, float(cost)))

    def _last_check(self, pool: ThreadPoolExecutor) -> None:
        """A run that ends with an unchecked best checks it, so the result always has both scores.

        This is after the last checkpoint: a resumed run goes on from the books as they were."""
        best = self.standings.best
        if best is not None and best.holdout is None:
            self._check(pool, [best])
            self.write_output()

    def _evaluate(self, candidates: np.ndarray, pool: ThreadPoolExecutor, seeds: list[int]) -> tuple[np.ndarray, list[dict], list[dict]]:
        """Each candidate's fitness over ``seeds``, its mean metrics and their standard errors, the simulations spread over the pool."""
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
        started = time.perf_counter()
        measured = list(pool.map(self._simulate, [values for _, values in runs]))
        if runs:  # the wall time of one round of the pool, for the budget's estimates
            self._simulation_wall = (time.perf_counter() - started) / -(-len(runs) // self.jobs)
        self.simulations += len(measured)
        self.infeasible += len(candidates) - len(feasible)
        costs = np.full(len(candidates), INFEASIBLE)
        metrics: list[dict[str, Any]] = [{} for _ in candidates]
        errors: list[dict[str, Any]] = [{} for _ in candidates]
        for i in feasible:
            mine = [m for (j, _), m in zip(runs, measured, strict=True) if j == i]
            costs[i] = fitness(self.spec.targets, mine, self.spec.seconds)
            metrics[i] = mean_metrics(self.spec.targets, mine)
            errors[i] = standard_errors(self.spec.targets, mine)
        return costs, metrics, errors

    def _simulate(self, values: dict[str, Any]) -> dict[str, Any]:
        if self.spec.damage:
            result, _, _ = simulate(values, self.spec.seconds, damage=self.spec.damage)
        else:
            result, _, _ = simulate(values, self.spec.seconds)
        return result

    # ------------------------------------------------------------------------------ results
    def best_values(self) -> dict[str, Any]:
        best = self.standings.answer()
        return self.spec.space.values(best.x if best is not None else self.spec.space.start())

    def _result(self, reason: str) -> TuneResult:
        return TuneResult(
            self.standings.answer(),
            self.best_values(),
            self.standings.done,
            reason,
            self.generation,
            self.evaluations,
            self.simulations,
            self.infeasible,
            self.elapsed() - self._clock[1],
            list(self.history),
            list(self.holdout_history),
            self.resumed_from,
        )

    def write_output(self) -> None:
        """The answer so far (when it changed), as a normal preset file with a comment on how it was tuned."""
        best = self.standings.answer()
        if best is None:
            return
        mark = (tuple(best.x), best.holdout is not None, self.standings.done)
        if mark == self._written:
            return
        values = self.best_values()
        keys = set(self.spec.written_keys) | {g.key for g in self.spec.space.genes}
        text = presets.dumps(values, comment(self.spec, best, values, (self.generation, self.evaluations), self.standings.done), only=keys)
        presets.parse(text, str(self.spec.output))  # never write a preset that could not be read back
        presets.write_atomic(self.spec.output, text)
        self._written = mark

    # ---------------------------------------------------------------------------- checkpoints
    def _write_checkpoint(self, path: Path) -> None:
        assert self.optimizer is not None and self.start is not None
        state = {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": self.spec.fingerprint(),
            "generation": self.generation,
            "since_best": self.since_best,
            "counts": [self.evaluations, self.simulations, self.infeasible],
            "start": self.start.tolist(),
            "optimizer": self.optimizer.state(),
            "standings": self.standings.state(),
            "history": self.history,
            "holdout_history": self.holdout_history,
        }
        presets.write_atomic(path, json.dumps(state))

    def _resume(self, path: Path) -> None:
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise P.ParamError(f"cannot read the checkpoint ({exc}); pass --restart to start over", source=str(path)) from None
        if state.get("format") != CHECKPOINT_FORMAT or state.get("fingerprint") != json.loads(json.dumps(self.spec.fingerprint())):
            raise P.ParamError("this checkpoint is of another tuning run; pass --restart to start over, or another -o", source=str(path))
        self.start = np.array(state["start"], dtype=float)
        self.optimizer = self._make_optimizer(self.start)
        self.optimizer.restore(state["optimizer"])
        self.standings.restore(state["standings"])
        self.generation = self.resumed_from = int(state["generation"])
        self.since_best = int(state["since_best"])
        self.evaluations, self.simulations, self.infeasible = state["counts"]
        self.history = [(int(e), float(f), float(t)) for e, f, t in state["history"]]
        self.holdout_history = [(int(e), float(f)) for e, f in state["holdout_history"]]
        self.elapsed_before = self.history[-1][2] if self.history else 0.0
