"""Why live differs from offline: one live session, recorded, replayed, and compared stage by stage.

A drummer (the fill drummer by default) plays into a ``--record``ing daemon over a private JACK server
(as ``bench_follow.py --live``); the recording is replayed offline (``render --replay``'s path).  Then:

- input: when the daemon dated each counted hit (the recording, swarm seconds) against when the
  drummer played it (its frame): the spread after the constant offset is the input's timing noise;
- output: when the daemon's clocks came out (frames, heard by the kit) against when the replay says
  they were due (swarm seconds): the spread is the output's timing noise;
- the fill figure (``drummers.score``'s clock beat by beat) on the live clock, on the replayed clock,
  and the same figure on the beats outside fills (what the measurement's own noise gives).

    python benchmarks/follow_diagnose.py [--drummer fill] [--seconds 60] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from firefly_midi import replay
from firefly_midi.testing import drummers as D

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from follow_live import FRAMES, RATE, followed, private_jack, session  # noqa: E402


def spread(late: np.ndarray) -> dict[str, float]:
    """Offset (median) and spread (|residual| median, p95, max, in ms) of ``late`` (seconds)."""
    residual = np.abs(late - np.median(late)) * 1000.0
    return {
        "offset_ms": float(np.median(late) * 1000.0),
        "median_ms": float(np.median(residual)),
        "p95_ms": float(np.percentile(residual, 95)),
        "max_ms": float(residual.max()),
    }


def beat_tempo_outside_fills(drummer: D.Drummer, clock_beats: np.ndarray) -> float:
    """The fill figure on spans of the same length that hold no fill (a bar before each fill)."""
    bar = 4 * 60.0 / drummer.bpm[0]
    shifted = D.Drummer(drummer.name, [], drummer.beats, drummer.bpm, drummer.played, [(a - bar, b - bar) for a, b in drummer.fills])
    after = np.arange(drummer.beats.size) >= 11
    return D._excursion(shifted, D._beat_by_beat(clock_beats, drummer.beats), after)


def compare(drummer: D.Drummer, heard: list, frame0: int, recording: Path) -> dict:
    header, body = replay.load(recording)
    dt = header["values"]["clock.tick_ms"] / 1000.0
    counted = set(header["values"]["follow.notes"])
    dated = np.array(
        [(r["k"] + r["f"]) * dt for r in body if "m" in r and r["m"][0] & 0xF0 == 0x90 and r["m"][1] in counted and r["m"][2] > 0]
    )
    played = np.array([t for t, m in drummer.hits if m[0] & 0xF0 == 0x90 and m[1] in counted and m[2] > 0])
    n = min(dated.size, played.size)
    replayed = replay.replay(recording)
    due = _after_continue([(t, m) for t, m in replayed])
    out = _after_continue([((frame - frame0) / RATE, m) for m, frame in heard])
    m = min(due.size, out.size)
    live = followed(heard, frame0, drummer)
    offset = float(np.median(out[:m] - due[:m]))  # swarm seconds to the drummer's seconds
    beats_due = np.array(_beats(replayed)) + offset
    after = np.arange(drummer.beats.size) >= 11
    hits, clocks = spread(dated[:n] - played[:n]), spread(out[:m] - due[:m])
    return {
        "latency_ms": hits["offset_ms"] + clocks["offset_ms"],  # a hit's frame to its beat's clock, follow.lead_ms aside
        "hits": {"dated": int(dated.size), "played": int(played.size), **hits},
        "clocks": {"due": int(due.size), "heard": int(out.size), **clocks},
        "fill_live_24_clocks_bpm": D.score(drummer, live)["clock_fill_excursion_bpm"],
        "fill_live_beat_by_beat_bpm": D._excursion(drummer, D._beat_by_beat(live.clock_beats, drummer.beats), after),
        "fill_replayed_beat_by_beat_bpm": D._excursion(drummer, D._beat_by_beat(beats_due, drummer.beats), after),
        "no_fill_live_beat_by_beat_bpm": beat_tempo_outside_fills(drummer, live.clock_beats),
        "no_fill_replayed_beat_by_beat_bpm": beat_tempo_outside_fills(drummer, beats_due),
        "fill_offline_synthetic_bpm": D.score(drummer, D.follow(replay.recorded_values(header), drummer))["clock_fill_excursion_bpm"],
    }


def _after_continue(events: list) -> np.ndarray:
    """The times of the clocks after the first Continue."""
    at = next(i for i, (_, m) in enumerate(events) if m == [0xFB])
    return np.array([t for t, m in events[at:] if m == [0xF8]])


def _beats(events: list) -> list[float]:
    """Every 24th clock since Start or Continue (Song Position sets the count), as follow_live counts."""
    beats, position, spp = [], None, 0
    for t, m in events:
        if m[0] == 0xF2:
            spp = 6 * (m[1] | m[2] << 7)
        elif m[0] in (0xFA, 0xFB):
            position = 0 if m[0] == 0xFA else spp
        elif m == [0xF8] and position is not None:
            if position % 24 == 0:
                beats.append(t)
            position += 1
    return beats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--drummer", default="fill")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--keep", type=Path, default=None, help="keep the recording here")
    args = ap.parse_args()
    drummer = D.standard(args.seconds, args.seed, args.drummer)[0]
    with tempfile.TemporaryDirectory(prefix="ffm-diag-") as name:
        recording = args.keep or Path(name) / "session.jsonl"
        with private_jack(RATE, FRAMES) as env:
            heard, frame0 = session(env, drummer, args.assignments, ("--record", str(recording)))
        print(json.dumps(compare(drummer, heard, frame0, recording), indent=1))


if __name__ == "__main__":
    main()
