"""A steady pulse through the native JACK client (firefly_midi/jack), measured at a sink in frames.

Run: python benchmarks/bench_jack_native.py [--seconds 30] [--frames 64] [--realtime]
Prints a table and writes benchmarks/results/jack_native.json.

A tick thread (1 ms, like the daemon's ``clock.tick_ms``) plays 8th notes at 120 BPM: each note is
due at ``t0 + k * 250 ms`` on time.monotonic() and leaves at its due time plus the lookahead, at
the frame ``client.clock.frame_at(due + lookahead)`` (what ``send`` does; the bench keeps the frame
to compare); its note-off goes through ``send(due + 100 ms)``.  Two receivers hear it:
- a second native client in this process (``poll_frame``: 64-bit frames), and
- ``jack_midi_dump -a`` (frames from its own start), the witness that shares none of our code.

Figures:
- placement: the frame heard minus the frame asked for (the backend's own error: 0 when every
  event reached the callback before its cycle);
- interval deviation: |heard interval - 12,000 frames| (250 ms at 48 kHz), p50/p99/max.  This also
  holds the frame clock's own wander against time.monotonic(): the dummy driver on a loaded machine
  loses whole cycles (xruns), and a pulse kept on real time shows that as uneven frames;
- the frame clock's rate against time.monotonic() over the run (ppm), xruns, late events;
- the callback's cost per cycle (jack_get_time() at entry and exit: µs resolution; the mean of many
  is exact on average, the max is ±1 µs).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from jackserver import private_jack, server_log, wait_for_port  # noqa: E402
from machine import describe  # noqa: E402

from firefly_midi.jack.client import NativeJackClient  # noqa: E402

RESULTS = HERE / "results"
RATE = 48_000
NOMINAL_S = 0.25  # 8th notes at 120 BPM
NOMINAL_FRAMES = round(NOMINAL_S * RATE)
TICK_S = 0.001
DUMP_EVENT = re.compile(r"^\s*(\d+):\s+90 ")


def tick_loop(player: NativeJackClient, t0: float, notes: int, asked: list[tuple[int, int]], stop: threading.Event) -> None:
    """The tick: every 1 ms, queue the notes due before the next tick (absolute deadlines); keeps
    each note's frame and the xruns counted when it was queued."""
    lookahead = player.lookahead_ms / 1000
    deadline, k = time.monotonic(), 0
    while k < notes and not stop.is_set():
        while k < notes and t0 + k * NOMINAL_S < deadline + TICK_S:
            due = t0 + k * NOMINAL_S
            frame = player.clock.frame_at(due + lookahead)
            player.schedule([0x90, 60, 100], frame)
            player.send([0x80, 60, 0], due + 0.1)
            asked.append((frame, player.counters().xruns))
            k += 1
        deadline += TICK_S
        time.sleep(max(0.0, deadline - time.monotonic()))


def spread(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99)), "max": float(values.max())}


def run(seconds: float, frames: int, realtime: bool, lookahead_ms: float) -> dict:
    notes = int(seconds / NOMINAL_S)
    with private_jack(RATE, frames, realtime=realtime) as env, tempfile.TemporaryFile(mode="w+") as dump_out:
        tag = uuid.uuid4().hex[:6]
        dump_name = f"ffm-dump-{tag}"
        # line-buffered: stdio would flush a file only at exit
        dump = subprocess.Popen(["stdbuf", "-oL", "jack_midi_dump", "-a", dump_name], env=env, stdout=dump_out, stderr=subprocess.DEVNULL)
        player, sink = NativeJackClient(f"ffm-pulse-{tag}", lookahead_ms), NativeJackClient(f"ffm-sink-{tag}")
        try:
            with player, sink:
                wait_for_port(env, f"{dump_name}:input")
                player.connect(player.out_port, sink.in_port)
                player.connect(player.out_port, f"{dump_name}:input")
                time.sleep(0.3)  # connections apply at a later cycle; the clocks get their anchors
                asked: list[tuple[int, int]] = []
                stop = threading.Event()
                t0 = time.monotonic() + 0.2
                frame_at_start = player.clock.position()
                tick = threading.Thread(target=tick_loop, args=(player, t0, notes, asked, stop), name="tick")
                tick.start()
                heard: list[int] = []
                while tick.is_alive() or len(heard) < len(asked):
                    while (item := sink.poll_frame()) is not None:
                        if item[0][0] == 0x90:
                            heard.append(item[1])
                    if time.monotonic() > t0 + seconds + 10:
                        break
                    time.sleep(0.01)
                stop.set()
                tick.join()
                frame_at_end = player.clock.position()
                counters = {"player": asdict(player.counters()), "sink": asdict(sink.counters())}
        finally:
            time.sleep(0.2)
            dump.terminate()
            dump.wait(10)
            log = server_log(env)
        dump_out.seek(0)
        dumped = [int(m.group(1)) for line in dump_out if (m := DUMP_EVENT.match(line))]
    return analyse(asked, heard, dumped, frame_at_start, frame_at_end, counters, log, seconds, frames, realtime, lookahead_ms)


