"""Timing of a steady pulse, side by side: isobar's Timeline against the firefly-midi daemon, on JACK.

Run: python benchmarks/bench_jitter.py [--seconds 30] [--frames 64]
Prints a table and writes benchmarks/results/jitter.json.

Both play 8th notes at 120 BPM (4 notes/s, nominal interval 250 ms) at the same time, for the same
seconds, into the same receivers on a private JACK server (dummy driver, 48 kHz):

- isobar (in its own process): ``Timeline(120)`` with one track ``{"note": 60, "duration": 0.5}``
  on a ``MidiOutputDevice`` whose mido port is a virtual JACK port (mido's rtmidi backend with the
  ``UNIX_JACK`` API, chosen through ``MIDO_BACKEND``), channel 1.
- firefly-midi (``python -m firefly_midi daemon``, its own process): one firefly at 4 Hz, no
  coupling, no spread, no noise, ``mapping.mode = density``, channel 2.

Two time bases, both reported:
- monotonic (the one to read): a python-rtmidi JACK input in this process stamps
  ``time.monotonic()`` in its callback, on JACK's process thread (this process's main thread only
  sleeps, so the callback never waits for the GIL).  This is real time.
- JACK frames: ``jack_midi_dump -a`` prints each event's absolute frame time.  With a sound card
  that would be real time too; with the dummy driver on a loaded VM it is not: the driver counts 64
  frames per wake-up however late the wake-up is, so its frame clock loses the time of every stall
  (it ran 0.1-0.3 % slow here).  A sender that also loses stalls looks steady in frames, a sender
  that keeps real time looks irregular.

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

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from jackserver import connect, jack_ports, private_jack, wait_for_port  # noqa: E402
from machine import describe  # noqa: E402

RESULTS = HERE / "results"
BPM = 120.0
NOMINAL_S = 60.0 / BPM / 2  # 8th notes
RATE = 48_000
EVENT = re.compile(r"^\s*(\d+):\s+([0-9a-f]{2}) ([0-9a-f]{2}) ([0-9a-f]{2})")


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
def onsets(dump: str) -> dict[int, list[int]]:
    """Note-on frame times by MIDI channel, from ``jack_midi_dump -a`` output."""
    by_channel: dict[int, list[int]] = {}
    for line in dump.splitlines():
        m = EVENT.match(line)
        if not m:
            continue
        frame, status, _, velocity = int(m[1]), int(m[2], 16), int(m[3], 16), int(m[4], 16)
        if status & 0xF0 == 0x90 and velocity > 0:
            by_channel.setdefault(status & 0x0F, []).append(frame)
    return by_channel


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


# ---------------------------------------------------------------------------------------------- run
def run(seconds: float, frames: int) -> dict:
    with private_jack(RATE, frames) as env:
        tag = uuid.uuid4().hex[:6]
        dump_name, ffm = f"ffm-dump-{tag}", f"ffm-jitter-{tag}"
        with (
            tempfile.TemporaryFile(mode="w+") as dump_out,
            tempfile.TemporaryFile(mode="w+") as daemon_log,
            tempfile.TemporaryDirectory() as home,  # the daemon's control socket and kept state, not the user's
        ):
            dump = subprocess.Popen(["jack_midi_dump", "-a", dump_name], env=env, stdout=dump_out, stderr=subprocess.DEVNULL, text=True)
            iso_env = {**env, "MIDO_BACKEND": "mido.backends.rtmidi/UNIX_JACK"}
            isobar = subprocess.Popen(
                [sys.executable, __file__, "--isobar-worker", str(seconds)],
                env=iso_env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            ffm_set = {
                "swarm.model": "pulse",
                "swarm.n": 1,
                "swarm.freq_hz": 1.0 / NOMINAL_S,
                "swarm.freq_spread_hz": 0.0,
                "swarm.coupling": 0.0,
                "swarm.noise": 0.0,
                "clock.tick_ms": 1.0,
                "mapping.mode": "density",
                "mapping.channels": 2,
                "mapping.note_ms": 100,
            }
            ffm_args = [sys.executable, "-m", "firefly_midi", "daemon", "--backend", "jack", "--client-name", ffm, "--no-input"]
            ffm_args += ["--preset", "pulse-sine", "--status-every", "5", "--fresh", "--socket", str(Path(home) / "control.sock")]
            ffm_args += [a for k, v in ffm_set.items() for a in ("--set", f"{k}={v}")]
            daemon = None
            import rtmidi

            arrivals: dict[int, list[float]] = {0: [], 1: []}

            def on_message(event, _data, monotonic=time.monotonic):
                message = event[0]
                if len(message) == 3 and message[0] & 0xF0 == 0x90 and message[2] > 0 and message[0] & 0x0F in arrivals:
                    arrivals[message[0] & 0x0F].append(monotonic())

            receiver = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, f"ffm-rcv-{tag}")
            receiver.open_virtual_port("in")
            receiver.set_callback(on_message)
            try:
                wait_for_port(env, f"{dump_name}:input")
                header = [isobar.stdout.readline().strip(), isobar.stdout.readline().strip()]
                if not header[-1].startswith("READY"):
                    raise RuntimeError(f"isobar did not open its JACK port: {header} {isobar.stderr.read()[-2000:]}")
                before = set(jack_ports(env))
                iso_port = next((p for p in before if p.endswith(":" + header[-1].split(" ", 1)[1])), None)
                if iso_port is None:
                    raise RuntimeError(f"isobar's port {header[-1]} is not on the private server: {sorted(before)}")
                connect(env, iso_port, f"{dump_name}:input")
                connect(env, iso_port, f"ffm-rcv-{tag}:in")
                daemon = subprocess.Popen(
                    ffm_args, env={**env, "XDG_STATE_HOME": home}, stdout=subprocess.DEVNULL, stderr=daemon_log, text=True, cwd=HERE.parent
                )
                wait_for_port(env, f"{ffm}:out", timeout=60)
                connect(env, f"{ffm}:out", f"{dump_name}:input")
                connect(env, f"{ffm}:out", f"ffm-rcv-{tag}:in")
                started = time.monotonic()
                isobar.stdin.write("GO\n")
                isobar.stdin.flush()
                iso_out, iso_err = isobar.communicate(timeout=seconds + 60)
                time.sleep(max(0.0, seconds - (time.monotonic() - started)))
            finally:
                for proc in (daemon, isobar):
                    if proc is not None and proc.poll() is None:
                        proc.terminate()
                        try:
                            proc.wait(20)
                        except subprocess.TimeoutExpired:
                            proc.kill()
                time.sleep(0.2)
                receiver.close_port()
                dump.terminate()
                dump.wait(10)
            dump_out.seek(0)
            daemon_log.seek(0)
            dumped, log = dump_out.read(), daemon_log.read()
    by_channel = onsets(dumped)
    floor = quantisation_floor_ms(NOMINAL_S, RATE, frames)
    statuses = [json.loads(line.split(" status ", 1)[1]) for line in log.splitlines() if " status {" in line]
    result = {
        "seconds": seconds,
        "frames": frames,
        "rate": RATE,
        "period_ms": frames / RATE * 1e3,
        "nominal_ms": NOMINAL_S * 1e3,
        "quantisation_floor_ms": floor,
        # time base 1: JACK frame times from jack_midi_dump (what a synth on this server hears)
        "isobar": jitter([f / RATE for f in by_channel.get(0, [])], NOMINAL_S, floor),
        "firefly": jitter([f / RATE for f in by_channel.get(1, [])], NOMINAL_S, floor),
        # time base 2: CLOCK_MONOTONIC stamped in the receiving client's JACK callback
        "isobar_monotonic": jitter(arrivals[0], NOMINAL_S, floor),
        "firefly_monotonic": jitter(arrivals[1], NOMINAL_S, floor),
        "isobar_backend": header[0],
        "isobar_warnings": [line for line in iso_err.splitlines() if "overflow" in line.lower()][:5],
        "firefly_last_status": {k: statuses[-1][k] for k in ("ticks", "skipped_ticks", "lateness_us", "notes_out")} if statuses else None,
        "raw": {"frames": by_channel, "monotonic": arrivals},
    }
    del iso_out
    return result


def machine() -> dict[str, object]:
    from importlib.metadata import version

    return describe(isobar=version("isobar"))


def show(r: dict) -> None:
    print(
        f"\nsteady 8th notes at 120 BPM (nominal {r['nominal_ms']:.0f} ms) for {r['seconds']:g} s, JACK {r['frames']} frames / 48 kHz "
        f"(period {r['period_ms']:.3f} ms; a perfect sender shows |dev| = {r['quantisation_floor_ms']:.3f} ms)"
    )
    print(f"{'sender, time base':<26}{'onsets':>7}{'|dev| p50':>11}{'p99':>8}{'max':>8}{'> floor':>9}{'tempo ppm':>11}{'drift ms':>10}")
    for base, suffix in (("JACK frames", ""), ("monotonic", "_monotonic")):
        for name in ("isobar", "firefly"):
            j = r[name + suffix]
            label = f"{name}, {base}"
            if "dev_p50_ms" not in j:
                print(f"{label:<26}{j['onsets']:>7}  (too few onsets)")
                continue
            print(
                f"{label:<26}{j['onsets']:>7}{j['dev_p50_ms']:>11.3f}{j['dev_p99_ms']:>8.3f}{j['dev_max_ms']:>8.3f}"
                f"{j['dev_over_floor_share']:>9.1%}{j['tempo_error_ppm']:>11.1f}{j['drift_ms']:>10.3f}"
            )
        a, b = r["isobar" + suffix], r["firefly" + suffix]
        if "dev_p99_ms" in a and "dev_p99_ms" in b:
            ratios = ", ".join(f"{q} {a[f'dev_{q}_ms'] / max(b[f'dev_{q}_ms'], 1e-9):.2f}x" for q in ("p50", "p99", "max"))
            print(f"  isobar / firefly-midi |dev| ({base}): {ratios}")
    status = r["firefly_last_status"]
    if status:
        total = status["ticks"] + status["skipped_ticks"]
        lost = status.get("lost_ticks", 0)
        print(
            f"firefly daemon: {status['skipped_ticks']} ticks skipped of {total}, "
            f"{lost} of them not caught up (each of those delays the swarm by a tick)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of playing (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=64, help="JACK period in frames at 48 kHz (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default: benchmarks/results/jitter[-FRAMES].json)")
    parser.add_argument("--isobar-worker", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.isobar_worker:
        isobar_worker(args.isobar_worker)
        return
    result = {"machine": machine(), **run(args.seconds, args.frames)}
    print(f"machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, isobar {result['machine']['isobar']}")
    show(result)
    out = args.out or RESULTS / ("jitter.json" if args.frames == 64 else f"jitter-{args.frames}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
