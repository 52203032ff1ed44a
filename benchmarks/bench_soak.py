"""Soak: the daemon playing 10^5 fireflies for minutes, watched, fed and heard; memory and timing over time.

Run: python benchmarks/bench_soak.py [--minutes 10] [--seconds 60] [--n 100000] [--preset ermentrout-800]
     [--backend jack|jack-native]
Prints a table and writes benchmarks/results/soak.json.

The daemon runs as ``python -m firefly_midi daemon`` (its own process) on a private JACK server
(benchmarks/jackserver.py).  Around it, in this process: a telemetry client subscribed at 30 fps
(``ControlClient.subscribe``), a sender playing a steady stream of notes into its ``in`` port, and a
receiver on its ``out`` port that counts every note and pairs every note-on with its note-off.  Every
few seconds the script samples the daemon's RSS (VmRSS of /proc/PID/status) and its status.  At the
end it sends SIGTERM and, half a second later, counts the notes still sounding at the receiver.

Targets (issue #7): RSS growth under 5 MB over 10 minutes, no lateness trend, zero hanging notes.
The status lateness figures are cumulative since start, so a trend shows as a rising p99 column;
skipped ticks are given per interval.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from jackserver import connect, private_jack, server_log, wait_for_port  # noqa: E402
from machine import describe  # noqa: E402

from firefly_midi.control import ControlClient, ControlError, request, wait_for_daemon  # noqa: E402

RESULTS = HERE / "results"


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Receiver(threading.Thread):
    """Counts the daemon's notes and pairs ons with offs, reading its port from a thread of its own.

    Not with an rtmidi callback: that runs on JACK's process thread and takes the GIL there, and a
    synchronous server then waits each cycle on whatever Python thread of this process holds it.
    """

    def __init__(self, name: str):
        super().__init__(daemon=True)
        import rtmidi

        self.port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name, queue_size_limit=65536)
        self.port.open_virtual_port("in")
        self.lock = threading.Lock()
        self.ons = self.offs = self.all_notes_off = self.doubled = 0
        self.sounding: dict[tuple[int, int], int] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.drain()
            time.sleep(0.001)

    def drain(self) -> None:
        while (item := self.port.get_message()) is not None:
            self._count(item[0])

    def _count(self, m: list[int]) -> None:
        with self.lock:
            if len(m) == 3 and m[0] & 0xF0 == 0x90 and m[2] > 0:
                key = (m[0] & 15, m[1])
                self.doubled += key in self.sounding
                self.sounding[key] = self.sounding.get(key, 0) + 1
                self.ons += 1
            elif len(m) == 3 and m[0] & 0xF0 in (0x80, 0x90):
                self.offs += 1
                self.sounding.pop((m[0] & 15, m[1]), None)
            elif len(m) == 3 and m[0] & 0xF0 == 0xB0 and m[1] == 123:
                self.all_notes_off += 1
                channel = m[0] & 15
                self.sounding = {k: v for k, v in self.sounding.items() if k[0] != channel}

    def hanging(self) -> list[tuple[int, int]]:
        with self.lock:
            return sorted(self.sounding)


class Sender(threading.Thread):
    """A steady note stream into the daemon's input: note-on, then its note-off 50 ms later."""

    def __init__(self, name: str, per_second: float):
        super().__init__(daemon=True)
        import rtmidi

        self.port = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name)
        self.port.open_virtual_port("out")
        self.period, self.sent, self.stopping = 1.0 / per_second, 0, threading.Event()

    def run(self) -> None:
        start, k = time.monotonic(), 0
        while not self.stopping.is_set():
            note = 48 + k % 24
            self.port.send_message([0x90, note, 100])
            time.sleep(0.05)
            self.port.send_message([0x80, note, 0])
            self.sent += 1
            k += 1
            self.stopping.wait(max(0.0, start + k * self.period - time.monotonic()))


class Watcher(threading.Thread):
    """A telemetry subscriber at ``fps``, as the TUI is: counts frames and the frames it had to drop."""

    def __init__(self, path: Path, fps: float):
        super().__init__(daemon=True)
        self.path, self.fps = path, fps
        self.frames = self.dropped = self.flashes = 0
        self.error = ""
        self.stopping = threading.Event()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        try:
            async with ControlClient(self.path) as client:
                async for frame in client.subscribe(fps=self.fps, points=2048):
                    self.frames += 1
                    self.dropped = frame.get("dropped_frames", 0) + client.frames_dropped
                    self.flashes += len(frame.get("flashes") or ())
                    if self.stopping.is_set():
                        return
        except ControlError as exc:
            if not self.stopping.is_set():
                self.error = str(exc)


