"""The one table of tunable parameters.

Every key that a preset, ``--set``, the control plane or the tuner may touch is declared here once:
its type, its allowed range or choices, its default, its unit, one line of doc, and what a change
costs while playing.  Nothing else in the code base lists keys; ``params.py`` checks values against
this table.  Data as a table, as mido's ``specs.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
            return f"a list of integers in {number_text(self.lo)}..{number_text(self.hi)}"
        if self.kind == "ramps":
            return "an array of tables [[automation]] with key, from, to, seconds (and curve, repeat, start_s)"
        if self.kind == "bindings":
            return "an array of tables [[learn]] with cc, key, lo, hi (and channel, 0 = any)"
        return f"{'an integer' if self.kind == 'int' else 'a number'} in {number_text(self.lo)}..{number_text(self.hi)}"


# live: applied between two ticks; relayout: the mapping redraws its voices (notes sounding keep
# their note-offs); reshape: the swarm is drawn afresh (built off the tick thread, then swapped in).
EFFECTS = ("live", "relayout", "reshape")


def number_text(x: float | None) -> str:
    """A bound as a musician reads it: 5 rather than 5.0, nothing for no bound."""
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

TABLE = (
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
        "play the band's beats this much earlier still: live, the daemon already leads by its own latency (tick + lookahead)",
        "ms",
        0.0,
        200.0,
    ),
    Param("follow.pace", "float", 0.9, "the swarm's own tempo as a share of the followed one (below 1: each pulse fires it)", "", 0.5, 1.0),
    # Parameter ramps over time.
    Param("automation", "ramps", (), "parameter ramps: [[automation]] key, from, to, seconds, curve, repeat, start_s"),
    Param("learn", "bindings", (), "MIDI learn: [[learn]] an incoming CC (cc, channel) moves key between lo and hi"),
)

PARAMS: dict[str, Param] = {p.key: p for p in TABLE}


def keys_with_effect(*effects: str) -> tuple[str, ...]:
    """The keys whose change costs one of ``effects`` (see EFFECTS), in table order."""
    return tuple(p.key for p in TABLE if p.effect in effects)
