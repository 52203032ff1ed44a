"""Damage to a running swarm, as ``simulate --damage`` takes it: what, when, how much, where.

Pure: parsing and choosing the fireflies hit; ``firefly_midi.simulate`` applies it with ``Swarm.damage``.
Syntax ``AT_S:KIND:AMOUNT[@ROW,COL][:FOR_S]``, for example ``20:scramble:0.5`` (a random half at
t = 20 s), ``20:silence:30%@0.5,0.5`` (a disc holding 30% of the swarm, centred on the grid's middle),
``20:silence:0.3:5`` (dark for 5 s, then revived with random phases).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from firefly_midi.params import ParamError
from firefly_midi.swarm import topology

KINDS = ("scramble", "silence")
FORM = "AT_S:KIND:AMOUNT[@ROW,COL][:FOR_S], e.g. 20:scramble:0.5, 20:silence:30%@0.5,0.5 or 20:silence:0.3:5"


@dataclass(frozen=True)
class Damage:
    """``amount`` of the swarm (a fraction in (0, 1]) scrambled or silenced at ``at_s`` seconds.

    ``region``: None (a random subset) or the (row, column) centre of a disc, 0..1 across the grid.
    ``for_s``: None (silenced for good) or the seconds after which the silenced fireflies revive.
    """

    at_s: float
    kind: str
    amount: float
    region: tuple[float, float] | None = None
    for_s: float | None = None

    @property
    def revive_s(self) -> float | None:
        return None if self.for_s is None else self.at_s + self.for_s


def parse(text: str) -> Damage:
    """A ``--damage`` value as a Damage; ParamError naming ``--damage`` and the form on anything else."""
    parts = text.split(":")
    if len(parts) not in (3, 4):
        raise _refused(text, "it needs 3 or 4 fields separated by ':'")
    at_text, kind, amount_text, *for_text = parts
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise _refused(text, f"KIND must be {' or '.join(KINDS)}, not {kind!r}")
    amount_text, _, region_text = amount_text.partition("@")
    for_s = _number(text, "FOR_S", for_text[0]) if for_text else None
    if for_s is not None and (kind != "silence" or for_s <= 0):
        raise _refused(text, "FOR_S (how long the fireflies stay dark) must be positive and only follows silence")
    return Damage(_at(text, at_text), kind, _amount(text, amount_text), _region(text, region_text) if region_text else None, for_s)


def _refused(text: str, why: str) -> ParamError:
    return ParamError(f"--damage {text!r}: {why}; expected {FORM}", "--damage")


def _number(text: str, name: str, field: str) -> float:
    try:
        value = float(field)
    except ValueError:
        raise _refused(text, f"{name} must be a number, not {field!r}") from None
    if not math.isfinite(value):
        raise _refused(text, f"{name} must be finite, not {field!r}")
    return value


def _at(text: str, field: str) -> float:
    at_s = _number(text, "AT_S", field)
    if at_s < 0:
        raise _refused(text, f"AT_S must be at least 0 seconds, not {field!r}")
    return at_s


def _amount(text: str, field: str) -> float:
    """A fraction in (0, 1], or a percentage in (0, 100] with a trailing '%'."""
    percent = field.strip().endswith("%")
    amount = _number(text, "AMOUNT", field.strip().removesuffix("%")) / (100.0 if percent else 1.0)
    if not 0 < amount <= 1:
        raise _refused(text, f"AMOUNT must be a fraction in (0, 1] or a percentage in (0%, 100%], not {field!r}")
    return amount


def _region(text: str, field: str) -> tuple[float, float]:
    coords = field.split(",")
    if len(coords) != 2:
        raise _refused(text, f"the region after '@' must be ROW,COL (0..1 across the grid), not {field!r}")
    row, col = (_number(text, "ROW,COL", c) for c in coords)
    if not (0 <= row <= 1 and 0 <= col <= 1):
        raise _refused(text, f"ROW,COL must each be in 0..1 (0.5,0.5 is the middle of the grid), not {field!r}")
    return row, col


def select(damage: Damage, n: int, seed: int) -> np.ndarray:
    """Sorted ids (int64) of the round(amount·n) fireflies ``damage`` hits in a swarm of ``n``.

    A random subset drawn from ``seed`` and the damage time (so two events at different times hit
    different fireflies, and a rerun hits the same ones); with a region, the fireflies nearest its
    centre on the 2-D grid of ``topology.grid_shape`` (a disc), whatever the topology couples.
    """
    count = min(n, round(damage.amount * n))
    if damage.region is None:
        rng = np.random.default_rng([seed, round(damage.at_s * 1000)])
        return np.sort(rng.choice(n, size=count, replace=False)).astype(np.int64)
    rows, cols = topology.grid_shape(n)
    row, col = damage.region[0] * (rows - 1), damage.region[1] * (cols - 1)
    nearest = np.argsort(topology.grid_distance(n, row, col), kind="stable")[:count]  # stable: ties go to the lower id
    return np.sort(nearest).astype(np.int64)
