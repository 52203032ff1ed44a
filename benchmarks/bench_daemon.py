"""The real-time daemon on a private JACK server: tick lateness, skipped ticks, CPU, MIDI reaction.

Run: python benchmarks/bench_daemon.py [--seconds 20] [--quick] [--backends jack,jack-native]
Prints tables and writes benchmarks/results/daemon.json.

Tick runs: each (preset, N) plays in a fresh worker process (this script with ``--worker``) that runs
the real ``Daemon`` with its JACK ports open at 1 kHz (``clock.tick_ms = 1``) while its main thread
sleeps, on each backend in turn (python-rtmidi ``jack``, then ``jack-native``, whose callback's cost
a cycle is reported too).  After a warm-up, a command submitted to the tick thread resets the clock's lateness
histogram and notes (tick k, monotonic time, busy time, thread CPU time, swarm steps); a second one
does the same at the end.  So the window's figures come from the clock's own statistics.  ``swarm
lag``: ticks the clock played or skipped minus the steps the swarm took, the time the music lost
(skipped ticks are owed and repaid).  Drift is not measured here: the clock that set the deadlines
cannot witness its own drift.  benchmarks/bench_jitter.py measures it at a receiver.

Reaction: the daemon runs as ``python -m firefly_midi daemon`` (its own process, as a user runs it)
with a Mirollo-Strogatz swarm whose external flashes are 100 neighbourhoods strong, so every note
that enters ``in`` pushes every firefly over threshold and they flash in that very tick.  A probe
client in this process (python-rtmidi, JACK) alternates two probes: a note into the daemon, timed
from send to the first note-on back from the daemon's ``out``, and a note through a bare loop
(its own out port wired to its own in port), timed the same way, so the daemon's added latency is
the difference of two distributions measured side by side.  Receive times are stamped in
python-rtmidi's callback (JACK's process thread); this process's main thread only sleeps, so the
callback never waits for the GIL.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from jackserver import connect, jack_ports, private_jack, stop_process, wait_for_port  # noqa: E402
from machine import describe  # noqa: E402

RESULTS = HERE / "results"
SIZES = (800, 10_000, 100_000, 1_000_000)
PRESETS = ("ermentrout-800", "pulse-sine")
TICK_MS = 1.0
REACTION_SET = {
    "swarm.model": "mirollo_strogatz",
    "swarm.n": 16,
    "swarm.freq_hz": 0.2,  # a natural flash every 5 s at most: every probe comes sooner, so each note out answers a probe
    "swarm.coupling": 0.3,
    "swarm.noise": 0.0,
    "input.strength": 100,
    "input.velocity_scaled": "false",
    # the most a tick takes in: far above the probes' one note, so the limit is no part of the measurement
    "input.max_per_tick": 4096,
    "mapping.mode": "density",
    "mapping.note_ms": 10,
    "clock.tick_ms": TICK_MS,
}


# ------------------------------------------------------------------------------------------ machine
def machine() -> dict[str, object]:
    try:
        jackd = subprocess.run(["jackd", "--version"], capture_output=True, text=True, check=False).stdout.splitlines()[0]
    except (OSError, IndexError):
        jackd = "?"
    return describe(jackd=jackd)


# ------------------------------------------------------------------------------ worker: one tick run
class ClockOnly:
    """The daemon's Clock ticking nothing but the benchmark's marks: the machine's own floor of lateness."""

    def __init__(self, tick_s: float):
        from collections import deque

        from firefly_midi.clock import Clock

        self._commands: deque = deque()
        self.clock = Clock(tick_s, self._tick)
        self.swarm = SimpleNamespace(ticks=0, n=0)
        self.ports = SimpleNamespace(state="open")

    def _tick(self, k: int) -> None:
        while self._commands:
            self._commands.popleft()()
        self.swarm.ticks += 1

    def submit(self, command) -> None:
        self._commands.append(command)

    def start(self) -> None:
        self.clock.start()

    def stop(self) -> None:
        self.clock.stop()

    def status(self) -> dict:
        return {"notes_out": 0, "errors": 0, "ports": {"state": "none"}}


CLOCK_ONLY = "clock-only"


