"""Synthetic drummers, and how well a swarm follows one (shared by tests/test_follow.py and
benchmarks/bench_follow.py).

A drummer plays a rock groove in 4/4 on General MIDI drums: kick on 1 and 3 and a syncopated kick on
the "and" of 3, snare on 2 and 4, closed hi-hat eighths, soft ghost snares on some sixteenths and now
and then a flam (a soft grace note 25 ms before the stroke).  Variants change one thing each: the
tempo ramps, the timing is humanised, every fourth bar ends in a fill of sixteenth snares, hits are
dropped, or the drummer stops and starts again at another tempo.  Each drummer knows the beats it
meant (``beats``, ``bpm``) so a follower's clock can be scored against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from firefly_midi.jack import clock as frame_clock
from firefly_midi.player import Player
from firefly_midi.render import TimedInput

KICK, SNARE, HAT = 36, 38, 42
CHANNEL = 9  # drums: MIDI channel 10


@dataclass
class Drummer:
    name: str
    hits: list[tuple[float, list[int]]]  # every note-on and note-off, in time order
    beats: np.ndarray  # the beats the drummer means, in seconds (no humanising)
    bpm: np.ndarray  # the tempo at each beat
    played: np.ndarray  # when the drummer's stroke on each beat sounded (humanised; NaN: dropped)
    fills: list[tuple[float, float]] = field(default_factory=list)  # (start, end) of each fill
    restart_s: float | None = None  # when the drummer starts again after a stop
    seconds: float = 0.0


def _beat_times(bpm_at: Any, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
    beats, tempi, t = [], [], start
    while t < end:
        bpm = bpm_at(t)
        beats.append(t)
        tempi.append(bpm)
        t += 60.0 / bpm
    return np.array(beats), np.array(tempi)


def _bar(beats: np.ndarray, bar: int, fill: bool) -> list[tuple[float, int, int, int]]:
    """(time, note, velocity, beat) of one bar's strokes, from its four beats (beat -1: between beats)."""
    b = beats[4 * bar : 4 * bar + 5]
    if b.size < 5:
        return []
    period = np.diff(b)
    out = []
    for i in range(4):
        at, p = b[i], period[i]
        out.append((at, KICK if i in (0, 2) else SNARE, 110 if i in (0, 2) else 100, 4 * bar + i))
        out.append((at, HAT, 70, -1))
        out.append((at + p / 2, HAT, 60, -1))
        if fill and i >= 2:
            out.extend((at + j * p / 4, SNARE, 85 + 10 * (j == 0), -1) for j in range(1, 4))
        elif i == 1:
            out.append((at + 3 * p / 4, SNARE, 28, -1))  # ghost note
        elif i == 2:
            out.append((at + p / 2, KICK, 90, -1))  # syncopated kick on the "and" of 3
    return out


