"""The one table of tunable parameters, and their validation.

Every key that a preset, ``--set``, the control plane or the tuner may touch is declared here once:
its type, its allowed range or choices, its default, its unit and one line of doc.  Nothing else in
the code base lists keys.  Checks follow mido's ``checks.py``: one small function per kind, picked
from a dict, raising built-in errors with short, precise text.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any


class ParamError(ValueError):
    """A parameter key or value is not acceptable.

    ``source`` (a file path) and ``line`` are filled in when the value came from a preset, so the
    message can say exactly where to look.
    """

    def __init__(self, message: str, key: str | None = None, source: str | None = None, line: int | None = None):
        self.message = message
        self.key = key
        self.source = source
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.source:
            where = f"{self.source}:{self.line}: " if self.line else f"{self.source}: "
        return where + self.message

    def located(self, source: str, line: int | None) -> ParamError:
        return ParamError(self.message, self.key, source, line)


@dataclass(frozen=True)
class Param:
    key: str
    kind: str  # "int" | "float" | "bool" | "choice"
    default: Any
    doc: str
    unit: str = ""
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()

    def allowed(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "bool":
            return "true or false"
        return f"{'an integer' if self.kind == 'int' else 'a number'} in {_fmt(self.lo)}..{_fmt(self.hi)}"


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


MODELS = ("pulse", "mirollo_strogatz", "ermentrout", "kuramoto")
PRCS = ("constant", "linear", "sine", "sawtooth")
TOPOLOGIES = ("global", "ring", "grid", "random")
FREQ_DISTS = ("constant", "uniform", "gaussian", "lorentzian", "period_uniform")

_TABLE = (
    Param("swarm.model", "choice", "pulse", "which firefly model advances the swarm", choices=MODELS),
    Param("swarm.n", "int", 100, "number of fireflies", lo=1, hi=10_000_000),
    Param("swarm.seed", "int", 0, "random seed: same seed and parameters give the same flashes", lo=0, hi=2**63 - 1),
    Param("swarm.freq_hz", "float", 1.0, "natural flash frequency Ω (one beat per cycle)", "Hz", 0.01, 100.0),
    Param("swarm.freq_spread_hz", "float", 0.0, "spread of natural frequencies: half-width, σ or γ by freq_dist", "Hz", 0.0, 50.0),
    Param(
        "swarm.freq_dist",
        "choice",
        "constant",
        "distribution of natural frequencies (period_uniform: periods uniform between the bounds)",
        choices=FREQ_DISTS,
    ),
    Param("swarm.freq_min_hz", "float", 0.0, "lower frequency bound Ω_l (0 = freq_hz / 1.15)", "Hz", 0.0, 100.0),
    Param("swarm.freq_max_hz", "float", 0.0, "upper frequency bound Ω_u (0 = freq_hz / 0.85)", "Hz", 0.0, 200.0),
    Param("swarm.coupling", "float", 0.1, "coupling ε (pulse models, per flash or per neighbourhood) or K (kuramoto)", "", 0.0, 100.0),
    Param("swarm.normalize", "bool", True, "divide ε by the number of fireflies each one observes (pulse models)"),
    Param(
        "swarm.interval_coupling", "float", 0.0, "pulse: how strongly observed flashes also retune each firefly's interval", "", 0.0, 1.0
    ),
    Param("swarm.freq_coupling", "float", 0.0, "kuramoto: frequency adaptation L", "rad/s", 0.0, 100.0),
    Param("swarm.prc", "choice", "sine", "phase-response curve (sawtooth: kuramoto only)", choices=PRCS),
    Param("swarm.mode", "choice", "sync", "pulse: synchronise or de-synchronise phases", choices=("sync", "desync")),
    Param("swarm.ms_b", "float", 3.0, "mirollo_strogatz: concavity b of x = ln(1 + (e^b - 1)φ)/b", "", 0.01, 20.0),
    Param("swarm.topology", "choice", "global", "who sees whose flashes", choices=TOPOLOGIES),
    Param("swarm.neighbors", "int", 8, "ring: k nearest; grid: radius in cells; random: peers per flash", "", 1, 1000),
    Param("swarm.rewire_s", "float", 0.0, "random topology: redraw the peers every this many seconds (0 = never)", "s", 0.0, 3600.0),
    Param("swarm.noise", "float", 0.0, "phase diffusion: standard deviation of phase after one second", "cycles/√s", 0.0, 10.0),
    Param("clock.tick_ms", "float", 1.0, "length of one swarm tick", "ms", 0.05, 100.0),
)

PARAMS: dict[str, Param] = {p.key: p for p in _TABLE}


def _check_int(p: Param, value: Any) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip().replace("_", ""))
        except ValueError:
            raise ParamError(f"{p.key} must be {p.allowed()}, got {value!r}", p.key) from None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ParamError(f"{p.key} must be {p.allowed()}, got {value!r}", p.key)
    if not p.lo <= value <= p.hi:
        raise ParamError(f"{p.key} must be {p.allowed()}, got {value}", p.key)
    return value


def _check_float(p: Param, value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ParamError(f"{p.key} must be {p.allowed()}, got {value!r}", p.key) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParamError(f"{p.key} must be {p.allowed()}, got {value!r}", p.key)
    value = float(value)
    if not p.lo <= value <= p.hi:  # also refuses NaN
        raise ParamError(f"{p.key} must be {p.allowed()}, got {value!r}", p.key)
    return value


def _check_bool(p: Param, value: Any) -> bool:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
    if isinstance(value, bool):
        return value
    raise ParamError(f"{p.key} must be {p.allowed()}, got {value!r}", p.key)


def _check_choice(p: Param, value: Any) -> str:
    if isinstance(value, str) and value.strip() in p.choices:
        return value.strip()
    raise ParamError(f"{p.key} must be {p.allowed()}, got {value!r}", p.key)


_CHECKS = {"int": _check_int, "float": _check_float, "bool": _check_bool, "choice": _check_choice}


def lookup(key: str) -> Param:
    """The declaration of ``key``, or a ParamError that suggests the nearest known key."""
    try:
        return PARAMS[key]
    except KeyError:
        near = difflib.get_close_matches(key, PARAMS, n=1)
        hint = f"; did you mean {near[0]}?" if near else ""
        raise ParamError(f"unknown parameter {key!r}{hint}", key) from None


def check(key: str, value: Any) -> Any:
    """Return ``value`` converted to the declared type of ``key``, or raise ParamError."""
    p = lookup(key)
    return _CHECKS[p.kind](p, value)


def defaults() -> dict[str, Any]:
    return {p.key: p.default for p in _TABLE}


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse a command-line ``KEY=VALUE`` into a checked pair."""
    key, sep, value = text.partition("=")
    if not sep:
        raise ParamError(f"expected KEY=VALUE, got {text!r}")
    key = key.strip()
    return key, check(key, value.strip())