def analyse(asked, heard, dumped, start, end, counters, log, seconds, frames, realtime, lookahead_ms) -> dict:
    asked_xruns = np.array(asked, dtype=np.int64).reshape(-1, 2)
    asked_a, heard_a = asked_xruns[:, 0], np.array(heard, dtype=np.int64)
    common = min(asked_a.size, heard_a.size)
    placement = np.abs(heard_a[:common] - asked_a[:common])
    deviation = np.abs(np.diff(heard_a) - NOMINAL_FRAMES)
    # an interval whose notes were queued on either side of an xrun spans frames the clock lost
    calm = np.diff(asked_xruns[:common, 1]) == 0
    dump_dev = np.abs(np.diff(np.array(dumped, dtype=np.int64)) - NOMINAL_FRAMES)
    # the frame clock against CLOCK_MONOTONIC_RAW (jack_get_time) over the run
    rate = (end[0] - start[0]) / ((end[2] - start[2]) / 1e6)
    return {
        "machine": describe(),
        "setup": {"seconds": seconds, "frames": frames, "rate": RATE, "realtime_jackd": realtime, "lookahead_ms": lookahead_ms},
        "notes": {"asked": int(asked_a.size), "heard": int(heard_a.size), "dumped": len(dumped)},
        "placement_frames": spread(placement.astype(float)),
        "placement_exact_share": float(np.mean(placement == 0)) if common else 0.0,
        "interval_deviation_frames": spread(deviation.astype(float)),
        "interval_deviation_frames_dump": spread(dump_dev.astype(float)),
        "interval_deviation_frames_no_xrun": spread(deviation[: common - 1][calm].astype(float)),
        "intervals_spanning_xruns": int((~calm).sum()),
        "dump_agrees_with_sink": bool(dumped and np.array_equal(np.diff(dumped), np.diff(heard_a[: len(dumped)]))),
        "frame_clock_rate_error_ppm": float((rate / RATE - 1) * 1e6),
        "counters": counters,
        "jackd_xrun_lines": log.count("XRun") if log else None,
    }


def table(result: dict) -> str:
    spreads = "{p50:.0f} / {p99:.0f} / {max:.0f}"
    player, sink = result["counters"]["player"], result["counters"]["sink"]
    rows = [
        ("notes asked / heard / dumped", "{asked} / {heard} / {dumped}".format(**result["notes"])),
        ("placement |heard - asked| p99, max (frames)", "{p99:.0f}, {max:.0f}".format(**result["placement_frames"])),
        ("placement exact share", f"{result['placement_exact_share']:.4f}"),
        ("interval |deviation| p50/p99/max (frames, sink)", spreads.format(**result["interval_deviation_frames"])),
        ("interval |deviation| p50/p99/max (frames, dump)", spreads.format(**result["interval_deviation_frames_dump"])),
        ("  the same, intervals without an xrun", spreads.format(**result["interval_deviation_frames_no_xrun"])),
        ("intervals spanning an xrun", str(result["intervals_spanning_xruns"])),
        ("jack_midi_dump agrees with the sink", str(result["dump_agrees_with_sink"])),
        ("frame clock vs monotonic (ppm)", f"{result['frame_clock_rate_error_ppm']:+.0f}"),
        ("late events / xruns", f"{player['late']} / {player['xruns']}"),
        ("callback mean / max (µs), player", f"{player['callback_mean_us']:.2f} / {player['callback_max_us']}"),
        ("callback mean / max (µs), sink", f"{sink['callback_mean_us']:.2f} / {sink['callback_max_us']}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--frames", type=int, default=64, help="JACK period (frames at 48 kHz)")
    parser.add_argument("--realtime", action="store_true", help="run jackd (and so the callbacks) with real-time priority")
    parser.add_argument("--lookahead-ms", type=float, default=5.0)
    args = parser.parse_args()
    result = run(args.seconds, args.frames, args.realtime, args.lookahead_ms)
    print(table(result))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "jack_native.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
