"""Ticks the handover skips: a daemon started on numpy, its kernels in the cache, loads them and hands over.

Run: python benchmarks/bench_handover.py [--presets ermentrout-800,pulse-sine] [--runs 3] [--tree PATH]
Prints a table and writes benchmarks/results/handover.json.

Each run is a fresh ``python`` process (``--tree``: the checkout whose firefly_midi it imports, so
another commit can be compared on the same machine): the real ``Daemon`` with ports that open
nothing, forced to start on the numpy engine while the kernels are in the cache already, so the
compiler child says "ready" at once and the daemon's loader thread loads them beside the playing
tick (real-time scheduling where the machine allows it) and hands over.  Every tick number the
clock gives is kept; the ticks it skipped from 50 ms before the load began to 50 ms after the
handover are those the load and the handover cost (the catch-up steps them silently).  What
bench_startup.py measures cold adds the child's compile beside it, and JACK.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from machine import describe  # noqa: E402

ONE_RUN = r"""
import json, sys, time
import numpy as np
from firefly_midi import presets
from firefly_midi.daemon import Daemon
from firefly_midi.lifecycle import warm_up
from firefly_midi.ports import PortConfig, Ports

class Quiet(Ports):
    def __init__(self):
        super().__init__(PortConfig())
    def open(self):
        self.state, self.problem = "none", "benchmark"
    def send(self, message, time_s=None):
        pass
    def poll(self):
        return None

name = sys.argv[1]
warm_up(presets.resolve(name), quiet=True)  # in the cache: a separate process warms, this one loads
"""

LOADED = r"""
name = sys.argv[1]
daemon = Daemon(presets.resolve(name), name, engine="numpy")
daemon.ports = Quiet()
ks, ts, n = np.zeros(100_000, dtype=np.int64), np.zeros(100_000), [0]
inner = daemon.clock.on_tick
def on_tick(k):
    i = n[0]
    if i < len(ks):
        ks[i], ts[i], n[0] = k, time.monotonic(), i + 1
    inner(k)
daemon.clock.on_tick = on_tick
began = []
def mark_state():
    while daemon.engines.compiler.state not in ("loading", "ready", "failed"):
        time.sleep(0.0002)
    began.append(time.monotonic())
import threading
daemon.start()
threading.Thread(target=mark_state, daemon=True).start()
start = time.monotonic()
while daemon.player.engine != "compiled" and time.monotonic() - start < 120:
    time.sleep(0.002)
handed = time.monotonic()
time.sleep(0.3)
daemon.stop()
K, T = ks[: n[0]], ts[: n[0]]
gaps = np.diff(K) - 1
window = (T[1:] >= began[0] - 0.05) & (T[1:] <= handed + 0.05)
print(json.dumps({"skipped_in_handover": int(gaps[window].sum()), "skipped_elsewhere": int(gaps[~window].sum()),
                  "ticks": int(K[-1]), "load_to_handover_ms": round(1e3 * (handed - began[0]), 1),
                  "realtime": daemon.clock.realtime}))
"""


def one_run(tree: Path, preset: str) -> dict:
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", ONE_RUN, preset], env=env, cwd=tree, check=True, capture_output=True, timeout=900)
    code = ONE_RUN.split("name = sys.argv[1]")[0] + LOADED
    done = subprocess.run([sys.executable, "-c", code, preset], env=env, cwd=tree, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        return {"error": done.stderr[-800:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="ermentrout-800,pulse-sine,kuramoto-adaptive")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to measure (default: this one)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "handover.json")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=args.tree, capture_output=True, text=True).stdout.strip()
    result: dict = {"machine": describe(commit=commit), "command": " ".join(sys.argv), "rows": []}
    print(f"{'preset':<20}{'skipped at handover, each run':>32}{'elsewhere':>11}{'load→handover ms':>18}")
    for preset in args.presets.split(","):
        runs = [one_run(args.tree, preset) for _ in range(args.runs)]
        result["rows"].append({"preset": preset, "runs": runs})
        ok = [r for r in runs if "error" not in r]
        print(
            f"{preset:<20}{' '.join(str(r['skipped_in_handover']) for r in ok):>32}"
            f"{sum(r['skipped_elsewhere'] for r in ok):>11}{' '.join(str(round(r['load_to_handover_ms'])) for r in ok):>18}",
            flush=True,
        )
        for r in runs:
            if "error" in r:
                print(r["error"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
