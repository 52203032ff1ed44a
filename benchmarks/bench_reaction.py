"""Reaction in JACK frames: from a note into the daemon's ``in`` to its swarm's answer on ``out``.

Run: python benchmarks/bench_reaction.py [--probes 120] [--interval 0.2] [--realtime]
Prints a table and writes benchmarks/results/reaction.json.

One private dummy server (64 frames at 48 kHz), side by side in one run, one after the other:
- ``relay``: a zero-work python-rtmidi relay in its own process (bench_daemon.py --relay), the
  bare loop through two JACK hops that the rtmidi backend's daemon also makes;
- ``jack``: the daemon on python-rtmidi;
- ``jack-native``: the daemon on the native client with ``input.reflex = false`` (each answer leaves
  a tick plus ``clock.lookahead_ms`` after its input, at its exact frame);
- ``jack-native reflex``: the same with the reflex (the default): the answer in the input's cycle.
A native client in this process plays each probe at an exact frame (random phase against the
ticks and the cycles) and a native sink stamps every note-on with its frame; the reaction is the
first answer's frame minus the probe's, in frames and in periods (whole cycles between them).
The daemon plays bench_daemon.py's reaction swarm (REACTION_SET: every probe flashes every firefly).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_daemon import REACTION_SET, find_port  # noqa: E402
from jackserver import private_jack, stop_process, wait_for_port  # noqa: E402
from machine import commit, describe  # noqa: E402

from firefly_midi.jack.client import NativeJackClient  # noqa: E402

RESULTS = HERE / "results"
RATE, PERIOD = 48_000, 64
LIMIT_FRAMES = 960  # an answer more than 20 ms after its probe is not its answer
PATHS = ("relay", "jack", "jack-native", "jack-native reflex")


def start_path(path: str, env: dict[str, str], name: str, log) -> subprocess.Popen:
    if path == "relay":
        return subprocess.Popen([sys.executable, str(HERE / "bench_daemon.py"), "--relay", name], env=env, stderr=log, cwd=HERE.parent)
    backend = "jack" if path == "jack" else "jack-native"
    args = [sys.executable, "-m", "firefly_midi", "daemon", "--backend", backend, "--client-name", name, "--preset", "mirollo-strogatz"]
    values = {**REACTION_SET, "input.reflex": "true" if path.endswith("reflex") else "false"}
    args += [a for k, v in values.items() for a in ("--set", f"{k}={v}")]
    home = Path(tempfile.mkdtemp())
    args += ["--fresh", "--socket", str(home / "control.sock")]
    return subprocess.Popen(args, env={**env, "XDG_STATE_HOME": str(home)}, stdout=subprocess.DEVNULL, stderr=log, cwd=HERE.parent)


def probe(env: dict[str, str], path: str, probes: int, interval: float, seed: int) -> tuple[list[int], list[int]]:
    """Probe frames and the note-on frames heard back from ``path``."""
    name = f"ffm-r-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = start_path(path, env, name, log)
        source, sink = NativeJackClient(f"ffm-probe-{name}"), NativeJackClient(f"ffm-hear-{name}")
        try:
            with source, sink:
                try:
                    wait_for_port(env, f"{name}:out", timeout=90)
                except TimeoutError:
                    log.seek(0)
                    raise RuntimeError(f"{path} did not open its ports: {log.read()[-2000:]}") from None
                source.connect(source.out_port, find_port(env, name, ":in"))
                source.connect(f"{name}:out", sink.in_port)
                time.sleep(1.0)
                rng, sent, heard = random.Random(seed), [], []
                warm = max(1, round(3.0 / interval))  # the live tempo (and the hold-off) settles on the probes' rate
                frame = source.clock.now_frame() + RATE // 5
                for i in range(warm + probes):
                    frame += round(interval * RATE) + rng.randrange(192)
                    while source.clock.now_frame() < frame - RATE // 20:  # queue each 50 ms ahead
                        time.sleep(0.005)
                        heard += [f for m, f in iter(sink.poll_frame, None) if m[0] & 0xF0 == 0x90 and m[2]]
                    source.schedule([0x90, 64, 127], frame)
                    source.schedule([0x80, 64, 0], frame + 240)
                    if i >= warm:
                        sent.append(frame)
                time.sleep(0.3)
                heard += [f for m, f in iter(sink.poll_frame, None) if m[0] & 0xF0 == 0x90 and m[2]]
        finally:
            stop_process(proc)
    return sent, heard


def reactions(sent: list[int], heard: list[int]) -> list[int]:
    """For each probe, frames to the first note-on at or after it (within LIMIT_FRAMES, before the next)."""
    got, out = np.sort(np.asarray(heard, dtype=np.int64)), []
    for i, s in enumerate(sent):
        j = int(np.searchsorted(got, s))
        end = min(sent[i + 1] if i + 1 < len(sent) else s + LIMIT_FRAMES, s + LIMIT_FRAMES)
        if j < got.size and got[j] < end:
            out.append(int(got[j] - s))
    return out


def summary(sent: list[int], heard: list[int]) -> dict:
    gaps = reactions(sent, heard)
    if not gaps:
        return {"probes": len(sent), "answered": 0}
    frames = np.asarray(gaps)
    answered = [s for s in sent if reactions([s], heard)]
    periods = np.asarray([(s + g) // PERIOD - s // PERIOD for s, g in zip(answered, gaps, strict=True)])
    return {
        "probes": len(sent),
        "answered": len(gaps),
        "frames": {q: float(np.percentile(frames, int(q[1:]))) for q in ("p50", "p99")} | {"max": int(frames.max())},
        "periods": {q: float(np.percentile(periods, int(q[1:]))) for q in ("p50", "p99")} | {"max": int(periods.max())},
        "same_cycle_share": float(np.mean(periods == 0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=120)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between probes (default: %(default)s)")
    parser.add_argument("--realtime", action="store_true", help="jackd with real-time priority")
    parser.add_argument("--out", type=Path, default=RESULTS / "reaction.json")
    args = parser.parse_args()
    result = describe(
        commit=commit(), probes=args.probes, interval_s=args.interval, period_frames=PERIOD, rate=RATE, realtime=args.realtime
    )
    with private_jack(RATE, PERIOD, realtime=args.realtime) as env:
        for k, path in enumerate(PATHS):
            sent, heard = probe(env, path, args.probes, args.interval, seed=k + 1)
            result[path] = summary(sent, heard)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nreaction, probe frame -> first answer's frame (JACK {PERIOD} frames / {RATE} Hz, realtime={args.realtime})")
    print(f"{'path':<20}{'answered':>10}{'p50 fr':>9}{'p99 fr':>9}{'max fr':>8}{'p50 per':>9}{'p99 per':>9}{'same cycle':>12}")
    for path in PATHS:
        r = result[path]
        if not r.get("answered"):
            print(f"{path:<20}{'0/' + str(r['probes']):>10}")
            continue
        f = r["frames"]
        print(
            f"{path:<20}{r['answered']:>5}/{r['probes']:<4}{f['p50']:>9.0f}{f['p99']:>9.0f}{f['max']:>8}"
            f"{r['periods']['p50']:>9.0f}{r['periods']['p99']:>9.0f}{r['same_cycle_share']:>12.0%}"
        )


if __name__ == "__main__":
    main()
