"""How well the follow-drummer preset follows synthetic drummers (the issue's figures), offline.

Each drummer of firefly_midi/testing/drummers.py (steady, ramp 90 → 110 BPM, humanised σ 15 ms, a fill
every fourth bar, 20 % dropped hits, a stop and a restart at 125 BPM) plays into a Player through
render's input path (TimedInput: every hit at its exact sub-tick time), with several drummer seeds.
The swarm's bursts (the first note-on of each) are its beats.  Prints a table of the worst seed for
each figure and writes benchmarks/results/bench_follow.json.

    python benchmarks/bench_follow.py [--seconds 60] [--seeds 3] [--set KEY=VALUE ...]
    python benchmarks/bench_follow.py --live [--seconds 60] [--seeds 1]     # over JACK: benchmarks/follow_live.py

Figures after lock (the first 8 beats after the follower locks, and after a restart, left out):
tempo error of the followed tempo (the grid's, which MIDI clock out counts on) and of the swarm's
live tempo measured from its flashes, against the drummer's; ramp lag in beats; phase error of the
swarm's bursts against the drummer's beats (the grid it means) and against its hits as played, and
of MIDI clock out's beats (every 24th clock) against the drummer's beats; tempo excursion during
fills (of the followed tempo, and of the clock's beat-by-beat tempo: 60 / each beat's length);
beats from a restart until the tempo is within 1 BPM and the burst within 15 ms.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from firefly_midi import presets
from firefly_midi.testing import drummers as D

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from machine import commit, describe  # noqa: E402

COLUMNS = (  # (key, heading, format): the worst seed is shown (the largest, for errors and beats)
    ("lock_beat", "lock (beats)", "{:.0f}"),
    ("tempo_err_median_bpm", "tempo err median (BPM)", "{:.2f}"),
    ("tempo_err_p95_bpm", "tempo err p95 (BPM)", "{:.2f}"),
    ("clock_err_median_bpm", "flash tempo err median (BPM)", "{:.2f}"),
    ("ramp_lag_beats", "ramp lag (beats)", "{:.1f}"),
    ("phase_err_median_ms", "phase err vs beats median (ms)", "{:.1f}"),
    ("phase_err_p95_ms", "phase err vs beats p95 (ms)", "{:.1f}"),
    ("hit_err_median_ms", "phase err vs hits median (ms)", "{:.1f}"),
    ("clock_phase_err_median_ms", "MIDI clock beats err median (ms)", "{:.1f}"),
    ("fill_excursion_bpm", "fill excursion (BPM)", "{:.2f}"),
    ("clock_fill_excursion_bpm", "fill excursion, clock beat by beat (BPM)", "{:.2f}"),
    ("relock_beats", "re-lock (beats)", "{:.0f}"),
)


def measure(values: dict, seconds: float, seeds: int, only: str = "") -> dict[str, list[dict[str, float]]]:
    """Every drummer's scores (those whose name starts with ``only``), one per seed."""
    runs: dict[str, list[dict[str, float]]] = {}
    for seed in range(1, seeds + 1):
        for drummer in D.standard(seconds, seed, only):
            runs.setdefault(drummer.name, []).append(D.score(drummer, D.follow(values, drummer)))
    return runs


def worst(scores: list[dict[str, float]], key: str) -> float:
    found = [s[key] for s in scores if not np.isnan(s[key])]
    return max(found) if found else float("nan")


def spread(scores: list[dict[str, float]], key: str, fmt: str) -> str:
    """Median (min–max) over the runs: live runs on a shared machine differ run to run."""
    found = [s[key] for s in scores if not np.isnan(s[key])]
    if not found:
        return "–"
    low, mid, high = (fmt.format(v) for v in (min(found), float(np.median(found)), max(found)))
    return mid if low == high else f"{mid} ({low}–{high})"


def table(runs: dict[str, list[dict[str, float]]], medians: bool = False) -> str:
    """One row a drummer: the worst run of each figure, or (``medians``) its median and range."""
    rows = ["| drummer | " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for name, scores in runs.items():
        cells = []
        for key, _, fmt in COLUMNS:
            value = worst(scores, key)
            cells.append(spread(scores, key, fmt) if medians else "–" if np.isnan(value) else fmt.format(value))
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each drummer (default: %(default)s)")
    ap.add_argument("--seeds", type=int, default=3, help="drummer seeds (default: %(default)s)")
    ap.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE", help="override a parameter")
    ap.add_argument("--live", action="store_true", help="play each drummer into a daemon over a private JACK server")
    ap.add_argument("--only", default="", metavar="NAME", help="only the drummers whose name starts with NAME")
    ap.add_argument("--medians", action="store_true", help="median (min–max) over the seeds, not the worst seed")
    ap.add_argument("--from-json", type=Path, nargs="*", default=None, metavar="FILE", help="only print the table of earlier results")
    ap.add_argument("--json", type=Path, default=None, help="results (default: benchmarks/results/bench_follow[_live].json)")
    args = ap.parse_args()
    if args.from_json:  # the runs of several result files in one table
        runs = {}
        for path in args.from_json:
            for name, scores in json.loads(path.read_text())["runs"].items():
                runs.setdefault(name, []).extend(scores)
        print(table(runs, args.medians))
        return
    args.json = args.json or HERE / "results" / f"bench_follow{'_live' if args.live else ''}.json"
    started = time.perf_counter()
    if args.live:
        from follow_live import measure_live

        runs = measure_live(args.seconds, args.seeds, args.assignments, args.only)
    else:
        runs = measure(presets.resolve("follow-drummer", args.assignments), args.seconds, args.seeds, args.only)
    report = {
        "command": " ".join(["python", "benchmarks/bench_follow.py", *sys.argv[1:]]),
        "commit": commit(),
        "machine": describe(),
        "seconds": args.seconds,
        "seeds": args.seeds,
        "mode": "live over JACK (jack-native daemon, 48 kHz, 64 frames)" if args.live else "offline (render's input path)",
        "wall_s": round(time.perf_counter() - started, 1),
        "runs": runs,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(table(runs, args.medians))
    m = report["machine"]
    print(f"\n{report['mode']}; {'median (range)' if args.medians else 'worst'} of {args.seeds} drummer seeds, {args.seconds:g} s each")
    print(f"command: {report['command']}; commit {report['commit']}")
    print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; results: {args.json}")


if __name__ == "__main__":
    main()
