"""The search space: which parameters the tuner varies, over what range, as a point in the unit cube.

Both optimisers work on x ∈ [0, 1]^d, one coordinate (a gene) per varied key, so mutation sizes and
ES step sizes mean the same thing for every key.  A gene maps its coordinate onto the key's range,
on a log scale where the range spans more than a factor of ten (coupling 0.001..0.1 is searched as
evenly per decade as 0.01..1), rounding for integers and slicing [0, 1) into equal parts for choices.

When the tempo ``swarm.freq_hz`` is varied and the frequency bounds ``swarm.freq_min_hz`` /
``swarm.freq_max_hz`` are not, the bounds move with it, keeping their ratio to it: the swarm keeps
the spread of periods its preset gave it (ermentrout-800's 0.85..1.15 of the period) at any tempo.

Default ranges (``--vary KEY`` without a range) read the parameter table: the key's ``search`` span
where it declares one, else a factor of four either side of the preset's value, clipped to what the
key allows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from firefly_midi import params as P

AROUND = 4.0  # default range: the preset's value divided and multiplied by this
LOG_ABOVE = 10.0  # ranges spanning more than this factor are searched on a log scale


@dataclass(frozen=True)
class Gene:
    """One varied key: numeric between ``lo`` and ``hi`` (log or linear), or one of ``choices``."""

    key: str
    lo: float = 0.0
    hi: float = 1.0
    log: bool = False
    choices: tuple[Any, ...] = ()

    def value(self, x: float) -> Any:
        """The key's value at coordinate ``x`` ∈ [0, 1]."""
        x = min(max(float(x), 0.0), 1.0)
        if self.choices:
            return self.choices[min(int(x * len(self.choices)), len(self.choices) - 1)]
        span = (math.log(self.lo), math.log(self.hi)) if self.log else (self.lo, self.hi)
        value = span[0] + x * (span[1] - span[0])
        value = math.exp(value) if self.log else value
        if P.PARAMS[self.key].kind == "int":
            return min(max(round(value), round(self.lo)), round(self.hi))
        # Six digits are plenty for any knob and keep the written preset readable; clip again since
        # rounding (or an exp/log round trip) may step a hair outside the range.
        return min(max(float(f"{value:.6g}"), self.lo), self.hi)

    def coordinate(self, value: Any) -> float:
        """Where ``value`` lies in [0, 1] (the middle of its slice for a choice)."""
        if self.choices:
            index = self.choices.index(value) if value in self.choices else 0
            return (index + 0.5) / len(self.choices)
        value = min(max(float(value), self.lo), self.hi)
        if self.hi == self.lo:
            return 0.5
        if self.log:
            return (math.log(value) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
        return (value - self.lo) / (self.hi - self.lo)

    def describe(self) -> str:
        if self.choices:
            return f"{self.key} in {{{', '.join(map(str, self.choices))}}}"
        scale = " (log)" if self.log else ""
        return f"{self.key} {self.lo:g}..{self.hi:g}{scale}"


def parse_vary(text: str, values: dict[str, Any]) -> Gene:
    """``KEY``, ``KEY=LO:HI`` or, for a choice, ``KEY=a,b,c``; ParamError names ``--vary`` when wrong."""
    key, sep, span = (part.strip() for part in text.partition("="))
    p = P.lookup(key)
    if p.kind in ("choice", "bool"):
        options = p.choices if p.kind == "choice" else (False, True)
        if sep:
            options = tuple(P.check(key, item.strip()) for item in span.split(",") if item.strip())
        if len(options) < 2:
            raise P.ParamError(f"--vary {text!r}: give at least two choices for {key}", key)
        return Gene(key, choices=tuple(options))
    if p.kind not in ("int", "float"):
        raise P.ParamError(f"--vary {text!r}: {key} is {p.allowed()}; only numbers, choices and true/false can be tuned", key)
    if not sep:
        return default_gene(key, values[key])
    lo_text, colon, hi_text = span.partition(":")
    if not colon:
        raise P.ParamError(f"--vary {text!r}: expected KEY=LO:HI, e.g. swarm.coupling=0.001:0.1", key)
    try:
        lo, hi = P.check(key, lo_text), P.check(key, hi_text)
    except P.ParamError as exc:
        raise P.ParamError(f"--vary {text!r}: {exc.message}", key) from None
    if not lo < hi:
        raise P.ParamError(f"--vary {text!r}: LO must be below HI", key)
    return numeric_gene(key, lo, hi)


def numeric_gene(key: str, lo: float, hi: float) -> Gene:
    return Gene(key, float(lo), float(hi), log=lo > 0 and hi / lo > LOG_ABOVE)


def default_gene(key: str, value: float) -> Gene:
    """The key's declared search span, else a factor of four around ``value``, inside the valid range."""
    p = P.PARAMS[key]
    if p.search is not None:
        return numeric_gene(key, *p.search)
    if not value or value <= 0:
        raise P.ParamError(f"--vary {key}: no default range around {value!r}; give one, e.g. --vary {key}=LO:HI", key)
    lo, hi = max(value / AROUND, p.lo), min(value * AROUND, p.hi)
    if p.kind == "int":
        lo, hi = math.floor(lo), math.ceil(hi)
    if not lo < hi:
        raise P.ParamError(f"--vary {key}: no room to vary it around {value!r}; give a range with --vary {key}=LO:HI", key)
    return Gene(key, float(lo), float(hi), log=lo > 0)


TEMPO_METRICS = ("tempo_bpm", "mean_freq_hz")


def default_keys(values: dict[str, Any], metrics: Sequence[str] = ()) -> list[str]:
    """What ``tune`` varies when no ``--vary`` is given: the coupling; the tempo only when a target
    asks for one (a musician tuning the sync time wants the preset's tempo kept); and for the
    topologies whose peers matter, how many peers each flash reaches."""
    keys = ["swarm.coupling"]
    if any(m in TEMPO_METRICS for m in metrics):
        keys.append("swarm.freq_hz")
    if values["swarm.topology"] in ("random", "ring"):
        keys.append("swarm.neighbors")
    if values["swarm.model"] == "kuramoto" and values["swarm.freq_coupling"]:
        keys.append("swarm.freq_coupling")
    return keys


@dataclass(frozen=True)
class Space:
    """The genes searched, over a base set of values the genes overwrite."""

    genes: tuple[Gene, ...]
    base: dict[str, Any]

    @classmethod
    def build(cls, base: dict[str, Any], vary: list[str], metrics: Sequence[str] = ()) -> Space:
        """The genes ``vary`` names, or (none named) the defaults for a search toward ``metrics``."""
        texts = vary or default_keys(base, metrics)
        genes = tuple(parse_vary(text, base) for text in texts)
        keys = [g.key for g in genes]
        if len(set(keys)) != len(keys):
            raise P.ParamError(f"--vary names a key twice: {', '.join(sorted({k for k in keys if keys.count(k) > 1}))}")
        return cls(genes, dict(base))

    @property
    def dim(self) -> int:
        return len(self.genes)

    def values(self, x: np.ndarray) -> dict[str, Any]:
        """The full parameter set at point ``x`` (not yet checked for consistency)."""
        values = {**self.base, **self.varied(x)}
        varied = {g.key for g in self.genes}
        if "swarm.freq_hz" in varied and not varied & {"swarm.freq_min_hz", "swarm.freq_max_hz"}:
            ratio = values["swarm.freq_hz"] / self.base["swarm.freq_hz"]
            for bound in ("swarm.freq_min_hz", "swarm.freq_max_hz"):  # 0 (automatic) stays 0
                values[bound] = float(f"{self.base[bound] * ratio:.6g}")
        return values

    def varied(self, x: np.ndarray) -> dict[str, Any]:
        return {g.key: g.value(xi) for g, xi in zip(self.genes, x, strict=True)}

    def start(self) -> np.ndarray:
        """The base values as a point (clipped into each range): where ES starts, one GA individual."""
        return np.array([g.coordinate(self.base[g.key]) for g in self.genes])