def check_consistency(values: dict[str, Any]) -> None:
    """Checks that span several keys; raise ParamError naming the key to change."""
    fmin, fmax = frequency_bounds(values)
    if fmin >= fmax:
        raise ParamError(f"swarm.freq_min_hz ({fmin:g}) must be below swarm.freq_max_hz ({fmax:g})", "swarm.freq_min_hz")
    if values["swarm.model"] == "ermentrout" and not fmin <= values["swarm.freq_hz"] <= fmax:
        raise ParamError(
            f"swarm.freq_hz ({values['swarm.freq_hz']:g}) must lie between swarm.freq_min_hz and swarm.freq_max_hz "
            f"({fmin:g}..{fmax:g}) for the ermentrout model",
            "swarm.freq_hz",
        )
    if values["swarm.prc"] == "sawtooth" and values["swarm.model"] != "kuramoto":
        raise ParamError("swarm.prc = 'sawtooth' works with swarm.model = 'kuramoto' only", "swarm.prc")
    if values["swarm.model"] == "kuramoto" and values["swarm.prc"] not in ("sine", "sawtooth"):
        raise ParamError("swarm.prc must be 'sine' or 'sawtooth' for swarm.model = 'kuramoto'", "swarm.prc")
    max_hz = max(fmax, values["swarm.freq_hz"] + 4 * values["swarm.freq_spread_hz"])
    if max_hz * values["clock.tick_ms"] / 1000.0 >= 0.5:
        raise ParamError(
            f"clock.tick_ms ({values['clock.tick_ms']:g}) is too long for {max_hz:g} Hz fireflies: "
            "a tick must be under half the shortest period",
            "clock.tick_ms",
        )


def frequency_bounds(values: dict[str, Any]) -> tuple[float, float]:
    """(Ω_l, Ω_u) with the 0 = automatic rule applied (periods 0.85..1.15 of the nominal one)."""
    f = values["swarm.freq_hz"]
    fmin = values["swarm.freq_min_hz"] or f / 1.15
    fmax = values["swarm.freq_max_hz"] or f / 0.85
    return fmin, fmax
