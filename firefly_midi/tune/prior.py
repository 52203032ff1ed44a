"""What the models know, used before the search: a target tempo sets the swarm's frequency scale.

Every model here is a set of oscillators whose flash rate is their natural frequency pulled about by
the coupling (and, for Ermentrout's fireflies, slowed by the delays).  Scaling all the frequencies
by a factor scales the tempo of the swarm by about the same factor, whatever its coupling.  So when a
target asks for a tempo and a frequency key is varied, the search need not look for the scale
blind: the preset is simulated, its frequencies are multiplied by target ÷ measured tempo, and the
step is repeated (the delays make the law only nearly proportional) until the tempo is within its
tolerance or ``STEPS`` are spent.  The search then starts from the best of these points; the
optimisers still search every key over its whole range.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from firefly_midi.tune.fitness import Target
from firefly_midi.tune.space import Space

FREQUENCY_KEYS = ("swarm.freq_hz", "swarm.freq_min_hz", "swarm.freq_max_hz")
STEPS = 3

Evaluate = Callable[[np.ndarray], tuple[np.ndarray, list[dict[str, float | None]]]]


def tempo_goal(targets: list[Target]) -> tuple[str, float, float] | None:
    """(metric, value, tolerance) of the first tempo target, or None."""
    for t in targets:
        if t.metric in ("tempo_bpm", "mean_freq_hz"):
            return t.metric, t.value, t.tolerance
    return None


def scaled(space: Space, x: np.ndarray, factor: float) -> np.ndarray:
    """``x`` with every varied frequency key multiplied by ``factor`` (clipped into its range)."""
    values, out = space.values(x), np.array(x, dtype=float)
    for i, gene in enumerate(space.genes):
        if gene.key in FREQUENCY_KEYS and values[gene.key]:
            out[i] = gene.coordinate(values[gene.key] * factor)
    return out


def anchor(space: Space, targets: list[Target], start: np.ndarray, evaluate: Evaluate) -> np.ndarray:
    """The start point with its frequencies scaled onto the target tempo (``start`` when no tempo is asked
    for, no frequency varied, or the swarm gives no tempo to scale)."""
    goal = tempo_goal(targets)
    if goal is None or not any(g.key in FREQUENCY_KEYS for g in space.genes):
        return start
    metric, wanted, tolerance = goal
    points, costs = [np.array(start, dtype=float)], []
    for _ in range(STEPS):
        cost, metrics = evaluate(points[-1][None, :])
        costs.append(float(cost[0]))
        tempo = metrics[0].get(metric)
        if tempo is None or tempo <= 0 or abs(tempo - wanted) <= tolerance:
            break
        points.append(scaled(space, points[-1], wanted / tempo))
    return points[int(np.argmin(costs))]
