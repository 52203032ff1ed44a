"""The tuner's progress on a terminal: generations, the best fitness on the search and the hold-out seeds."""

from __future__ import annotations

from firefly_midi.tune.tuner import Tuner


class ProgressBar:
    """A tqdm bar over generations (silent off a terminal); ``total`` None when only time or the targets end the run."""

    def __init__(self, tuner: Tuner, total: int | None):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=tuner.generation, unit="gen", desc=f"tune {tuner.spec.algo}", disable=None, leave=True)

    def __call__(self, tuner: Tuner) -> None:
        best = tuner.standings.best
        held = "-" if best is None or best.holdout is None else f"{best.holdout.fitness:.3g}"
        search = "-" if best is None else f"{best.search.fitness:.3g}"
        self.bar.set_postfix(best=search, holdout=held, evals=tuner.evaluations, refresh=False)
        self.bar.update(tuner.generation - self.bar.n)

    def close(self) -> None:
        self.bar.close()
