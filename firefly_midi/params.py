"""The parameters' validation, over the one table of them (``param_table.py``).

Checks follow mido's ``checks.py``: one small function per kind, picked from a dict, raising
built-in errors with short, precise text.  The table's names are imported here, so the rest of the
code base reads every parameter fact from ``params`` (``P.PARAMS``, ``P.check``, ``P.defaults``).
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

from firefly_midi.errors import FireflyError
from firefly_midi.param_table import (  # noqa: F401  (the table's names, read through params)
    EFFECTS,
    FREQ_DISTS,
    MODELS,
    PARAMS,
    PRCS,
    SCALES,
    TOPOLOGIES,
    Param,
    keys_with_effect,
    number_text,
)


class ParamError(FireflyError, ValueError):
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


NOTE_NAMES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def _check_note(p: Param, value: Any) -> int:
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([A-Ga-g])([#b]?)(-?\d)\s*", value)
        if match:
            name, accidental, octave = match.groups()
            value = NOTE_NAMES[name.upper()] + {"#": 1, "b": -1, "": 0}[accidental] + 12 * (int(octave) + 1)
        elif value.strip().isdigit():
            value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 127:
        raise ParamError(f"{p.key} must be {p.allowed()}, got {value!r}", p.key)
    return value


def _check_intlist(p: Param, value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        value = [part for part in re.split(r"[,\s]+", value.strip().strip("[]")) if part]
    if not isinstance(value, list | tuple):
        raise ParamError(f"{p.key} must be {p.allowed()}, got {value!r}", p.key)
    item = Param(p.key, "int", 0, p.doc, lo=p.lo, hi=p.hi)
    try:
        return tuple(_check_int(item, v) for v in value)
    except ParamError:
        raise ParamError(f"{p.key} must be {p.allowed()}, got {value!r}", p.key) from None


_CHECKS = {
    "int": _check_int,
    "float": _check_float,
    "bool": _check_bool,
    "choice": _check_choice,
    "note": _check_note,
    "intlist": _check_intlist,
    "ramps": lambda p, value: automation.check_ramps(value),
    "bindings": lambda p, value: automation.check_bindings(value),
}


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
    return check_value(lookup(key), value)


def check_value(p: Param, value: Any) -> Any:
    """Return ``value`` converted to the type ``p`` declares, or raise ParamError naming ``p.key``."""
    return _CHECKS[p.kind](p, value)


def defaults() -> dict[str, Any]:
    return {p.key: p.default for p in PARAMS.values()}


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
    _check_mapping_consistency(values)
    max_hz = max(fmax, values["swarm.freq_hz"] + 4 * values["swarm.freq_spread_hz"])
    if max_hz * values["clock.tick_ms"] / 1000.0 >= 0.5:
        raise ParamError(
            f"clock.tick_ms ({values['clock.tick_ms']:g}) is too long for {max_hz:g} Hz fireflies: "
            "a tick must be under half the shortest period",
            "clock.tick_ms",
        )


def _check_mapping_consistency(values: dict[str, Any]) -> None:
    if values["mapping.velocity_min"] > values["mapping.velocity_max"]:
        raise ParamError("mapping.velocity_min must not exceed mapping.velocity_max", "mapping.velocity_min")
    if values["follow.bpm_min"] >= values["follow.bpm_max"]:
        raise ParamError("follow.bpm_min must be below follow.bpm_max", "follow.bpm_min")
    if values["input.note_min"] > values["input.note_max"]:
        raise ParamError("input.note_min must not exceed input.note_max", "input.note_min")
    if values["mapping.root"] + 12 * values["mapping.octaves"] > 127:
        raise ParamError(
            f"mapping.octaves ({values['mapping.octaves']}) above mapping.root ({values['mapping.root']}) passes note 127",
            "mapping.octaves",
        )
    if not values["mapping.channels"]:
        raise ParamError("mapping.channels must hold at least one channel", "mapping.channels")
    if values["mapping.split"] == "region" and values["swarm.topology"] != "grid":
        raise ParamError("mapping.split = 'region' needs swarm.topology = 'grid'", "mapping.split")


def plain(value: Any) -> Any:
    """A checked value as JSON carries it: lists for tuples, tables for ramps and bindings."""
    if hasattr(value, "as_table"):
        return value.as_table()
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def jsonable(values: dict[str, Any]) -> dict[str, Any]:
    """Parameter values as JSON carries them."""
    return {key: plain(value) for key, value in values.items()}


def show(value: Any, digits: int = 4) -> str:
    """A value as people read it on a terminal: floats to ``digits`` significant digits, "-" for none."""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return "-" if value is None else str(value)


def params_markdown() -> str:
    """Every parameter as a Markdown table, grouped by preset table (docs/presets.md holds this)."""
    rows = ["| key | allowed | default | unit | while playing | what it does |", "|---|---|---|---|---|---|"]
    for p in PARAMS.values():
        default = number_text(p.default) if p.kind in ("int", "float") else repr(p.default).replace("|", "\\|")
        rows.append(f"| `{p.key}` | {p.allowed()} | {default} | {p.unit} | {p.effect} | {p.doc} |")
    return "\n".join(rows)


def frequency_bounds(values: dict[str, Any]) -> tuple[float, float]:
    """(Ω_l, Ω_u) with the 0 = automatic rule applied (periods 0.85..1.15 of the nominal one)."""
    f = values["swarm.freq_hz"]
    fmin = values["swarm.freq_min_hz"] or f / 1.15
    fmax = values["swarm.freq_max_hz"] or f / 0.85
    return fmin, fmax


# Last: its checks are built on this module's (Param, check_value), and ours call its for the array-of-tables kinds.
from firefly_midi import automation  # noqa: E402