def worker(spec: dict) -> dict:
    """Play one configuration in this process and measure the window between two tick-thread marks."""
    from firefly_midi import presets
    from firefly_midi.clock import Lateness
    from firefly_midi.daemon import Daemon
    from firefly_midi.ports import PortConfig

    built = time.monotonic()
    if spec["preset"] == CLOCK_ONLY:
        values = {"swarm.model": "-", "swarm.topology": "-"}
        daemon = ClockOnly(TICK_MS / 1e3)
    else:
        values = presets.resolve(spec["preset"], [f"{k}={v}" for k, v in spec["set"].items()])
        daemon = Daemon(values, spec["preset"], PortConfig(backend=spec["backend"], client=spec["client"], use_input=True))
    daemon.start()
    start_s = time.monotonic() - built
    if daemon.ports.state != "open":
        daemon.stop()
        raise SystemExit(f"the daemon's JACK ports did not open: {daemon.ports.problem}")
    clock = daemon.clock
    hist = np.zeros_like(clock.lateness.hist)
    marks: list[dict] = []
    marked = threading.Event()
    final_lateness = Lateness()

    def mark(final: bool) -> None:  # runs on the tick thread, at the start of a tick
        now = time.monotonic()
        k = clock.ticks + clock.skipped  # the tick being played now
        marks.append(
            {
                "t": now,
                "k": k,
                "ticks": clock.ticks,
                "skipped": clock.skipped,
                "busy_s": clock.busy_s,
                "cpu_s": time.thread_time(),
                "steps": daemon.swarm.ticks,
            }
        )
        if final:
            np.copyto(hist, clock.lateness.hist)
            final_lateness.count, final_lateness.max_s = clock.lateness.count, clock.lateness.max_s
        else:
            clock.lateness.reset()
        marked.set()

    def wait_mark(final: bool) -> None:
        marked.clear()
        daemon.submit(lambda: mark(final))
        if not marked.wait(30):
            raise SystemExit(f"the tick thread did not run a command within 30 s (clock error: {clock.error})")

    try:
        time.sleep(spec["warmup"])
        wait_mark(False)
        deadline = time.monotonic() + spec["seconds"]
        while (left := deadline - time.monotonic()) > 0 and clock.running:
            time.sleep(min(left, 0.5))
        if not clock.running:
            raise SystemExit(f"the tick thread stopped: {clock.error}")
        wait_mark(True)
        status = daemon.status()
    finally:
        daemon.stop()
    a, b = marks
    final_lateness.hist = hist
    elapsed = b["t"] - a["t"]
    tick = clock.tick_s
    late = final_lateness.summary()
    native = status["ports"].get("native", {})
    return {
        "preset": spec["preset"],
        "backend": spec["backend"],
        "callback_us": {"mean": native.get("callback_mean_us"), "max": native.get("callback_max_us")} if native else None,
        "n": daemon.swarm.n,
        "model": values["swarm.model"],
        "topology": values["swarm.topology"],
        "seconds": elapsed,
        "start_s": start_s,
        "ticks": b["ticks"] - a["ticks"],
        "skipped": b["skipped"] - a["skipped"],
        "lateness_us": {key: late[key] for key in ("p50", "p99", "p99.9", "max")},
        "late_ticks_over_us": {str(us): int(hist[us:].sum()) for us in (50, 100, 500, 1000)},
        "busy_share": (b["busy_s"] - a["busy_s"]) / elapsed,
        "thread_cpu_share": (b["cpu_s"] - a["cpu_s"]) / elapsed,
        "swarm_lag_ms": ((b["k"] - a["k"]) - (b["steps"] - a["steps"])) * tick * 1e3,
        "notes_out": status["notes_out"],
        "errors": status["errors"],
        "ports": status["ports"]["state"],
        "slack_lowered": clock.slack_lowered,
        "realtime": clock.realtime,
        "spin_us": clock.spin_s * 1e6,
    }


def tick_run(env: dict[str, str], preset: str, n: int | None, seconds: float, warmup: float, backend: str = "jack") -> dict:
    """One configuration in a fresh worker process on the private server."""
    overrides = {"clock.tick_ms": TICK_MS}
    if n is not None:
        overrides["swarm.n"] = n
    client = f"ffm-bench-{uuid.uuid4().hex[:6]}"
    spec = {"preset": preset, "set": overrides, "client": client, "seconds": seconds, "warmup": warmup, "backend": backend}
    done = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + warmup + 300,
        check=False,
    )
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    return {"preset": preset, "backend": backend, "n": n, "failed": f"rc {done.returncode}: {done.stderr[-1500:]}"}


