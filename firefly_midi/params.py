"""The one table of tunable parameters, and their validation.

Every key that a preset, ``--set``, the control plane or the tuner may touch is declared here once:
its type, its allowed range or choices, its default, its unit and one line of doc.  Nothing else in
the code base lists keys.  Checks follow mido's ``checks.py``: one small function per kind, picked
from a dict, raising built-in errors with short, precise text.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

from firefly_midi.errors import FireflyError


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


@dataclass(frozen=True)
class Param:
    key: str
    kind: str  # "int" | "float" | "bool" | "choice" | "note" | "intlist" | "ramps" | "bindings"
    default: Any
    doc: str
    unit: str = ""
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    search: tuple[float, float] | None = None  # the tuner's default --vary range, where "around the preset's value" fails
    effect: str = "live"  # what a change costs while playing: one of EFFECTS

    def __post_init__(self) -> None:
        if self.effect not in EFFECTS:
            raise ValueError(f"{self.key}: effect must be one of {EFFECTS}, got {self.effect!r}")

    def allowed(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "bool":
            return "true or false"
        if self.kind == "note":
            return "a MIDI note 0..127 or a name like C4, F#3, Bb2 (C4 = 60)"
        if self.kind == "intlist":
            return f"a list of integers in {_fmt(self.lo)}..{_fmt(self.hi)}"
        if self.kind == "ramps":
            return "an array of tables [[automation]] with key, from, to, seconds (and curve, repeat, start_s)"
        if self.kind == "bindings":
            return "an array of tables [[learn]] with cc, key, lo, hi (and channel, 0 = any)"
        return f"{'an integer' if self.kind == 'int' else 'a number'} in {_fmt(self.lo)}..{_fmt(self.hi)}"


# live: applied between two ticks; relayout: the mapping redraws its voices (notes sounding keep
# their note-offs); reshape: the swarm is drawn afresh (built off the tick thread, then swapped in).
EFFECTS = ("live", "relayout", "reshape")


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


MODELS = ("pulse", "mirollo_strogatz", "ermentrout", "kuramoto")
PRCS = ("constant", "linear", "sine", "sawtooth")
TOPOLOGIES = ("global", "ring", "grid", "random")
SCALES = (
    "major",
    "minor",
    "dorian",
    "phrygian",
    "lydian",
    "mixolydian",
    "locrian",
    "harmonic_minor",
    "pentatonic",
    "minor_pentatonic",
    "blues",
    "whole_tone",
    "chromatic",
)
FREQ_DISTS = ("constant", "uniform", "gaussian", "lorentzian", "period_uniform")

_TABLE = (
    Param("swarm.model", "choice", "pulse", "which firefly model advances the swarm", choices=MODELS),
    Param("swarm.n", "int", 100, "number of fireflies", lo=1, hi=10_000_000, effect="reshape"),
    Param("swarm.seed", "int", 0, "random seed: same seed and parameters give the same flashes", lo=0, hi=2**63 - 1, effect="reshape"),
    Param("swarm.freq_hz", "float", 1.0, "natural flash frequency Ω (one beat per cycle)", "Hz", 0.01, 100.0),
    Param(
        "swarm.freq_spread_hz",
        "float",
        0.0,
        "spread of natural frequencies: half-width, σ or γ by freq_dist",
        "Hz",
        0.0,
        50.0,
        search=(0.0, 0.5),
        effect="reshape",
    ),
    Param(
        "swarm.freq_dist",
        "choice",
        "constant",
        "distribution of natural frequencies (period_uniform: periods uniform between the bounds)",
        choices=FREQ_DISTS,
        effect="reshape",
    ),
    Param("swarm.freq_min_hz", "float", 0.0, "lower frequency bound Ω_l (0 = freq_hz / 1.15)", "Hz", 0.0, 100.0),
    Param("swarm.freq_max_hz", "float", 0.0, "upper frequency bound Ω_u (0 = freq_hz / 0.85)", "Hz", 0.0, 200.0),
    Param("swarm.coupling", "float", 0.1, "coupling ε (pulse models, per flash or per neighbourhood) or K (kuramoto)", "", 0.0, 100.0),
    Param("swarm.normalize", "bool", True, "divide ε by the number of fireflies each one observes (pulse models)"),
    Param(
        "swarm.interval_coupling",
        "float",
        0.0,
        "pulse: how strongly observed flashes also retune each firefly's interval",
        "",
        0.0,
        1.0,
        search=(0.0, 0.5),
    ),
    Param("swarm.freq_coupling", "float", 0.0, "kuramoto: frequency adaptation L", "rad/s", 0.0, 100.0, search=(0.0, 10.0)),
    Param("swarm.prc", "choice", "sine", "phase-response curve (sawtooth: kuramoto only)", choices=PRCS),
    Param("swarm.mode", "choice", "sync", "pulse: synchronise or de-synchronise phases", choices=("sync", "desync")),
    Param("swarm.ms_b", "float", 3.0, "mirollo_strogatz: concavity b of x = ln(1 + (e^b - 1)φ)/b", "", 0.01, 20.0),
    Param("swarm.topology", "choice", "global", "who sees whose flashes", choices=TOPOLOGIES, effect="reshape"),
    Param("swarm.neighbors", "int", 8, "ring: k nearest; grid: radius in cells; random: peers per flash", "", 1, 1000, effect="reshape"),
    Param(
        "swarm.rewire_s",
        "float",
        0.0,
        "random topology: every firefly gets new peers once in this many seconds, a few each tick (0 = never)",
        "s",
        0.0,
        3600.0,
    ),
    Param(
        "swarm.delay_ms",
        "float",
        0.0,
        "pulse-type models: each flash reaches each observer after a uniform random delay in [0, this]"
        " (global: one delay per flash, seen by all at once); 0 = instantly",
        "ms",
        0.0,
        1000.0,
    ),
    Param(
        "swarm.noise",
        "float",
        0.0,
        "phase diffusion: standard deviation of phase after one second",
        "cycles/√s",
        0.0,
        10.0,
        search=(0.0, 0.05),
    ),
    Param("clock.tick_ms", "float", 1.0, "length of one swarm tick", "ms", 0.05, 100.0, effect="reshape"),
    Param("clock.lookahead_ms", "float", 5.0, "native JACK: events leave this long after their tick (tick, jitter, period)", "ms", 0, 200),
    # What a flash plays.
    Param(
        "mapping.mode",
        "choice",
        "voices",
        "voices: groups of fireflies share a note; per_firefly: one note each; density: one note, loud when many flash",
        choices=("voices", "per_firefly", "density"),
        effect="relayout",
    ),
    Param("mapping.voices", "int", 4, "voices mode: number of voices the swarm is split into", "", 1, 128, effect="relayout"),
    Param(
        "mapping.split",
        "choice",
        "id",
        "voices mode: split fireflies by id, by natural frequency (slow ones low) or by grid region",
        choices=("id", "frequency", "region"),
        effect="relayout",
    ),
    Param("mapping.scale", "choice", "pentatonic", "scale the notes are drawn from", choices=SCALES, effect="relayout"),
    Param("mapping.root", "note", 48, "lowest note of the scale (C4 = 60)", effect="relayout"),
    Param("mapping.octaves", "int", 2, "how many octaves above the root the notes span", "", 1, 8, effect="relayout"),
    Param("mapping.channels", "intlist", (1,), "MIDI channels (1..16); voices take them in turn", "", 1, 16, effect="relayout"),
    Param("mapping.velocity_min", "int", 30, "velocity when one firefly of a voice flashes", "", 1, 127),
    Param("mapping.velocity_max", "int", 120, "velocity when the whole voice flashes at once", "", 1, 127),
    Param(
        "mapping.velocity_curve",
        "choice",
        "linear",
        "how the share of a voice flashing maps to velocity (soft: √, hard: square, fixed: always velocity_max)",
        choices=("linear", "soft", "hard", "fixed"),
    ),
    Param("mapping.note_ms", "float", 120.0, "note length (used when note_fraction is 0)", "ms", 1.0, 10_000.0),
    Param("mapping.note_fraction", "float", 0.0, "note length as a share of the swarm's live period (0 = use note_ms)", "", 0.0, 4.0),
    Param("mapping.max_notes_per_tick", "int", 16, "cap on notes started in one tick; the excess is counted, not queued", "", 1, 128),
    Param("mapping.max_notes_per_s", "int", 400, "cap on notes started per second; the excess is counted, not queued", "", 1, 10_000),
    Param("mapping.cc_order", "int", -1, "send the order parameter r (0..1 → 0..127) on this CC number (-1 = off)", "", -1, 127),
    Param("mapping.cc_channel", "int", 1, "channel of the CC outputs", "", 1, 16),
    Param(
        "mapping.clock_out",
        "bool",
        False,
        "send MIDI clock (24 PPQN, start/stop, song position) at the swarm's live tempo, or on the drummer's beats when following",
    ),
    # How incoming MIDI acts on the swarm.
    Param("input.enabled", "bool", True, "incoming notes are flashes the swarm sees"),
    Param("input.channels", "intlist", (), "channels (1..16) that count; empty = all", "", 1, 16),
    Param("input.note_min", "note", 0, "lowest incoming note that counts"),
    Param("input.note_max", "note", 127, "highest incoming note that counts"),
    Param("input.strength", "float", 1.0, "an incoming note counts as this many neighbourhoods flashing at once", "", 0.0, 100.0),
    Param("input.velocity_scaled", "bool", True, "scale the strength by velocity / 127"),
    Param(
        "input.target",
        "choice",
        "all",
        "who sees an incoming note: all fireflies, or the voice that plays the nearest note (a grid region with split = region)",
        choices=("all", "voice"),
    ),
    Param(
        "input.reflex",
        "bool",
        True,
        "native JACK: fireflies an input note flashes at once answer in the input's own cycle (firefly_midi/reflex.py)",
    ),
    Param(
        "input.reflex_frames", "int", 0, "native JACK: the reflex's notes leave this many frames after the input note", "frames", 0, 4096
    ),
    Param("input.max_per_tick", "int", 64, "incoming messages handled per tick; the rest are dropped and counted", "", 1, 4096),
    Param("input.clock_in", "bool", False, "incoming MIDI clock sets swarm.freq_hz (one beat per flash cycle)"),
    # Following a drummer (firefly_midi/follow.py, docs/follow.md).
    Param("follow.enabled", "bool", False, "incoming hits lead: the swarm pulses on the drummer's beat grid instead of on each note"),
    Param("follow.notes", "intlist", (35, 36, 38, 40), "notes that are beats (GM kick 35, 36 and snare 38, 40)", "", 0, 127),
    Param("follow.velocity_weight", "float", 1.0, "a hit pulls with (velocity / 127) to this power (0 = all alike)", "", 0.0, 4.0),
    Param("follow.bpm_min", "float", 60.0, "slowest tempo followed", "BPM", 20.0, 400.0),
    Param("follow.bpm_max", "float", 180.0, "fastest tempo followed", "BPM", 20.0, 400.0),
    Param("follow.max_bpm_per_beat", "float", 2.0, "most the followed tempo moves in one beat while locked", "BPM", 0.01, 100.0),
    Param("follow.refractory_ms", "float", 60.0, "hits closer than this merge into one beat, the loudest kept (flams)", "ms", 0.0, 500.0),
    Param("follow.grid_window", "float", 0.06, "on-grid weight σ: a hit this far off the beat pulls 0.6 as hard", "beats", 0.005, 0.5),
    Param("follow.phase_gain", "float", 0.3, "share of a hit's timing error the beat grid moves by", "", 0.0, 1.0),
    Param("follow.tempo_gain", "float", 0.2, "share of a hit's timing error the beat period moves by", "", 0.0, 1.0),
    Param(
        "follow.relock_beats",
        "int",
        4,
        "after this many beats with no hit on the grid, or this many off-grid hits in a row, look for a new tempo",
        "beats",
        1,
        64,
    ),
    Param(
        "follow.lead_ms",
        "float",
        0.0,
        "play the band's beats this early: live, clock.tick_ms + clock.lookahead_ms cancels the daemon's own latency",
        "ms",
        0.0,
        200.0,
    ),
    Param("follow.pace", "float", 0.9, "the swarm's own tempo as a share of the followed one (below 1: each pulse fires it)", "", 0.5, 1.0),
    # Parameter ramps over time.
    Param("automation", "ramps", (), "parameter ramps: [[automation]] key, from, to, seconds, curve, repeat, start_s"),
    Param("learn", "bindings", (), "MIDI learn: [[learn]] an incoming CC (cc, channel) moves key between lo and hi"),
)

PARAMS: dict[str, Param] = {p.key: p for p in _TABLE}


def keys_with_effect(*effects: str) -> tuple[str, ...]:
    """The keys whose change costs one of ``effects`` (see EFFECTS), in table order."""
    return tuple(p.key for p in _TABLE if p.effect in effects)


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
    "ramps": lambda p, value: check_ramps(value),
    "bindings": lambda p, value: check_bindings(value),
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
    for p in _TABLE:
        default = _fmt(p.default) if p.kind in ("int", "float") else repr(p.default).replace("|", "\\|")
        rows.append(f"| `{p.key}` | {p.allowed()} | {default} | {p.unit} | {p.effect} | {p.doc} |")
    return "\n".join(rows)


def frequency_bounds(values: dict[str, Any]) -> tuple[float, float]:
    """(Ω_l, Ω_u) with the 0 = automatic rule applied (periods 0.85..1.15 of the nominal one)."""
    f = values["swarm.freq_hz"]
    fmin = values["swarm.freq_min_hz"] or f / 1.15
    fmax = values["swarm.freq_max_hz"] or f / 0.85
    return fmin, fmax


# ----------------------------------------------------------------------------------------------------------- automation
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
        raise ParamError(f"{key} must be {PARAMS[key].allowed()}, got {value!r}", key)
    return tuple(item if isinstance(item, kind) else check_one(f"{key}[{i}]", item) for i, item in enumerate(value))


def _fields(where: str, table: Any, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    """A table holds every required field and nothing unknown."""
    owner = where.partition("[")[0]
    if not isinstance(table, dict):
        raise ParamError(f"{where} must be a table with {', '.join(required)}", owner)
    unknown = set(table) - set(required) - set(optional)
    if unknown:
        raise ParamError(f"{where} has unknown field {sorted(unknown)[0]!r}", owner)
    for field in required:
        if field not in table:
            raise ParamError(f"{where} needs a {field!r} field", owner)


def _check_ramp(where: str, table: Any) -> Ramp:
    _fields(where, table, ("key", "from", "to", "seconds"), ("curve", "repeat", "start_s"))
    key, start, end = _key_between(where, table, "from", "to")
    seconds = _check_float(Param(f"{where}.seconds", "float", 1.0, "", lo=0.001, hi=1e6), table["seconds"])
    start_s = _check_float(Param(f"{where}.start_s", "float", 0.0, "", lo=0.0, hi=1e6), table.get("start_s", 0.0))
    curve = _check_choice(Param(f"{where}.curve", "choice", "linear", "", choices=RAMP_CURVES), table.get("curve", "linear"))
    repeat = _check_choice(Param(f"{where}.repeat", "choice", "once", "", choices=RAMP_REPEATS), table.get("repeat", "once"))
    if curve == "exp" and (start <= 0 or end <= 0):
        raise ParamError(f"{where}: an exp ramp needs from and to above 0", "automation")
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
        return round(x) if PARAMS[self.key].kind == "int" else x

    def as_table(self) -> dict[str, Any]:
        return {"cc": self.cc, "channel": self.channel, "key": self.key, "lo": self.lo, "hi": self.hi}


def check_bindings(value: Any) -> tuple[Binding, ...]:
    """Validate ``[[learn]]`` tables; each error names ``learn[i].field``."""
    return _check_tables("learn", value, Binding, _check_binding)


def _check_binding(where: str, table: Any) -> Binding:
    _fields(where, table, ("cc", "key", "lo", "hi"), ("channel",))
    key, lo, hi = _key_between(where, table, "lo", "hi")
    cc = _check_int(Param(f"{where}.cc", "int", 0, "", lo=0, hi=127), table["cc"])
    channel = _check_int(Param(f"{where}.channel", "int", 0, "", lo=0, hi=16), table.get("channel", 0))
    return Binding(cc, key, float(lo), float(hi), channel)


def _key_between(where: str, table: dict[str, Any], low: str, high: str) -> tuple[str, Any, Any]:
    """The numeric key a table moves, and its two end values checked against that key."""
    key = numeric_key(table["key"], where)
    try:
        return key, check(key, table[low]), check(key, table[high])
    except ParamError as exc:
        raise ParamError(f"{where}: {exc.message}", where.partition("[")[0]) from None


def numeric_key(key: Any, where: str) -> str:
    """``key`` if it names a numeric parameter (the only kind a ramp or a knob can move)."""
    try:
        target = lookup(key) if isinstance(key, str) else None
    except ParamError as exc:
        raise ParamError(f"{where}.key: {exc.message}", where.partition("[")[0]) from None
    if target is None or target.kind not in ("int", "float"):
        raise ParamError(f"{where}.key must name a numeric parameter, got {key!r}", where.partition("[")[0])
    return key
