"""The tuner's fitness: a weighted distance between what a run measured and the targets asked for.

For one simulation run, each target k contributes its error in units of its tolerance,
``e_k = |measured_k − target_k| / tol_k``, and the run's distance is the weighted root mean square
``d = sqrt(Σ w_k e_k² / Σ w_k)``.  A candidate's fitness is the mean of d over its K seeds, so a
preset that hits the targets on one lucky seed only scores badly.  Lower is better: 0 is exact, 1 means
the targets are, on average, one tolerance off.

A metric a run could not measure counts as missing: a time that never came (the swarm never
synchronised, never recovered) is taken as the run's length, a lower bound on the truth, plus
``MISSED_TOLERANCES``; any other missing metric (no tempo without flashes) costs ``MISSING_ERROR``.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

from firefly_midi.params import ParamError


@dataclass(frozen=True)
class Metric:
    doc: str
    tolerance: float  # the default tolerance (absolute, or relative to the target when ``relative``)
    relative: bool = False
    floor: float = 0.0  # a relative tolerance is at least this
    is_time: bool = False


METRICS: dict[str, Metric] = {
    "sync_time_s": Metric("seconds until r stays ≥ 0.95", 0.1, relative=True, floor=0.5, is_time=True),
    "recovery_time_s": Metric("seconds from a --damage back to the pre-damage synchrony", 0.1, relative=True, floor=0.5, is_time=True),
    "tempo_bpm": Metric("the swarm's mean flash rate, in beats per minute", 1.0),
    "mean_freq_hz": Metric("the swarm's mean flash rate, in Hz", 0.02),
    "order_parameter": Metric("synchrony r over the last second (1 = all in phase)", 0.02),
    "gap_cv": Metric("unevenness of the phases around the circle (0 = evenly spread)", 0.02),
    "emission_window": Metric("share of the period holding 95% of the flashes", 0.01),
}
MISSING_ERROR = 10.0
MISSED_TOLERANCES = 2.0


@dataclass(frozen=True)
class Target:
    metric: str
    value: float
    tolerance: float
    weight: float = 1.0

    def error(self, measured: float | None, seconds: float) -> float:
        """|measured − target| in tolerances; a missing measure as the module doc says."""
        if measured is None or not math.isfinite(measured):
            if not METRICS[self.metric].is_time:
                return MISSING_ERROR
            return abs(seconds - self.value) / self.tolerance + MISSED_TOLERANCES
        return abs(measured - self.value) / self.tolerance

    def describe(self) -> str:
        weight = f" ×{self.weight:g}" if self.weight != 1.0 else ""
        return f"{self.metric} = {self.value:g} (±{self.tolerance:g}){weight}"


def parse_target(text: str) -> Target:
    """``METRIC=VALUE[:TOLERANCE[:WEIGHT]]``; ParamError names ``--target`` and the metrics known."""
    metric, sep, rest = (part.strip() for part in text.partition("="))
    if metric not in METRICS:
        near = difflib.get_close_matches(metric, METRICS, n=1)
        hint = f"did you mean {near[0]}? " if near else ""
        raise ParamError(f"--target {text!r}: unknown metric {metric!r}; {hint}targets can be {', '.join(METRICS)}")
    fields = rest.split(":") if sep else []
    if not 1 <= len(fields) <= 3:
        raise ParamError(f"--target {text!r}: expected METRIC=VALUE[:TOLERANCE[:WEIGHT]], e.g. tempo_bpm=90:1")
    try:
        numbers = [float(f) for f in fields]
    except ValueError:
        bad = next(f for f in fields if not _is_number(f))
        raise ParamError(f"--target {text!r}: {bad!r} is not a number (VALUE, TOLERANCE and WEIGHT are numbers)") from None
    value = numbers[0]
    spec = METRICS[metric]
    tolerance = numbers[1] if len(numbers) > 1 else default_tolerance(spec, value)
    weight = numbers[2] if len(numbers) > 2 else 1.0
    if not (math.isfinite(value) and tolerance > 0 and math.isfinite(tolerance) and weight > 0 and math.isfinite(weight)):
        raise ParamError(f"--target {text!r}: VALUE must be finite, TOLERANCE and WEIGHT positive")
    if spec.is_time and value < 0:
        raise ParamError(f"--target {text!r}: a time cannot be negative")
    return Target(metric, value, tolerance, weight)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def default_tolerance(spec: Metric, value: float) -> float:
    return max(spec.tolerance * abs(value), spec.floor) if spec.relative else spec.tolerance


def distance(targets: list[Target], measured: dict[str, Any], seconds: float) -> float:
    """One run's weighted RMS error in tolerances (see the module doc)."""
    total = sum(t.weight * t.error(measured.get(t.metric), seconds) ** 2 for t in targets)
    return math.sqrt(total / sum(t.weight for t in targets))


def fitness(targets: list[Target], runs: list[dict[str, Any]], seconds: float) -> float:
    """A candidate's fitness: the mean distance over its runs (one per seed)."""
    return sum(distance(targets, run, seconds) for run in runs) / len(runs)


def mean_metrics(targets: list[Target], runs: list[dict[str, Any]]) -> dict[str, float | None]:
    """Each targeted metric averaged over the runs (None if any run could not measure it)."""
    means: dict[str, float | None] = {}
    for metric in dict.fromkeys(t.metric for t in targets):
        values = [run.get(metric) for run in runs]
        means[metric] = None if any(v is None for v in values) else sum(values) / len(values)
    return means


def standard_errors(targets: list[Target], runs: list[dict[str, Any]]) -> dict[str, float | None]:
    """Each targeted metric's standard error of the mean over the runs (None if a run could not measure it)."""
    errors: dict[str, float | None] = {}
    for metric in dict.fromkeys(t.metric for t in targets):
        values = [run.get(metric) for run in runs]
        if any(v is None for v in values) or len(values) < 2:
            errors[metric] = None if any(v is None for v in values) else 0.0
            continue
        mean = sum(values) / len(values)
        errors[metric] = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values))
    return errors


def targets_met(targets: list[Target], metrics: dict[str, float | None], errors: dict[str, float | None] | None = None) -> dict[str, bool]:
    """Per metric: whether ``metrics`` (a mean over seeds) came within the target's tolerance; given the
    means' standard ``errors``, within the tolerance by at least one standard error."""
    met = {}
    for t in targets:
        value = metrics.get(t.metric)
        margin = (errors or {}).get(t.metric) or 0.0
        met[t.metric] = value is not None and abs(value - t.value) + margin <= t.tolerance
    return met
