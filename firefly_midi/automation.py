"""What moves a parameter while the swarm plays: ramps (``[[automation]]``) and controllers bound by
MIDI learn (``[[learn]]``), the two parameter kinds that are arrays of tables.  Each table is checked
field by field, and an error names ``automation[i].field`` (or ``learn[i]``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from firefly_midi import params as P

RAMP_CURVES = ("linear", "exp")
RAMP_REPEATS = ("once", "loop", "pingpong")


@dataclass(frozen=True)
class Ramp:
    """Move ``key`` from ``start`` to ``end`` over ``seconds``, beginning ``start_s`` after the preset starts."""

    key: str
    start: float
    end: float
    seconds: float
    curve: str = "linear"
    repeat: str = "once"
    start_s: float = 0.0

    def value_at(self, t: float) -> float | None:
        """The ramp's value at preset time ``t`` (None before it begins)."""
        if t < self.start_s:
            return None
        u = (t - self.start_s) / self.seconds
        if self.repeat == "once":
            u = min(u, 1.0)
        elif self.repeat == "loop":
            u = u % 1.0
        else:
            u = u % 2.0
            u = 2.0 - u if u > 1.0 else u
        if self.curve == "exp":
            return self.start * (self.end / self.start) ** u
        return self.start + (self.end - self.start) * u

    def as_table(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "from": self.start,
            "to": self.end,
            "seconds": self.seconds,
            "curve": self.curve,
            "repeat": self.repeat,
            "start_s": self.start_s,
        }


def check_ramps(value: Any) -> tuple[Ramp, ...]:
    """Validate ``[[automation]]`` tables; each error names ``automation[i].field``."""
    return _check_tables("automation", value, Ramp, _check_ramp)


def _check_tables(key: str, value: Any, kind: type, check_one: Any) -> tuple:
    """An array of tables (``[[automation]]``, ``[[learn]]``): each checked, errors naming ``key[i]``."""
    if isinstance(value, kind):
        value = [value]
    if not isinstance(value, list | tuple):
        raise P.ParamError(f"{key} must be {P.PARAMS[key].allowed()}, got {value!r}", key)
    return tuple(item if isinstance(item, kind) else check_one(f"{key}[{i}]", item) for i, item in enumerate(value))


def _fields(where: str, table: Any, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    """A table holds every required field and nothing unknown."""
    owner = where.partition("[")[0]
    if not isinstance(table, dict):
        raise P.ParamError(f"{where} must be a table with {', '.join(required)}", owner)
    unknown = set(table) - set(required) - set(optional)
    if unknown:
        raise P.ParamError(f"{where} has unknown field {sorted(unknown)[0]!r}", owner)
    for field in required:
        if field not in table:
            raise P.ParamError(f"{where} needs a {field!r} field", owner)


def _check_ramp(where: str, table: Any) -> Ramp:
    _fields(where, table, ("key", "from", "to", "seconds"), ("curve", "repeat", "start_s"))
    key, start, end = _key_between(where, table, "from", "to")
    seconds = P.check_value(P.Param(f"{where}.seconds", "float", 1.0, "", lo=0.001, hi=1e6), table["seconds"])
    start_s = P.check_value(P.Param(f"{where}.start_s", "float", 0.0, "", lo=0.0, hi=1e6), table.get("start_s", 0.0))
    curve = P.check_value(P.Param(f"{where}.curve", "choice", "linear", "", choices=RAMP_CURVES), table.get("curve", "linear"))
    repeat = P.check_value(P.Param(f"{where}.repeat", "choice", "once", "", choices=RAMP_REPEATS), table.get("repeat", "once"))
    if curve == "exp" and (start <= 0 or end <= 0):
        raise P.ParamError(f"{where}: an exp ramp needs from and to above 0", "automation")
    return Ramp(key, float(start), float(end), seconds, curve, repeat, start_s)


# ------------------------------------------------------------------------------------------- MIDI learn
@dataclass(frozen=True)
class Binding:
    """An incoming control change (``cc`` on ``channel``, 0 = any) moves ``key`` from ``lo`` to ``hi``."""

    cc: int
    key: str
    lo: float
    hi: float
    channel: int = 0

    def matches(self, channel: int, cc: int) -> bool:
        """``channel`` is 1-based, as musicians count."""
        return cc == self.cc and self.channel in (0, channel)

    def value(self, cc_value: int) -> float | int:
        x = self.lo + (self.hi - self.lo) * min(max(cc_value, 0), 127) / 127.0
        return round(x) if P.PARAMS[self.key].kind == "int" else x

    def as_table(self) -> dict[str, Any]:
        return {"cc": self.cc, "channel": self.channel, "key": self.key, "lo": self.lo, "hi": self.hi}


def check_bindings(value: Any) -> tuple[Binding, ...]:
    """Validate ``[[learn]]`` tables; each error names ``learn[i].field``."""
    return _check_tables("learn", value, Binding, _check_binding)


def _check_binding(where: str, table: Any) -> Binding:
    _fields(where, table, ("cc", "key", "lo", "hi"), ("channel",))
    key, lo, hi = _key_between(where, table, "lo", "hi")
    cc = P.check_value(P.Param(f"{where}.cc", "int", 0, "", lo=0, hi=127), table["cc"])
    channel = P.check_value(P.Param(f"{where}.channel", "int", 0, "", lo=0, hi=16), table.get("channel", 0))
    return Binding(cc, key, float(lo), float(hi), channel)


def _key_between(where: str, table: dict[str, Any], low: str, high: str) -> tuple[str, Any, Any]:
    """The numeric key a table moves, and its two end values checked against that key."""
    key = numeric_key(table["key"], where)
    try:
        return key, P.check(key, table[low]), P.check(key, table[high])
    except P.ParamError as exc:
        raise P.ParamError(f"{where}: {exc.message}", where.partition("[")[0]) from None


def numeric_key(key: Any, where: str) -> str:
    """``key`` if it names a numeric parameter (the only kind a ramp or a knob can move)."""
    try:
        target = P.lookup(key) if isinstance(key, str) else None
    except P.ParamError as exc:
        raise P.ParamError(f"{where}.key: {exc.message}", where.partition("[")[0]) from None
    if target is None or target.kind not in ("int", "float"):
        raise P.ParamError(f"{where}.key must name a numeric parameter, got {key!r}", where.partition("[")[0])
    return key