# ---------------------------------------------------------------------------------------- reaction
def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    a = np.asarray(values)
    return {f"p{q}": float(np.percentile(a, q)) for q in (50, 90, 99)} | {"max": float(a.max())}


def first_after(sent: list[float], received: list[float], limit_s: float) -> list[float]:
    """For each send time, the latency to the first arrival after it (and within limit_s, before the next send)."""
    out = []
    recv = np.sort(np.asarray(received))
    for i, s in enumerate(sent):
        j = np.searchsorted(recv, s)
        end = sent[i + 1] if i + 1 < len(sent) else s + limit_s
        if j < recv.size and recv[j] < min(end, s + limit_s):
            out.append(float(recv[j] - s))
    return out


def find_port(env: dict[str, str], client: str, suffix: str, timeout: float = 10.0) -> str:
    """The JACK port of ``client`` ending in ``suffix``: the daemon's input is a client of its own,
    ``<client>-in``, so its port is ``<client>-in:in``."""
    deadline = time.monotonic() + timeout
    while True:
        found = [p for p in jack_ports(env) if p.startswith(client) and p.endswith(suffix)]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise TimeoutError(f"no JACK port of {client} ending in {suffix}: {jack_ports(env)}")
        time.sleep(0.05)


def relay(client: str) -> None:
    """A zero-work MIDI relay in its own process: python-rtmidi's callback forwards each message at once.

    It makes the same two JACK hops as the daemon (into a client, out of a client) with nothing in
    between, so ``daemon - relay`` is what the daemon's tick adds on top of the transport.
    """
    import signal

    import rtmidi

    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, f"{client}")
    out.open_virtual_port("out")
    inp = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, f"{client}-in")
    inp.open_virtual_port("in")
    send = out.send_message
    inp.set_callback(lambda event, _: send(event[0]))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    inp.close_port()
    out.close_port()


PATHS = ("bare", "relay", "daemon")


def _probe(env: dict[str, str], targets: dict[str, tuple[str, str]], probes: int, warm: int, interval: float, seed: int) -> dict:
    """Round robin over the paths: a note-on (and its note-off 5 ms later) into each, stamped at send and at the first note-on back.

    ``targets`` maps a path to (the port our note goes to, the port its answer comes from); the bare
    path is our own out wired to our own in.  Returns {path: (sent times, received times)}.
    """
    import rtmidi

    api = rtmidi.API_UNIX_JACK
    tag = uuid.uuid4().hex[:4]
    ports = []
    times: dict[str, tuple[list[float], list[float]]] = {path: ([], []) for path in PATHS}
    monotonic = time.monotonic

    def on_note(store: list[float]):
        def callback(event, _data):
            message = event[0]
            if len(message) == 3 and message[0] & 0xF0 == 0x90 and message[2] > 0:
                store.append(monotonic())

        return callback

    try:
        outs = {}
        for path in PATHS:
            out, inp = rtmidi.MidiOut(api, f"probe-{path}-o-{tag}"), rtmidi.MidiIn(api, f"probe-{path}-i-{tag}")
            out.open_virtual_port("out")
            inp.open_virtual_port("in")
            inp.set_callback(on_note(times[path][1]))
            ports += [out, inp]
            outs[path] = out
            to, back = targets.get(path, (f"probe-{path}-i-{tag}:in", f"probe-{path}-o-{tag}:out"))
            connect(env, f"probe-{path}-o-{tag}:out", to)
            if path != "bare":
                connect(env, back, f"probe-{path}-i-{tag}:in")
        time.sleep(1.0)
        rng = random.Random(seed)
        on, off = [0x90, 64, 127], [0x80, 64, 0]
        t = monotonic() + 0.05
        for i in range(warm + probes):
            for j, path in enumerate(PATHS):
                at = t + j * interval / len(PATHS) + rng.uniform(0.0, 0.004)  # random phase against ticks and JACK cycles
                time.sleep(max(0.0, at - monotonic()))
                now = monotonic()
                outs[path].send_message(on)
                if i >= warm:
                    times[path][0].append(now)
                time.sleep(0.005)
                outs[path].send_message(off)
            t += interval
        time.sleep(0.2)
    finally:
        for port in ports:
            port.close_port()
            port.delete()
    return times


