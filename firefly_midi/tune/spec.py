"""What a tuning run depends on (``TuneSpec``), built from command-line texts by ``prepare``.

Two runs of equal specs give equal results.  The stopping rules are not part of a spec (see
``stopping``): a run may be extended, and resumes from its checkpoint.

Seeds: every candidate is simulated on the ``seeds`` search seeds (the preset's own ``swarm.seed``
and the ones after it); the best candidates are then checked on ``holdout`` further seeds, which the
search never sees, so a preset that fits its search seeds by luck is caught.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from firefly_midi import params as P
from firefly_midi import presets
from firefly_midi.tune.fitness import METRICS, Target
from firefly_midi.tune.space import Space

ALGORITHMS = ("cmaes", "ga", "es")  # the first is the default: it won docs/tune.md's benchmark
DEFAULT_POPULATION = {"ga": 16, "es": 16}  # CMA-ES takes the library's 4 + 3 ln(dimensions)


@dataclass
class TuneSpec:
    """Everything a tuning run depends on; two runs of equal specs give equal results."""

    preset: str
    space: Space
    targets: list[Target]
    output: Path
    algo: str = ALGORITHMS[0]
    population: int | None = None  # None: the algorithm's default
    seeds: int = 3
    holdout: int = 5
    seed: int = 0
    seconds: float = 30.0
    damage: Sequence[Any] = ()  # firefly_midi.swarm.damage.Damage events, for recovery_time_s targets
    damage_text: Sequence[str] = ()
    sigma: float | None = None  # ES: 0.1, CMA-ES: 0.2 (shares of each range)
    lr: float = 1.0
    lr_decay: float = 1.0
    optimizer: str = "sgd"
    mutation: float = 0.1
    anchor: bool = True  # start where the models put the target tempo (see ``prior``)
    written_keys: frozenset[str] = frozenset()  # keys the output preset spells out (besides the varied ones)
    base_comment: str = ""

    def __post_init__(self) -> None:
        if self.population is None and self.algo in DEFAULT_POPULATION:
            self.population = DEFAULT_POPULATION[self.algo]
        if self.population is None:
            self.population = 4 + int(3 * np.log(max(self.space.dim, 1)))
        if self.sigma is None:
            self.sigma = 0.2 if self.algo == "cmaes" else 0.1

    def fingerprint(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed (not the stopping rules: a run may be extended)."""
        return {
            "preset": self.preset,
            "base": {k: P.plain(v) for k, v in sorted(self.space.base.items())},
            "genes": [g.describe() for g in self.space.genes],
            "targets": [t.describe() for t in self.targets],
            "algo": self.algo,
            "population": self.population,
            "seeds": [self.seeds, self.holdout],
            "seed": self.seed,
            "seconds": self.seconds,
            "damage": list(self.damage_text),
            "es": [self.sigma, self.lr, self.lr_decay, self.optimizer],
            "ga": [self.mutation],
            "anchor": self.anchor,
        }

    def sim_seeds(self) -> list[int]:
        """The search seeds every candidate runs on: the preset's own seed and the next K − 1."""
        return self._seeds(0, self.seeds)

    def holdout_seeds(self) -> list[int]:
        """The seeds the best candidates are checked on, never searched: the H after the search seeds."""
        return self._seeds(self.seeds, self.holdout)

    def _seeds(self, skip: int, count: int) -> list[int]:
        first = self.space.base["swarm.seed"]
        return [(first + skip + k) % (2**63) for k in range(count)]


def check_options(spec: TuneSpec) -> None:
    """The settings, refused with the flag to change (the optimisers only assert)."""
    if spec.algo not in ALGORITHMS:
        raise P.ParamError(f"--algo must be one of {', '.join(ALGORITHMS)}, got {spec.algo!r}")
    if not spec.targets:
        raise P.ParamError("give at least one --target, e.g. --target sync_time_s=20")
    if any(t.metric == "recovery_time_s" for t in spec.targets) and not spec.damage:
        raise P.ParamError("a recovery_time_s target needs a --damage to recover from")
    population = spec.population or 0
    if population < 2 or (spec.algo == "es" and population % 2):
        need = "an even number, at least 2 (ES samples antithetic pairs)" if spec.algo == "es" else "at least 2"
        raise P.ParamError(f"--population must be {need}, got {spec.population}")
    for flag, value in (("--sigma", spec.sigma), ("--lr", spec.lr), ("--lr-decay", spec.lr_decay), ("--mutation", spec.mutation)):
        if not 0 < (value or 0) < float("inf"):
            raise P.ParamError(f"{flag} must be a positive number, got {value}")
    for flag, count, least in (("--seeds", spec.seeds, 1), ("--holdout", spec.holdout, 1)):
        if count < least:
            raise P.ParamError(f"{flag} must be at least {least}, got {count}")


def default_seconds(targets: list[Target], damage_at_s: float = 0.0) -> float:
    """Long enough to see every time target happen, with room after it: at least 30 s."""
    needed = [30.0]
    for t in targets:
        if METRICS[t.metric].is_time:
            start = damage_at_s if t.metric == "recovery_time_s" else 0.0
            needed.append(start + 1.5 * t.value + 10.0)
    return float(np.ceil(max(needed)))


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
    spec = TuneSpec(
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
    check_options(spec)
    return spec


def leading_comment(text: str) -> str:
    """The comment block a preset file opens with (what it says it sounds like), without the '#'."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].removeprefix(" "))
    return "\n".join(lines)
