"""Before and after, alternated in one session: one benchmark run N times in each of two checkouts.

Run: python benchmarks/ab.py --before /tmp/ab-before --after . [--runs 3] [--keys REGEX] -- bench_swarm.py [ARGS...]
Prints a table (each figure's median and range in each checkout, and the ratio of the medians) and
writes benchmarks/results/ab-<benchmark>.json.

Each checkout runs its own copy of the benchmark (``<checkout>/benchmarks/<script>``) in a fresh
process with ``PYTHONPATH=<checkout>``, so each measures its own firefly_midi.  The runs alternate,
before-after then after-before (ABBA...), so a trend in the machine's load falls on both sides alike.
A figure is every number in the JSON the benchmark writes (``RESULT_FILES``), flattened to one key
per number; a key that only one checkout's benchmark writes (its CLI or rows changed between the
two commits) is not compared: it is listed after the others with the one side's figures.

The machine is shared and noisy: read the ranges before the ratio.  A ratio inside both ranges'
overlap is noise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from machine import describe  # noqa: E402

# Where each benchmark writes its JSON, relative to its checkout, and the part that holds figures.
RESULT_FILES = {
    "bench_swarm.py": "benchmarks/results/swarm.json",
    "bench_daemon.py": "benchmarks/results/daemon.json",
}
# Parts of a result that hold no figure to compare, and (as numbers) the settings and counts a run
# echoes back rather than measures: a name here that also names a list of rows (bench_daemon's
# "ticks") leaves that list in.
SKIPPED_PARTS = {"machine", "raw", "daemon_last_status", "clients_alive_at_end", "late_ticks_over_us"}
ECHOED = {"n", "seconds", "seconds_each", "ticks", "tick_ms", "probes", "warm_up_probes", "interval_s", "notes_out", "errors"}
ECHOED |= {"daemon_rc", "start_s"}


def flatten(value: Any, prefix: str = "") -> dict[str, float]:
    """Every number under ``value``, keyed by its path; a list of rows with a preset and N is keyed by them."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return {}
    if isinstance(value, (int, float)):
        return {prefix: float(value)}
    out: dict[str, float] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            echoed = key in ECHOED and isinstance(item, (int, float))
            if key not in SKIPPED_PARTS and not echoed:
                out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            label = f"{item['preset']} N={item.get('n') or '-'}" if isinstance(item, dict) and "preset" in item else str(i)
            out.update(flatten(item, f"{prefix}[{label}]"))
    return out


def commit(checkout: Path) -> str:
    """The short commit of a checkout, marked dirty when its tracked files differ from it."""
    short = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
    dirty = subprocess.run(["git", "-C", str(checkout), "diff", "--quiet", "HEAD"], check=False).returncode != 0
    return short.stdout.strip() + ("-dirty" if dirty else "")


def run_once(checkout: Path, script: str, args: list[str], timeout_s: float) -> dict[str, float]:
    """One run of ``script`` in ``checkout``; its figures, flattened."""
    result = checkout / RESULT_FILES[script]
    result.unlink(missing_ok=True)  # a failed run must not read the last run's figures
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run(
        [sys.executable, str(checkout / "benchmarks" / script), *args],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0 or not result.exists():
        raise RuntimeError(f"{script} in {checkout} failed (rc {done.returncode}): {done.stderr[-2000:]}")
    return flatten(json.loads(result.read_text()))


def summarise(before: list[dict[str, float]], after: list[dict[str, float]], keys: str | None) -> list[dict[str, Any]]:
    """Median, range and ratio of medians for every key all runs of both sides have; then the keys
    all runs of one side have, with that side's figures only."""
    everywhere = {side: set.intersection(*(set(run) for run in runs)) for side, runs in (("before", before), ("after", after))}
    common = everywhere["before"] & everywhere["after"]
    ordered = list(before[0]) + [k for k in after[0] if k not in before[0]]
    pattern = re.compile(keys) if keys else None
    rows = []
    for key in sorted(everywhere["before"] | everywhere["after"], key=lambda k: (k not in common, ordered.index(k))):
        if pattern and not pattern.search(key):
            continue
        row: dict[str, Any] = {"key": key}
        for side, runs in (("before", before), ("after", after)):
            if key in everywhere[side]:
                row[side] = [run[key] for run in runs]
                row[f"{side}_median"] = median(row[side])
        row["ratio"] = row["after_median"] / row["before_median"] if key in common and row["before_median"] else None
        rows.append(row)
    return rows


def show(rows: list[dict[str, Any]], labels: tuple[str, str]) -> None:
    width = max((len(r["key"]) for r in rows), default=10)
    print(f"\n{'figure':<{width}}  {labels[0] + ' median (range)':>30}  {labels[1] + ' median (range)':>30}  after/before")
    for r in rows:
        cells = [f"{r[f'{side}_median']:.4g} ({min(r[side]):.4g}-{max(r[side]):.4g})" if side in r else "-" for side in ("before", "after")]
        ratio = f"{r['ratio']:.3f}" if r["ratio"] is not None else "-"
        print(f"{r['key']:<{width}}  {cells[0]:>30}  {cells[1]:>30}  {ratio:>12}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the checkout before the change")
    parser.add_argument("--after", type=Path, required=True, help="the checkout after the change")
    parser.add_argument("--runs", type=int, default=3, help="runs in each checkout, alternated (default: %(default)s)")
    parser.add_argument("--keys", help="compare only the figures whose key matches this regular expression")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="per run (default: %(default)s)")
    parser.add_argument("benchmark", choices=sorted(RESULT_FILES), help="the script in benchmarks/")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments (after --)")
    ns = parser.parse_args()
    args = [a for a in ns.args if a != "--"]
    sides = {"before": ns.before.resolve(), "after": ns.after.resolve()}
    commits = {side: commit(path) for side, path in sides.items()}
    machine = describe()
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, load {machine['loadavg_at_start']}")
    print(f"before: {sides['before']} at {commits['before']}; after: {sides['after']} at {commits['after']}")
    print(f"benchmark: {ns.benchmark} {' '.join(args)}; {ns.runs} runs each, alternated")
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    order: list[str] = []
    for i in range(ns.runs):
        for side in ("before", "after") if i % 2 == 0 else ("after", "before"):
            started = time.monotonic()
            runs[side].append(run_once(sides[side], ns.benchmark, args, ns.timeout_s))
            order.append(side)
            print(f"  run {i + 1} {side}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    rows = summarise(runs["before"], runs["after"], ns.keys)
    show(rows, (f"before {commits['before']}", f"after {commits['after']}"))
    out = HERE / "results" / f"ab-{Path(ns.benchmark).stem}.json"
    out.parent.mkdir(exist_ok=True)
    record = {"machine": machine, "commits": commits, "checkouts": {k: str(v) for k, v in sides.items()}}
    record |= {"benchmark": ns.benchmark, "args": args, "order": order, "rows": rows, "runs": runs}
    out.write_text(json.dumps(record, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
