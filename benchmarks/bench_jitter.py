"""Timing of a steady pulse heard at a receiver: isobar's Timeline against the firefly-midi daemon, on JACK.

Run: python benchmarks/bench_jitter.py [--runs 5] [--seconds 15] [--frames 64] [--no-realtime] [--senders isobar,firefly,firefly-native]
Prints a table and writes benchmarks/results/jitter.json.  Needs isobar (``pip install isobar==0.2.1``;
it is a benchmark's reference, not a dependency of the package) and jack_midi_dump.

Each sender plays 8th notes at 120 BPM (4 notes/s, nominal interval 250 ms) alone, ``--runs`` times,
the two senders alternating (isobar, firefly, firefly, isobar, ...), on one private JACK server
(dummy driver, 48 kHz, real-time priority unless ``--no-realtime``):

- isobar (its own process): ``Timeline(120)`` with one track ``{"note": 60, "duration": 0.5}`` on a
  ``MidiOutputDevice`` whose mido port is a virtual JACK port (mido's rtmidi backend with the
  ``UNIX_JACK`` API, chosen through ``MIDO_BACKEND``).
- firefly-midi (``python -m firefly_midi daemon``, its own process): one firefly at 4 Hz, no
  coupling, no spread, no noise, ``mapping.mode = density``; ``firefly`` through python-rtmidi
  (``--backend jack``), ``firefly-native`` through the native client (``--backend jack-native``),
  whose transport follows the JACK frames.

Everything is measured at the receivers, never from the clock that set the sender's deadlines:

- monotonic (the one to read): a python-rtmidi JACK input in this process stamps
  ``time.monotonic()`` in its callback, on JACK's process thread (this process's main thread only
  sleeps, so the callback never waits for the GIL).  A tick the sender skipped and never repaid,
  or a tempo computed wrongly, shows here as drift.
- JACK frames: ``jack_midi_dump -a`` prints each event's absolute frame time.  With a sound card
  that would be real time too; the dummy driver counts 64 frames per wake-up however late the
  wake-up is, so its frame clock loses the time of every stall.  ``frame clock ppm`` is its rate
  against the monotonic stamps of the same notes: the size of that error in the run.

Drift: the last onset minus the first, minus the intervals × 250 ms; tempo: the slope of a line
through the onsets against 250 ms, in ppm.  Each run measures ``--seconds`` after one second of
playing.  A long drift run of the daemon alone: ``--senders firefly --runs 1 --seconds 600``.

Resolution: both senders go through python-rtmidi's JACK output, which writes each message at
frame 0 of the next process cycle, so arrivals are quantised to the period (64 frames = 1.333 ms
at 48 kHz).  250 ms is 187.5 periods: a perfectly steady sender shows intervals of 187 and 188
periods, |deviation| = 0.667 ms on every interval, the floor of this measurement at 64 frames.
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
from statistics import median

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from jackserver import connect, jack_ports, private_jack, stop_process, wait_for_port  # noqa: E402
from machine import describe  # noqa: E402

RESULTS = HERE / "results"
BPM = 120.0
NOMINAL_S = 60.0 / BPM / 2  # 8th notes
RATE = 48_000
FRAME_MS = 1000.0 / RATE
WARM_S = 1.0  # played before the measured window
SENDERS = ("isobar", "firefly", "firefly-native")  # the daemon on --backend jack, then jack-native
EVENT = re.compile(r"^\s*(\d+):\s+([0-9a-f]{2}) ([0-9a-f]{2}) ([0-9a-f]{2})")
FIREFLY_SET = {
    "swarm.model": "pulse",
    "swarm.n": 1,
    "swarm.freq_hz": 1.0 / NOMINAL_S,
    "swarm.freq_spread_hz": 0.0,
    "swarm.coupling": 0.0,
    "swarm.noise": 0.0,
    "clock.tick_ms": 1.0,
    "mapping.mode": "density",
    "mapping.note_ms": 100,
}
SUMMARY_KEYS = ("dev_p50_ms", "dev_p99_ms", "dev_max_ms", "tempo_error_ppm", "drift_ms")


# ---------------------------------------------------------------------------------- isobar worker
def isobar_worker(seconds: float) -> None:
    """Open isobar's MIDI output on JACK, print READY, wait for GO on stdin, play the pulse for ``seconds``."""
    import isobar as iso
    import mido

    print(f"BACKEND {mido.backend.name} {mido.backend.api}", flush=True)
    device = iso.MidiOutputDevice("out", virtual=True)  # isobar opens the mido port itself
    print(f"READY {device.midi.name}", flush=True)
    sys.stdin.readline()
    timeline = iso.Timeline(BPM, output_device=device)
    timeline.schedule({"note": 60, "duration": 0.5, "gate": 0.5, "channel": 0})
    timeline.background()
    time.sleep(seconds)
    timeline.stop()
    time.sleep(0.3)
    print("DONE", flush=True)