def reaction(env: dict[str, str], probes: int, interval: float, seed: int = 1) -> dict:
    """Latency from a note into the daemon's ``in`` to its swarm's answer on ``out``, beside a bare loop and a relay."""
    client = f"ffm-react-{uuid.uuid4().hex[:6]}"
    relay_client = f"ffm-relay-{uuid.uuid4().hex[:6]}"
    args = [sys.executable, "-m", "firefly_midi", "daemon", "--backend", "jack", "--client-name", client, "--status-every", "1"]
    args += ["--preset", "mirollo-strogatz"] + [a for k, v in REACTION_SET.items() for a in ("--set", f"{k}={v}")]
    home = tempfile.TemporaryDirectory()  # the daemon's control socket and kept state stay in here, not the user's
    args += ["--fresh", "--socket", str(Path(home.name) / "control.sock")]
    env = {**env, "XDG_STATE_HOME": home.name}
    warm = max(1, round(3.0 / interval))  # the live tempo (and with it the re-trigger hold-off) settles on the probes' rate
    with tempfile.TemporaryFile(mode="w+") as log:
        daemon = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True, cwd=HERE.parent)
        relayed = subprocess.Popen([sys.executable, __file__, "--relay", relay_client], env=env, cwd=HERE.parent)
        try:
            try:
                wait_for_port(env, f"{client}:out", timeout=60)
            except TimeoutError:
                log.seek(0)
                raise RuntimeError(f"the daemon did not open its ports: {log.read()[-2000:]}") from None
            wait_for_port(env, f"{relay_client}:out", timeout=30)
            targets = {
                "daemon": (find_port(env, client, ":in"), f"{client}:out"),
                "relay": (find_port(env, relay_client, ":in"), f"{relay_client}:out"),
            }
            times = _probe(env, targets, probes, warm, interval, seed)
            alive = {
                path: any(p.startswith(client) for p in jack_ports(env)) for path, client in (("daemon", client), ("relay", relay_client))
            }
        finally:
            stop_process(daemon)
            stop_process(relayed)
        log.seek(0)
        text = log.read()
    home.cleanup()
    statuses = [json.loads(line.split(" status ", 1)[1]) for line in text.splitlines() if " status {" in line]
    limit = 0.02
    result: dict[str, object] = {"probes": probes, "warm_up_probes": warm, "interval_s": interval, "tick_ms": TICK_MS}
    for path in PATHS:
        sent, received = times[path]
        latencies = first_after(sent, received, limit)
        result[f"{path}_ms"] = {k: v * 1e3 for k, v in percentiles(latencies).items()}
        result[f"{path}_answered"] = len(latencies)
    d_sent, d_recv = times["daemon"]
    result["unexplained_notes"] = sum(1 for r in d_recv if r > d_sent[0] and not any(0 <= r - s < limit for s in d_sent))
    for base in ("bare", "relay"):
        if result["daemon_ms"] and result[f"{base}_ms"]:
            for q in ("p50", "p99"):
                added = result["daemon_ms"][q] - result[f"{base}_ms"][q]
                result[f"added_vs_{base}_{q}_ticks"] = added / TICK_MS
    result["clients_alive_at_end"] = alive  # jackd drops (zombifies) a client that misses its cycle deadline too often
    result["daemon_rc"] = daemon.returncode
    result["daemon_last_status"] = statuses[-1] if statuses else None
    if not statuses:
        result["daemon_log_tail"] = text[-2000:]
    return result


