"""MIDI clock out (24 per beat) on the rtmidi ``jack`` backend and on ``jack-native``, in JACK frames.

Run: python benchmarks/bench_clock_out.py [--seconds 20] [--realtime]
Prints a table and writes benchmarks/results/clock_out.json.

One private dummy server (64 frames at 48 kHz); the daemon plays the pulse-sine preset with one
firefly at 2 Hz (120 BPM: a clock every 1,000 frames) with ``mapping.clock_out = true`` and no phase
noise, one backend after the other.  Its tempo is then steady from the first beat (a swarm of 200
takes about 16 s to settle, and its clock wobbles by up to 55 frames meanwhile: that is the music, not
the transport), so what moves a clock here is the transport alone.  ``jack_midi_dump -a`` (frames from
its own start: only differences are used) and a native sink in this process stamp every 0xF8.  An
interval's deviation is taken against the median of the 24 intervals around it (one beat): what a
DAW following the clock sees as jitter.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from jackserver import private_jack, stop_process, wait_for_port  # noqa: E402
from machine import commit, describe  # noqa: E402

from firefly_midi.jack.client import NativeJackClient  # noqa: E402

RESULTS = HERE / "results"
RATE, PERIOD = 48_000, 64
CLOCK_LINE = re.compile(r"^\s*(\d+):\s+f8\s*$")
BACKENDS = ("jack", "jack-native")


def deviations(frames: list[int]) -> dict:
    """|interval - the median of the 24 intervals around it|, p50/p99/max, in frames."""
    intervals = np.diff(np.asarray(frames, dtype=np.int64))
    if intervals.size < 48:
        return {"clocks": len(frames)}
    dev = np.asarray([abs(intervals[i] - np.median(intervals[max(0, i - 12) : i + 12])) for i in range(intervals.size)])
    return {
        "clocks": len(frames),
        "interval_median": float(np.median(intervals)),
        "p50": float(np.percentile(dev, 50)),
        "p99": float(np.percentile(dev, 99)),
        "max": float(dev.max()),
        "over_1": int((dev > 1).sum()),  # intervals off by more than a frame: set beside the xruns
    }


def run_backend(env: dict[str, str], backend: str, seconds: float) -> dict:
    name = f"ffm-c-{uuid.uuid4().hex[:6]}"
    home = Path(tempfile.mkdtemp())
    args = [sys.executable, "-m", "firefly_midi", "daemon", "--backend", backend, "--client-name", name, "--preset", "pulse-sine"]
    args += ["--set", "mapping.clock_out=true", "--set", "swarm.freq_hz=2", "--set", "swarm.noise=0", "--set", "swarm.n=1"]
    args += ["--fresh", "--socket", str(home / "control.sock")]
    dump_name = f"ffm-cdump-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryFile(mode="w+") as log, tempfile.TemporaryFile(mode="w+") as dump_out:
        proc = subprocess.Popen(args, env={**env, "XDG_STATE_HOME": str(home)}, stdout=subprocess.DEVNULL, stderr=log, cwd=HERE.parent)
        dump = subprocess.Popen(["stdbuf", "-oL", "jack_midi_dump", "-a", dump_name], env=env, stdout=dump_out, stderr=subprocess.DEVNULL)
        sink = NativeJackClient(f"ffm-csink-{name}")
        heard: list[int] = []
        try:
            with sink:
                try:
                    wait_for_port(env, f"{name}:out", timeout=90)
                except TimeoutError:
                    log.seek(0)
                    raise RuntimeError(f"{backend} did not open its ports: {log.read()[-2000:]}") from None
                wait_for_port(env, f"{dump_name}:input")
                sink.connect(f"{name}:out", sink.in_port)
                sink.connect(f"{name}:out", f"{dump_name}:input")
                time.sleep(3.0)  # the ports settle
                end = time.monotonic() + seconds
                mark = sink.clock.now_frame()
                while time.monotonic() < end:
                    heard += [f for m, f in iter(sink.poll_frame, None) if m == [0xF8]]
                    time.sleep(0.01)
                counters = sink.counters()
        finally:
            stop_process(proc)
            dump.terminate()
            dump.wait(10)
        dump_out.seek(0)
        dumped = [int(m.group(1)) for line in dump_out if (m := CLOCK_LINE.match(line))]
    span = heard[-1] - heard[0] if heard else 0
    # the dump's clocks over the same stretch as the sink's (its frames count from its own start)
    offset = (mark - dumped[0]) if dumped else 0
    dumped = [f for f in dumped if heard and heard[0] <= f + offset <= heard[0] + span] if heard else dumped
    return {"sink": deviations(heard), "jack_midi_dump": deviations(dumped), "xruns_seen_by_sink": counters.xruns}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--realtime", action="store_true", help="jackd with real-time priority")
    parser.add_argument("--out", type=Path, default=RESULTS / "clock_out.json")
    args = parser.parse_args()
    result = describe(commit=commit(), seconds=args.seconds, period_frames=PERIOD, rate=RATE, realtime=args.realtime)
    with private_jack(RATE, PERIOD, realtime=args.realtime) as env:
        for backend in BACKENDS:
            result[backend] = run_backend(env, backend, args.seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nMIDI clock out, |interval - median of the beat around it| in frames (JACK {PERIOD} / {RATE} Hz, realtime={args.realtime})")
    print(f"{'backend':<14}{'witness':<16}{'clocks':>8}{'interval':>10}{'p50':>7}{'p99':>7}{'max':>7}{'>1 frame':>10}{'xruns':>7}")
    for backend in BACKENDS:
        for witness in ("sink", "jack_midi_dump"):
            r = result[backend][witness]
            if "p50" not in r:
                print(f"{backend:<14}{witness:<16}{r['clocks']:>8}")
                continue
            print(
                f"{backend:<14}{witness:<16}{r['clocks']:>8}{r['interval_median']:>10.0f}{r['p50']:>7.0f}{r['p99']:>7.0f}{r['max']:>7.0f}"
                f"{r['over_1']:>10}{result[backend]['xruns_seen_by_sink']:>7}"
            )


if __name__ == "__main__":
    main()