# ------------------------------------------------------------------------------------------ analysis
def onsets(dump: str) -> list[int]:
    """Note-on frame times, from ``jack_midi_dump -a`` output."""
    frames = []
    for line in dump.splitlines():
        m = EVENT.match(line)
        if m and int(m[2], 16) & 0xF0 == 0x90 and int(m[4], 16) > 0:
            frames.append(int(m[1]))
    return frames


def quantisation_floor_ms(nominal: float, rate: int, period_frames: int) -> float:
    """|deviation| a perfectly steady sender shows when arrivals snap to period boundaries."""
    periods = nominal * rate / period_frames
    return abs(periods - round(periods)) * period_frames / rate * 1e3


def jitter(times_s: list[float], nominal: float, floor: float) -> dict[str, float]:
    """Inter-onset deviation from ``nominal`` (ms) and the tempo's long-run drift."""
    t = np.asarray(times_s, dtype=np.float64)
    if t.size < 3:
        return {"onsets": int(t.size)}
    dev = np.abs(np.diff(t) - nominal) * 1e3
    index = np.arange(t.size)
    slope, intercept = np.polyfit(index, t, 1)
    residual = (t - (intercept + slope * index)) * 1e3
    return {
        "onsets": int(t.size),
        "dev_p50_ms": float(np.percentile(dev, 50)),
        "dev_p99_ms": float(np.percentile(dev, 99)),
        "dev_max_ms": float(dev.max()),
        "dev_over_floor_share": float(np.mean(dev > floor + 0.01)),
        "mean_interval_ms": float(np.diff(t).mean() * 1e3),
        "tempo_error_ppm": float((slope / nominal - 1.0) * 1e6),
        "drift_ms": float(((t[-1] - t[0]) - (t.size - 1) * nominal) * 1e3),
        "phase_wander_ms": float(residual.max() - residual.min()),
    }


def window(arrivals: list[float], frames: list[int], start: float, end: float) -> tuple[list[float], list[int], bool]:
    """The notes heard in [start, end] by both receivers.  The dump was connected first and both saw
    the same notes from the second connection on, so the two lists line up from their ends."""
    first = sum(1 for t in arrivals if t < start)
    last = sum(1 for t in arrivals if t <= end)
    offset = len(frames) - len(arrivals)
    aligned = offset >= 0
    return arrivals[first:last], frames[max(offset, 0) + first : max(offset, 0) + last] if aligned else [], aligned


def frame_clock_ppm(stamps: list[float], frames: list[int]) -> float | None:
    """The JACK frame clock's rate against time.monotonic() over the same notes (ppm; < 0: slow)."""
    if len(stamps) < 3 or len(stamps) != len(frames):
        return None
    slope = np.polyfit(np.asarray(stamps) - stamps[0], (np.asarray(frames) - frames[0]) / RATE, 1)[0]
    return float((slope - 1.0) * 1e6)