def play(
    name: str,
    bpm_at: Any,
    seconds: float,
    sigma_ms: float = 3.0,
    fill_every: int = 0,
    drop: float = 0.0,
    stop: tuple[float, float] | None = None,
    seed: int = 1,
) -> Drummer:
    """A drummer at ``bpm_at(t)``; ``stop`` = (from_s, to_s) of silence, the tempo after it is ``bpm_at``'s."""
    rng = np.random.default_rng(seed)
    spans = [(0.5, seconds)] if stop is None else [(0.5, stop[0]), (stop[1], seconds)]
    hits, all_beats, all_bpm, all_played, fills = [], [], [], [], []
    for start, end in spans:
        beats, tempi = _beat_times(bpm_at, start, end)
        used = 4 * max((beats.size - 1) // 4, 0)
        all_beats.append(beats[:used])
        all_bpm.append(tempi[:used])
        played = np.full(used, np.nan)
        all_played.append(played)
        for bar in range(used // 4):
            fill = fill_every > 0 and bar % fill_every == fill_every - 1
            if fill:
                fills.append((beats[4 * bar + 2], beats[4 * bar + 4]))
            for at, note, velocity, beat in _bar(beats, bar, fill):
                if beat >= 0 and drop and rng.random() < drop:
                    continue
                at += rng.normal(0.0, sigma_ms / 1000.0)
                if beat >= 0:
                    played[beat] = at
                if note == SNARE and beat >= 0 and rng.random() < 0.15:
                    hits.append((at - 0.025, [0x90 | CHANNEL, SNARE, 45]))  # a flam's grace note
                    hits.append((at - 0.025 + 0.01, [0x80 | CHANNEL, SNARE, 0]))
                hits.append((at, [0x90 | CHANNEL, note, velocity]))
                hits.append((at + 0.05, [0x80 | CHANNEL, note, 0]))
    hits.sort(key=lambda h: h[0])
    restart = stop[1] if stop else None
    beats, bpm, played = (np.concatenate(parts) for parts in (all_beats, all_bpm, all_played))
    return Drummer(name, hits, beats, bpm, played, fills, restart, seconds)


def standard(seconds: float = 60.0, seed: int = 1, only: str = "") -> list[Drummer]:
    """The drummers of the issue: steady, ramp 90 → 110, humanised σ 15 ms, fills, dropped hits, stop and
    restart (those whose name starts with ``only``)."""
    ramp_s = seconds - 5.0
    half = seconds / 2
    every = [
        play("steady", lambda t: 100.0, seconds, seed=seed),
        play("ramp 90→110", lambda t: 90.0 + 20.0 * min(max(t / ramp_s, 0.0), 1.0), seconds, seed=seed),
        play("humanised σ15ms", lambda t: 100.0, seconds, sigma_ms=15.0, seed=seed),
        play("fill every 4th bar", lambda t: 100.0, seconds, fill_every=4, seed=seed),
        play("dropped hits 20%", lambda t: 100.0, seconds, drop=0.2, seed=seed),
        play("stop, restart 100→125", lambda t: 100.0 if t < half else 125.0, seconds, stop=(half - 8.0, half), seed=seed),
    ]
    return [drummer for drummer in every if drummer.name.startswith(only)]


# ----------------------------------------------------------------------------------------------- scoring
@dataclass
class Followed:
    """What the swarm did over a drummer: its bursts and, at each beat, the tempi."""

    bursts: np.ndarray  # time of each burst of notes (its first note-on)
    grid_bpm: np.ndarray  # the follower's tempo at each of the drummer's beats
    clock_bpm: np.ndarray  # the swarm's live tempo, measured from its flashes, at each beat
    locked: np.ndarray  # whether the follower was locked at each beat
    clock_beats: np.ndarray  # the beats of MIDI clock out: every 24th clock since Start (or Continue)
    notes: list[tuple[float, list[int]]]


def follow(values: dict[str, Any], drummer: Drummer) -> Followed:
    """Play ``drummer`` into a Player of ``values`` (render's input path), tick by tick."""
    player = Player(values)
    dt = player.swarm.dt
    source = TimedInput(drummer.hits, dt)
    beat_ticks = {int(b / dt): i for i, b in enumerate(drummer.beats)}
    grid, clock, locked = (np.full(drummer.beats.size, np.nan) for _ in range(3))
    notes: list[tuple[float, list[int]]] = []
    clock_beats: list[float] = []
    for k in range(round(drummer.seconds / dt)):
        source.k = k
        clocks = player.mapper.clock.pulses
        count = player.tick(k, source)
        events = player.events
        notes.extend((float(events.time_s[i]), list(events.message(i))) for i in range(count) if events.status[i] & 0xF0 == 0x90)
        for i in range(count):
            if events.status[i] == 0xF8:
                if clocks % 24 == 0:
                    clock_beats.append(float(events.time_s[i]))
                clocks += 1
        if k in beat_ticks:
            i = beat_ticks[k]
            grid[i], clock[i], locked[i] = player.follower.bpm, player.mapper.tempo.bpm, player.follower.locked
    times = np.array([t for t, m in notes if m[2] > 0])
    bursts = times[np.r_[True, np.diff(times) > 0.1]] if times.size else times
    return Followed(bursts, grid, clock, locked.astype(bool), np.array(clock_beats), notes)


class ScriptedAnchor(frame_clock.FrameClock):
    """A JACK frame clock mapping whose anchor is set by hand (``anchor``: frame, raw µs), read at
    the monotonic time ``now`` (seconds) instead of the machine's."""

    def __init__(self) -> None:
        super().__init__(np.zeros(1, dtype=np.int64), 48_000)
        self.anchor = (0, 0)
        self.now = 0.0

    def _read(self) -> tuple[int, int]:
        return self.anchor

    def zero_at(self, seconds: float, lost_s: float) -> float:
        """Frame 0 on the mapping at ``seconds``, once the frame clock has lost ``lost_s`` in all."""
        self.anchor, self.now = (0, round(lost_s * 1e6)), seconds
        real = frame_clock.time.monotonic
        frame_clock.time.monotonic = lambda: self.now  # the loop's own clock, scripted
        try:
            return self.time_at(0)
        finally:
            frame_clock.time.monotonic = real


def fill_through_frame_clock(values: dict[str, Any], drummer: Drummer, lost_at: Any) -> float:
    """The fill figure of MIDI clock out beat by beat, in JACK frames, when the daemon dates the hits
    and places its clocks through the frame clock mapping (as live) and the frame clock has lost
    ``lost_at(t)`` seconds by time t (the dummy driver loses time in steps under load)."""
    mapping = ScriptedAnchor()
    zero = np.array([mapping.zero_at(k / 1000.0, lost_at(k / 1000.0)) for k in range(round(drummer.seconds * 1000) + 1)])

    def at(t: Any) -> np.ndarray:
        return zero[np.clip(np.round(np.asarray(t) * 1000.0).astype(int), 0, zero.size - 1)]

    dated = Drummer(
        drummer.name, [(t + float(at(t)), m) for t, m in drummer.hits], drummer.beats, drummer.bpm, drummer.played, drummer.fills
    )
    dated.seconds = drummer.seconds
    beats = follow(values, dated).clock_beats
    after = np.arange(drummer.beats.size) >= 11  # as score's: lock on the third beat, eight to settle
    return _excursion(drummer, _beat_by_beat(beats - at(beats), drummer.beats), after)


def _nearest(bursts: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Signed offset of the nearest burst to each time in ``at`` (+ = the swarm late)."""
    if bursts.size == 0:
        return np.full(at.size, np.inf)
    j = np.clip(np.searchsorted(bursts, at), 1, bursts.size - 1) if bursts.size > 1 else np.zeros(at.size, int)
    before, after = bursts[np.maximum(j - 1, 0)], bursts[j]
    return np.where(np.abs(before - at) < np.abs(after - at), before - at, after - at)


def _beat_by_beat(clock_beats: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """The clock's tempo at each beat: 60 / the length of its last whole beat (NaN before two)."""
    at = np.searchsorted(clock_beats, beats + 0.03) - 1  # the clock's beat at (or just after) each beat
    ok = at >= 1
    out = np.full(beats.size, np.nan)
    out[ok] = 60.0 / (clock_beats[at[ok]] - clock_beats[at[ok] - 1])
    return out


def _excursion(drummer: Drummer, tempo: np.ndarray, after: np.ndarray) -> float:
    """How far ``tempo`` moves during each fill and the beat after it, from where it was just before."""
    beats, excursion = drummer.beats, 0.0
    for start, end in drummer.fills:
        before = np.searchsorted(beats, start) - 1
        span = (beats >= start) & (beats <= end + 60.0 / drummer.bpm[before]) & after
        if before >= 0 and span.any():
            excursion = max(excursion, float(np.nanmax(np.abs(tempo[span] - tempo[before]))))
    return excursion


def score(drummer: Drummer, followed: Followed, settle_beats: int = 8) -> dict[str, float]:
    """The issue's figures: tempo error after lock, ramp lag, phase error, fill excursion, re-lock."""
    beats, bpm = drummer.beats, drummer.bpm
    offsets = _nearest(followed.bursts, beats)
    first = int(np.argmax(followed.locked)) if followed.locked.any() else beats.size
    after = np.arange(beats.size) >= first + settle_beats
    relock_beats = np.nan
    if drummer.restart_s is not None:
        restarted = beats >= drummer.restart_s
        start = int(np.argmax(restarted))
        good = (np.abs(followed.grid_bpm - bpm) <= 1.0) & (np.abs(offsets) <= 0.015) & restarted
        relock_beats = float(np.argmax(good[start:])) if good[start:].any() else np.inf
        after &= ~restarted | (np.arange(beats.size) >= start + settle_beats)
    tempo_error = np.abs(followed.grid_bpm - bpm)[after]
    clock_error = np.abs(followed.clock_bpm - bpm)[after]
    phase = np.abs(offsets[after]) * 1000.0
    clock_phase = np.abs(_nearest(followed.clock_beats, beats[after])) * 1000.0
    heard = after & ~np.isnan(drummer.played)
    to_hits = np.abs(_nearest(followed.bursts, drummer.played[heard])) * 1000.0
    slope = np.gradient(bpm)  # BPM per beat
    ramping = after & (np.abs(slope) > 1e-6) & (drummer.restart_s is None)  # a restart's jump is no ramp
    lag = np.median((bpm - followed.grid_bpm)[ramping] / slope[ramping]) if ramping.any() else 0.0
    return {
        "lock_beat": float(first),
        "tempo_err_median_bpm": float(np.median(tempo_error)),
        "tempo_err_p95_bpm": float(np.percentile(tempo_error, 95)),
        "clock_err_median_bpm": float(np.median(clock_error)),
        "ramp_lag_beats": float(lag),
        "phase_err_median_ms": float(np.median(phase)),
        "phase_err_p95_ms": float(np.percentile(phase, 95)),
        "hit_err_median_ms": float(np.median(to_hits)),
        "clock_phase_err_median_ms": float(np.median(clock_phase)),
        "fill_excursion_bpm": _excursion(drummer, followed.grid_bpm, after),
        "clock_fill_excursion_bpm": _excursion(drummer, _beat_by_beat(followed.clock_beats, beats), after),
        "relock_beats": relock_beats,
    }