# A control reply can wait seconds where the daemon opens or closes a JACK client while the server is
# stalled: python-rtmidi holds the GIL in libjack's calls (docs/reliability.md).  The soak records the
# longest wait rather than fail on it.
REPLY_TIMEOUT_S = 30.0


def timed_status(path: Path, replies: list[float]) -> dict:
    """``status`` from the daemon; how long it took is appended to ``replies``."""
    start = time.monotonic()
    status = request(path, "status", timeout=REPLY_TIMEOUT_S)
    replies.append(time.monotonic() - start)
    return status


def settled(path: Path, sent: int, replies: list[float], wait_s: float = 5.0) -> dict:
    """The daemon's status once it has taken in the ``sent`` notes, or after ``wait_s``: a tick of
    10^5 synchronised fireflies can take tens of ms, and a saturated machine stretches that."""
    deadline = time.monotonic() + wait_s
    time.sleep(0.1)  # the sender's last note-off
    while (status := timed_status(path, replies))["flashes_in"] < sent and time.monotonic() < deadline:
        time.sleep(0.05)
    return status


def soak(seconds: float, n: int, preset: str, every: float, notes_per_s: float, backend: str = "jack") -> dict:
    tag = uuid.uuid4().hex[:6]
    client = f"ffm-soak-{tag}"
    with private_jack() as env, tempfile.TemporaryDirectory(prefix="ffm-soak-") as tmp:
        path = Path(tmp) / "c.sock"
        env = {**env, **{k: str(Path(tmp) / k.lower()) for k in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR")}}
        log_path = Path(tmp) / "daemon.log"
        args = [sys.executable, "-m", "firefly_midi", "daemon", "--backend", backend, "--client-name", client, "--preset", preset]
        # the receiver first, and the daemon connects to it as it opens: every note it plays is heard (a
        # daemon that plays as soon as its port appears, as the native backend's does, was ahead of a
        # connection made after the port appeared, and its first notes went unheard)
        receiver = Receiver(f"soak-rx-{tag}")
        receiver.start()
        args += ["--set", f"swarm.n={n}", "--socket", str(path), "--fresh", "--connect-out", f"soak-rx-{tag}:in"]
        with open(log_path, "w") as log:  # a file, never a pipe nobody reads
            daemon = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=HERE.parent)
        try:
            wait_for_port(env, f"{client}:out", timeout=120)
            sender = Sender(f"soak-tx-{tag}", notes_per_s)
            connect(env, f"soak-tx-{tag}:out", f"{client}:in" if backend == "jack-native" else f"{client}-in:in")  # rtmidi: an input client
            wait_for_daemon(path, 120.0)  # it answers once it plays: notes sent while it probes its input are not the swarm's
            watcher = Watcher(path, 30)
            watcher.start()
            sender.start()
            samples, replies = [], []
            start = time.monotonic()
            while True:
                now = time.monotonic() - start
                status = timed_status(path, replies)
                samples.append(
                    {
                        "t_s": round(now, 2),
                        "rss_kb": rss_kb(daemon.pid),
                        "ticks": status["ticks"],
                        "skipped_ticks": status["skipped_ticks"],
                        "lateness_us": status["lateness_us"],
                        "cpu_share": status["cpu_share"],
                        "notes_out": status["notes_out"],
                        "flashes_in": status["flashes_in"],
                        "dropped_in": status["dropped_in"],
                        "errors": status["errors"],
                        "deaf_inputs": status["ports"]["deaf_inputs"],
                        "frames": watcher.frames,
                    }
                )
                if now >= seconds:
                    break
                time.sleep(min(every, max(0.0, seconds - now)))
            sender.stopping.set()
            sender.join(2)
            final = settled(path, sender.sent, replies)
            watcher.stopping.set()
        except (ControlError, OSError) as exc:  # say what the daemon was doing
            # jackd's log first: its xrun lines would otherwise bury the daemon's last words
            why = f"jackd's log ends:\n{server_log(env)[-1500:]}\nthe daemon's log ends:\n{log_path.read_text()[-4000:]}"
            raise RuntimeError(f"{why}\n{type(exc).__name__}: {exc}") from exc
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                code = daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                code = daemon.wait()
        time.sleep(0.5)  # the last note-offs and All Notes Off reach the receiver
        receiver.stopping.set()
        receiver.join(2)
        receiver.drain()
        watcher.join(3)
        log_text = log_path.read_text()
        jackd_tail = server_log(env)
        hanging = receiver.hanging()
        for port in (receiver.port, sender.port):  # close the clients too: see tests/integration/peer.py
            port.close_port()
            port.delete()
    played = re.search(r"stopped; (\d+) notes played", log_text)  # the daemon's own count, after its last note
    totals = {"flashes_in": final["flashes_in"], "notes_out": int(played.group(1)) if played else None}
    totals |= {"ports": final["ports"], "replies": replies, "jackd_log_tail": jackd_tail}
    return {"backend": backend} | summarize(samples, totals, receiver, sender, watcher, hanging, code, log_text[-2000:], n, preset)


def summarize(samples, totals, receiver, sender, watcher, hanging, code, log_tail, n, preset) -> dict:
    warm = next((s for s in samples if s["t_s"] >= 10), samples[0])  # after start-up and the first allocations
    last = samples[-1]
    half = samples[len(samples) // 2]
    return {
        "machine": describe(),
        "preset": preset,
        "n": n,
        "seconds": last["t_s"],
        "exit_code": code,
        "rss_start_kb": warm["rss_kb"],
        "rss_end_kb": last["rss_kb"],
        "rss_growth_kb": last["rss_kb"] - warm["rss_kb"],
        "rss_growth_second_half_kb": last["rss_kb"] - half["rss_kb"],
        "lateness_p99_us_half": half["lateness_us"]["p99"],
        "lateness_p99_us_end": last["lateness_us"]["p99"],
        "skipped_ticks": last["skipped_ticks"],
        "notes_sent_in": sender.sent,
        "flashes_in": totals["flashes_in"],
        "dropped_in": last["dropped_in"],
        "notes_out_daemon": totals["notes_out"],
        "ports": totals["ports"],
        "status_reply_max_s": round(max(totals["replies"]), 3),
        "inputs_reopened": totals["ports"]["deaf_inputs"] - samples[0]["deaf_inputs"],  # deaf during the soak
        "note_ons_heard": receiver.ons,
        "note_offs_heard": receiver.offs,
        "all_notes_off_heard": receiver.all_notes_off,
        "note_on_while_sounding": receiver.doubled,
        "hanging_notes": len(hanging),
        "frames": watcher.frames,
        "frames_dropped": watcher.dropped,
        "telemetry_error": watcher.error,
        "errors": last["errors"],
        "samples": samples,
        "daemon_log_tail": log_tail,
        "jackd_log_tail": totals["jackd_log_tail"],
    }


def print_table(result: dict) -> None:
    machine = result["machine"]
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}")
    print(f"soak: {result['preset']}, {result['n']} fireflies, {result['seconds']:.0f} s, --backend {result['backend']}")
    head = (("t s", 6), ("RSS MB", 8), ("ticks", 8), ("skipped", 8), ("p50 us", 7), ("p99 us", 7), ("p99.9", 7), ("cpu", 5))
    print(" ".join(f"{h:>{w}}" for h, w in head) + f" {'out':>6} {'in':>5} {'frames':>7}")
    previous = 0
    for s in result["samples"]:
        lat = s["lateness_us"]
        print(
            f"{s['t_s']:>6.0f} {s['rss_kb'] / 1024:>8.1f} {s['ticks']:>8} {s['skipped_ticks'] - previous:>8} {lat['p50']:>7.0f} "
            f"{lat['p99']:>7.0f} {lat['p99.9']:>7.0f} {s['cpu_share']:>5.2f} {s['notes_out']:>6} {s['flashes_in']:>5} {s['frames']:>7}"
        )
        previous = s["skipped_ticks"]
    keys = (
        "rss_growth_kb",
        "rss_growth_second_half_kb",
        "lateness_p99_us_half",
        "lateness_p99_us_end",
        "notes_sent_in",
        "flashes_in",
        "dropped_in",
        "inputs_reopened",
        "status_reply_max_s",
        "notes_out_daemon",
        "note_ons_heard",
        "note_offs_heard",
        "all_notes_off_heard",
        "note_on_while_sounding",
        "hanging_notes",
        "frames",
        "frames_dropped",
        "errors",
        "exit_code",
    )
    for key in keys:
        print(f"{key:>28}  {result[key]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=None, help="overrides --minutes (CI size: 60)")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--preset", default="ermentrout-800")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--notes-per-s", type=float, default=4.0, help="the steady input note stream")
    parser.add_argument("--output", type=Path, default=RESULTS / "soak.json")
    parser.add_argument("--backend", choices=("jack", "jack-native"), default="jack", help="the daemon's JACK backend")
    args = parser.parse_args()
    seconds = args.seconds if args.seconds is not None else 60.0 * args.minutes
    result = soak(seconds, args.n, args.preset, args.every, args.notes_per_s, args.backend)
    print_table(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.output}")
    ok = result["hanging_notes"] == 0 and result["exit_code"] == 0 and result["errors"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