# ---------------------------------------------------------------------------------------- senders
def start_isobar(env: dict[str, str], seconds: float) -> tuple[subprocess.Popen, str]:
    """isobar's worker with its port open and waiting for GO; returns it and its JACK port."""
    worker = subprocess.Popen(
        [sys.executable, __file__, "--isobar-worker", str(seconds)],
        env={**env, "MIDO_BACKEND": "mido.backends.rtmidi/UNIX_JACK"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    header = [worker.stdout.readline().strip(), worker.stdout.readline().strip()]
    if not header[-1].startswith("READY"):
        raise RuntimeError(f"isobar did not open its JACK port: {header} {worker.stderr.read()[-2000:]}")
    ports = jack_ports(env)
    port = next((p for p in ports if p.endswith(":" + header[-1].split(" ", 1)[1])), None)
    if port is None:
        raise RuntimeError(f"isobar's port {header[-1]} is not on the private server: {sorted(ports)}")
    return worker, port


def start_firefly(env: dict[str, str], home: str, log, backend: str = "jack") -> tuple[subprocess.Popen, str]:
    """The daemon playing the 4 Hz firefly on ``backend``; returns it and its JACK out port."""
    client = f"ffm-jitter-{uuid.uuid4().hex[:6]}"
    args = [sys.executable, "-m", "firefly_midi", "daemon", "--backend", backend, "--client-name", client, "--no-input"]
    args += ["--preset", "pulse-sine", "--status-every", "5", "--fresh", "--socket", str(Path(home) / "control.sock")]
    args += [a for k, v in FIREFLY_SET.items() for a in ("--set", f"{k}={v}")]
    daemon = subprocess.Popen(args, env={**env, "XDG_STATE_HOME": home}, stdout=subprocess.DEVNULL, stderr=log, text=True, cwd=HERE.parent)
    wait_for_port(env, f"{client}:out", timeout=60)
    return daemon, f"{client}:out"


def one_run(env: dict[str, str], sender: str, seconds: float, frames_per_period: int) -> dict:
    """``sender`` alone for WARM_S + ``seconds``, heard by jack_midi_dump and a monotonic receiver."""
    import rtmidi

    tag = uuid.uuid4().hex[:6]
    dump_name = f"ffm-dump-{tag}"
    arrivals: list[float] = []

    def on_message(event, _data, monotonic=time.monotonic):
        message = event[0]
        if len(message) == 3 and message[0] & 0xF0 == 0x90 and message[2] > 0:
            arrivals.append(monotonic())

    proc = None
    with tempfile.TemporaryFile(mode="w+") as dump_out, tempfile.TemporaryFile(mode="w+") as log, tempfile.TemporaryDirectory() as home:
        dump = subprocess.Popen(["jack_midi_dump", "-a", dump_name], env=env, stdout=dump_out, stderr=subprocess.DEVNULL, text=True)
        receiver = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, f"ffm-rcv-{tag}")
        receiver.open_virtual_port("in")
        receiver.set_callback(on_message)
        try:
            wait_for_port(env, f"{dump_name}:input")
            if sender == "isobar":
                proc, port = start_isobar(env, WARM_S + seconds + 0.5)
            else:
                proc, port = start_firefly(env, home, log, "jack-native" if sender == "firefly-native" else "jack")
            connect(env, port, f"{dump_name}:input")  # the dump first: it hears every note the receiver hears
            connect(env, port, f"ffm-rcv-{tag}:in")
            if sender == "isobar":
                proc.stdin.write("GO\n")
                proc.stdin.flush()
            start = time.monotonic() + WARM_S
            end = start + seconds
            time.sleep(end + 0.2 - time.monotonic())
        finally:
            if proc is not None:
                stop_process(proc)
            time.sleep(0.2)
            receiver.close_port()
            receiver.delete()
            dump.terminate()
            dump.wait(10)
        dump_out.seek(0)
        log.seek(0)
        dumped, text = dump_out.read(), log.read()
    stamps, frames, aligned = window(arrivals, onsets(dumped), start, end)
    floor = quantisation_floor_ms(NOMINAL_S, RATE, frames_per_period)
    result = {
        "sender": sender,
        "monotonic": jitter(stamps, NOMINAL_S, floor),
        "frames": jitter([f / RATE for f in frames], NOMINAL_S, floor),
        "frame_clock_ppm": frame_clock_ppm(stamps, frames),
        "receivers_aligned": aligned,
    }
    statuses = [json.loads(line.split(" status ", 1)[1]) for line in text.splitlines() if " status {" in line]
    if statuses:
        result["firefly_last_status"] = {k: statuses[-1].get(k) for k in ("ticks", "skipped_ticks", "lost_ticks", "notes_out")}
    return result


# ---------------------------------------------------------------------------------------------- run
def spread(values: list[float]) -> dict[str, float]:
    return {"median": float(median(values)), "min": float(min(values)), "max": float(max(values))}


def summarise(runs: list[dict]) -> dict:
    """Per sender and time base: the median and range over runs of each figure; isobar / firefly of the medians."""
    summary: dict = {}
    for base in ("monotonic", "frames"):
        for sender in SENDERS:
            mine = [r[base] for r in runs if r["sender"] == sender and "dev_p50_ms" in r[base]]
            if mine:
                summary[f"{sender} {base}"] = {key: spread([m[key] for m in mine]) for key in SUMMARY_KEYS} | {"runs": len(mine)}
        for ours in SENDERS[1:]:
            a, b = summary.get(f"isobar {base}"), summary.get(f"{ours} {base}")
            if a and b:
                # a deviation under one frame reads as one: the ratio is then a lower bound
                summary[f"isobar/{ours} {base}"] = {key: a[key]["median"] / max(b[key]["median"], FRAME_MS) for key in SUMMARY_KEYS[:3]}
    clocks = [r["frame_clock_ppm"] for r in runs if r["frame_clock_ppm"] is not None]
    if clocks:
        summary["frame_clock_ppm"] = spread(clocks)
    return summary


def run(runs: int, seconds: float, frames: int, realtime: bool, senders: tuple[str, ...] = SENDERS) -> list[dict]:
    out = []
    with private_jack(RATE, frames, realtime=realtime) as env:
        for i in range(runs):
            for sender in senders if i % 2 == 0 else senders[::-1]:
                out.append(one_run(env, sender, seconds, frames) | {"round": i})
                print(f"  run {i + 1} {sender}: done", file=sys.stderr, flush=True)
    return out


def machine() -> dict[str, object]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        isobar = version("isobar")
    except PackageNotFoundError:
        isobar = "not installed"
    return describe(isobar=isobar)


def cell(figure: dict[str, float], key: str) -> str:
    form = ".0f" if key.endswith("ppm") else ".2f"
    return f"{figure['median']:{form}} ({figure['min']:{form}} to {figure['max']:{form}})"


def show(r: dict) -> None:
    print(
        f"\nsteady 8th notes at 120 BPM (nominal {NOMINAL_S * 1e3:.0f} ms), {r['runs']} runs of {r['seconds']:g} s per sender, "
        f"alternating, JACK {r['frames']} frames / 48 kHz{' real-time' if r['realtime'] else ''} "
        f"(a perfect sender shows |dev| = {r['quantisation_floor_ms']:.3f} ms)"
    )
    print("median over runs (min-max)")
    print(f"{'sender, time base':<29}" + "".join(f"{k:>26}" for k in SUMMARY_KEYS))
    s = r["summary"]
    for base in ("monotonic", "frames"):
        for sender in SENDERS:
            row = s.get(f"{sender} {base}")
            if row:
                cells = "".join(f"{cell(row[k], k):>26}" for k in SUMMARY_KEYS)
                print(f"{sender + ', ' + base:<29}{cells}")
        for ours in SENDERS[1:]:
            if f"isobar/{ours} {base}" in s:
                ratios = ", ".join(f"{k} {v:.2f}x" for k, v in s[f"isobar/{ours} {base}"].items())  # ours under a frame: at least
                print(f"  isobar / {ours}, medians ({base}): {ratios}")
    if "frame_clock_ppm" in s:
        c = s["frame_clock_ppm"]
        print(f"JACK frame clock against monotonic: {c['median']:+.0f} ppm ({c['min']:+.0f} to {c['max']:+.0f})")
    skipped = [(x["firefly_last_status"] or {}) for x in r["runs_detail"] if x.get("firefly_last_status")]
    if skipped:
        print(
            "firefly daemon, skipped / lost ticks per run: " + ", ".join(f"{x.get('skipped_ticks')}/{x.get('lost_ticks')}" for x in skipped)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each sender, alternating (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds of each run (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=64, help="JACK period in frames at 48 kHz (default: %(default)s)")
    parser.add_argument("--no-realtime", action="store_true", help="jackd without real-time priority")
    parser.add_argument("--senders", default=",".join(SENDERS), help="comma-separated, of %(default)s")
    parser.add_argument("--out", type=Path, default=RESULTS / "jitter.json", help="JSON results (default: %(default)s)")
    parser.add_argument("--isobar-worker", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.isobar_worker:
        isobar_worker(args.isobar_worker)
        return
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, isobar {info['isobar']}", flush=True)
    senders = tuple(name for name in args.senders.split(",") if name)
    if not set(senders) <= set(SENDERS):
        parser.error(f"--senders: each of {', '.join(SENDERS)}")
    detail = run(args.runs, args.seconds, args.frames, not args.no_realtime, senders)
    result = {"machine": info, "runs": args.runs, "seconds": args.seconds, "frames": args.frames, "realtime": not args.no_realtime}
    result |= {
        "quantisation_floor_ms": quantisation_floor_ms(NOMINAL_S, RATE, args.frames),
        "summary": summarise(detail),
        "runs_detail": detail,
    }
    show(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