# -------------------------------------------------------------------------------------------- main
def show_ticks(rows: list[dict]) -> None:
    head = f"{'preset':<15}{'backend':<12}{'N':>9} {'p50':>7}{'p99':>8}{'p99.9':>9}{'max':>9}  {'skipped':>8} {'busy':>6} {'cpu':>6}"
    head += f" {'swarm lag':>10} {'sched':>6} {'spin µs':>8} {'callback µs':>13}"
    print("\ntick lateness at 1 kHz (µs); busy: share of time inside the tick; cpu: tick thread's CPU (spin included);")
    print("sched: the tick thread's scheduling at the end (rt = SCHED_FIFO); spin: its adapted spin at the end;")
    print("callback: the native JACK callback's cost a cycle, mean / max")
    print(head)
    for r in rows:
        backend = r.get("backend", "jack")
        if "failed" in r:
            print(f"{r['preset']:<15}{backend:<12}{r['n']!s:>9}  FAILED {r['failed'][-300:]}")
            continue
        n = r["n"] or "-"
        late, callback = r["lateness_us"], r.get("callback_us")
        cost = f"{callback['mean']:.1f} / {callback['max']}" if callback else "-"
        print(
            f"{r['preset']:<15}{backend:<12}{n:>9} {late['p50']:>7.0f}{late['p99']:>8.0f}{late['p99.9']:>9.0f}{late['max']:>9.0f}  "
            f"{r['skipped']:>8} {r['busy_share']:>6.1%} {r['thread_cpu_share']:>6.1%} {r['swarm_lag_ms']:>8.0f}ms"
            f" {'rt' if r.get('realtime') else 'normal':>6} {r.get('spin_us', 0.0):>8.0f} {cost:>13}"
        )


def show_reaction(r: dict) -> None:
    print(f"\nMIDI reaction, note into `in` -> the swarm's note out of `out` (ms; JACK 64 frames / 48 kHz, tick {TICK_MS:g} ms)")
    print(f"{'path':<34}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}  answered")
    labels = {"bare": "bare loop (out -> in, 1 hop)", "relay": "rtmidi relay (2 hops, no work)", "daemon": "through the daemon (2 hops)"}
    for path, label in labels.items():
        q = r[f"{path}_ms"]
        if q:
            print(f"{label:<34}{q['p50']:>8.2f}{q['p90']:>8.2f}{q['p99']:>8.2f}{q['max']:>8.2f}  {r[f'{path}_answered']}/{r['probes']}")
    for base in ("bare", "relay"):
        if f"added_vs_{base}_p50_ticks" in r:
            print(
                f"daemon adds, against the {base} path: {r[f'added_vs_{base}_p50_ticks']:.2f} ticks at p50, "
                f"{r[f'added_vs_{base}_p99_ticks']:.2f} ticks at p99 (target: <= 1 tick at p99)"
            )
    print(f"notes out answering no probe: {r['unexplained_notes']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per configuration (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="3 s per configuration and 100 reaction probes")
    parser.add_argument("--sizes", default=",".join(str(n) for n in SIZES), help="swarm sizes (default: %(default)s)")
    parser.add_argument("--presets", default=",".join(PRESETS), help="presets, swarm.n overridden (default: %(default)s)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds played before measuring (default: %(default)s)")
    parser.add_argument("--probes", type=int, default=400, help="reaction probes of each kind (default: %(default)s)")
    parser.add_argument("--probe-interval", type=float, default=0.1, help="seconds between probe pairs (default: %(default)s)")
    parser.add_argument("--backends", default="jack,jack-native", help="backends of the tick runs (default: %(default)s)")
    parser.add_argument("--no-ticks", action="store_true", help="skip the tick runs")
    parser.add_argument("--no-reaction", action="store_true", help="skip the reaction measurement")
    parser.add_argument("--out", type=Path, default=RESULTS / "daemon.json", help="JSON results (default: %(default)s)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--relay", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.relay:
        relay(args.relay)
        return
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    seconds = 3.0 if args.quick else args.seconds
    probes = 100 if args.quick else args.probes
    sizes = [int(float(s)) for s in args.sizes.split(",") if s]
    result: dict[str, object] = {"machine": machine(), "tick_ms": TICK_MS, "seconds_each": seconds}
    print(f"machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, Python {result['machine']['python']}")
    with private_jack(48_000, 64, realtime=True) as env:  # as a musician runs JACK (README)
        if not args.no_ticks:
            rows = [tick_run(env, CLOCK_ONLY, None, seconds, args.warmup)]
            print("  clock-only: done", file=sys.stderr, flush=True)
            for preset in args.presets.split(","):
                for n in sizes:
                    for backend in args.backends.split(","):  # side by side, on the same server
                        rows.append(tick_run(env, preset, n, seconds, args.warmup, backend))
                        print(f"  {preset} N={n} {backend}: done", file=sys.stderr, flush=True)
            result["ticks"] = rows
            show_ticks(rows)
        if not args.no_reaction:
            result["reaction"] = reaction(env, probes, args.probe_interval)
            show_reaction(result["reaction"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
