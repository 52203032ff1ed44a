"""How long a new user waits: the first note after ``firefly-midi daemon`` on a fresh install, and after it.

Run: python benchmarks/bench_startup.py [--presets pulse-sine,ermentrout-800 | all] [--cold-presets ...] [--realtime] [--ticks-only]
Prints tables and writes benchmarks/results/startup.json.

For each preset, a fresh copy of the package (firefly_midi/ and presets/ copied into a temporary
folder, so no ``__pycache__`` of this checkout helps) runs ``python -m firefly_midi daemon`` on a
private JACK server with an empty kernel cache (``FIREFLY_MIDI_CACHE_DIR`` in a temporary folder):
- cold: time from starting the process to the first note-on heard by an outside client
  (``jack_midi_dump``, which the daemon connects its output to), and to the daemon's log line saying
  the compiled kernels took over from the numpy engine;
- warm: the same again with the cache the cold run filled (no handover: the kernels load at start).
``simulate --seconds 1`` is timed the same way, cold (its own empty cache) and warm.
Cold runs compile for a minute or more each on a small machine: ``--cold-presets`` picks which.
First, in this process, the time a tick takes on the numpy engine for each preset (``--ticks-only``:
that alone).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT))  # this checkout's firefly_midi, not an installed one

from jackserver import private_jack, stop_process, wait_for_port  # noqa: E402
from machine import describe  # noqa: E402

RESULTS = HERE / "results"
NOTE_ON = re.compile(r"\b9[0-9a-f]\s+[0-9a-f]{2}\s+([0-9a-f]{2})\b", re.IGNORECASE)
TOOK_OVER = "compiled kernels took over"
LISTENER = "ffm-ear"


def fresh_copy(into: Path) -> Path:
    """firefly_midi/ and presets/ of this checkout, without any compiled byte code or numba cache."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc")
    shutil.copytree(ROOT / "firefly_midi", into / "firefly_midi", ignore=ignore)
    shutil.copytree(ROOT / "presets", into / "presets", ignore=ignore)
    return into


class Lines:
    """A child's output, line by line, each with the monotonic time it was read (a reader thread)."""

    def __init__(self, stream) -> None:
        self.lines: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def first(self, test) -> float | None:
        return next((t for t, line in list(self.lines) if test(line)), None)


def _note_on(line: str) -> bool:
    match = NOTE_ON.search(line)
    return bool(match) and int(match.group(1), 16) > 0


def daemon_start(env: dict[str, str], copy: Path, cache: Path, preset: str, wait_s: float) -> dict:
    """One start of the daemon: seconds to the first note heard outside, and to the handover."""
    env = {**env, "FIREFLY_MIDI_CACHE_DIR": str(cache), "PYTHONPATH": str(copy), "XDG_STATE_HOME": str(cache / "state")}
    ear = subprocess.Popen(["stdbuf", "-oL", "jack_midi_dump"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    heard = Lines(ear.stdout)
    wait_for_port(env, "midi-monitor:input", timeout=30)
    socket = cache / f"{preset}.sock"
    args = [sys.executable, "-m", "firefly_midi", "daemon", "--backend", "jack", "--preset", preset, "--fresh", "--no-input"]
    args += ["--connect-out", "midi-monitor:input", "--socket", str(socket), "--log-level", "info", "--status-every", "0.5"]
    began = time.monotonic()
    daemon = subprocess.Popen(args, env=env, cwd=copy, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        log = Lines(daemon.stderr)
        deadline = began + wait_s
        while time.monotonic() < deadline and daemon.poll() is None:
            if heard.first(_note_on) is not None and (log.first(lambda s: TOOK_OVER in s) is not None or "numpy" not in _all(log)):
                break
            time.sleep(0.05)
        first, handover = heard.first(_note_on), log.first(lambda s: TOOK_OVER in s)
        if handover is not None:
            time.sleep(1.0)  # a status line (every 0.5 s) after the takeover, for around_handover
    finally:
        for proc in (daemon, ear):
            stop_process(proc)
    return {
        "first_note_s": None if first is None else round(first - began, 3),
        "compiled_takes_over_s": None if handover is None else round(handover - began, 3),
        "started_on": "numpy" if "numpy engine" in _all(log) else "compiled",
        "handover": around_handover([json.loads(line.split(" status ", 1)[1]) for _, line in log.lines if " status {" in line]),
        "daemon_rc": daemon.returncode,
        **({} if first is not None else {"log_tail": _all(log)[-1500:]}),
    }


def around_handover(statuses: list[dict]) -> dict | None:
    """The ticks skipped while numpy played (a second), and in the status interval (0.5 s) holding
    the handover, with that interval's tick lateness: what the loading and the swap cost the clock."""
    played = [s for s in statuses if s.get("engine") == "numpy"]
    after = next((s for s in statuses if s.get("engine") == "compiled"), None)
    if not played or after is None:
        return None
    before = played[-1]
    seconds = max(before["time_s"] - played[0]["time_s"], 1e-9)
    return {
        "numpy_skipped_per_s": round((before["skipped_ticks"] - played[0]["skipped_ticks"]) / seconds, 2),
        "skipped_ticks": after["skipped_ticks"] - before["skipped_ticks"],
        "caught_up_ticks": after["caught_up_ticks"] - before["caught_up_ticks"],
        "lost_ticks": after["lost_ticks"] - before["lost_ticks"],
        "lateness_us": after.get("lateness_window_us"),
    }


def _all(lines: Lines) -> str:
    return "\n".join(line for _, line in list(lines.lines))


def simulate_once(copy: Path, cache: Path, preset: str) -> dict:
    env = {"FIREFLY_MIDI_CACHE_DIR": str(cache), "PYTHONPATH": str(copy)}
    args = [sys.executable, "-m", "firefly_midi", "simulate", "--preset", preset, "--seconds", "1", "--json"]
    began = time.monotonic()
    done = subprocess.run(args, env={**_environ(), **env}, cwd=copy, capture_output=True, text=True, timeout=1200)
    took = time.monotonic() - began
    return {"seconds": round(took, 3), "rc": done.returncode, "engine": "numpy" if "numpy engine" in done.stderr else "compiled"}


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


def fill_cache(copy: Path, cache: Path) -> float:
    """Compile every shipped preset's kernels into ``cache`` (what a first daemon run leaves); seconds taken."""
    began = time.monotonic()
    env = {**_environ(), "FIREFLY_MIDI_CACHE_DIR": str(cache), "PYTHONPATH": str(copy)}
    subprocess.run(
        [sys.executable, "-m", "firefly_midi.handover"], input="", text=True, cwd=copy, env=env, capture_output=True, timeout=3600
    )
    return round(time.monotonic() - began, 1)


def run_preset(env: dict[str, str], copy: Path, warm_cache: Path, preset: str, cold: bool, wait_s: float) -> dict:
    row: dict = {"preset": preset, "cold": None, "simulate_cold": None}
    if cold:
        with tempfile.TemporaryDirectory(prefix="ffm-cache-") as empty:
            row["cold"] = daemon_start(env, copy, Path(empty), preset, wait_s)
        with tempfile.TemporaryDirectory(prefix="ffm-cache-") as empty:
            row["simulate_cold"] = simulate_once(copy, Path(empty), preset)
    row["warm"] = daemon_start(env, copy, warm_cache, preset, 30.0)
    row["simulate_warm"] = simulate_once(copy, warm_cache, preset)
    return row


def numpy_ticks(preset: str, ticks: int = 3000) -> dict:
    """µs a whole tick takes on the numpy engine (Player.tick: swarm step and mapping), mean and max."""
    from firefly_midi import presets
    from firefly_midi.player import Player

    player, took = Player(presets.resolve(preset), engine="numpy"), []
    for k in range(ticks):
        began = time.perf_counter()
        player.tick(k)
        took.append(time.perf_counter() - began)
    return {"preset": preset, "ticks": ticks, "mean_us": round(1e6 * sum(took) / ticks, 1), "max_us": round(1e6 * max(took), 1)}


def show_ticks(rows: list[dict]) -> None:
    print("\nthe numpy engine in this process: µs a 1 ms tick takes (Player.tick: swarm step and mapping)")
    print(f"{'preset':<18}{'mean µs':>9}{'max µs':>9}")
    for r in rows:
        print(f"{r['preset']:<18}{r['mean_us']:>9.1f}{r['max_us']:>9.1f}")


def show(rows: list[dict]) -> None:
    def cell(value) -> str:
        return "-" if value is None else f"{value:.2f}"

    print("\nseconds from starting the process; cold: empty kernel cache, warm: filled; takeover: the compiled engine replaces numpy;")
    print("skipped: ticks the clock skipped on numpy (a second) and in the 0.5 s holding the takeover; silent: of those, the")
    print("ticks the catch-up stepped without playing their notes (lost: not even stepped)")
    head = f"{'preset':<18}{'cold: 1st note':>15}{'takeover':>10}{'skipped/s':>10}{'at takeover':>12}{'silent':>7}{'lost':>5}"
    print(head + f"{'warm: 1st note':>16}{'on':>10}  {'simulate 1 s cold':>18}{'warm':>7}")
    for r in rows:
        cold, warm, sim_c, sim_w = r["cold"] or {}, r["warm"], r["simulate_cold"] or {}, r["simulate_warm"]
        around = cold.get("handover") or {}
        skipped = around.get("skipped_ticks")
        print(
            f"{r['preset']:<18}{cell(cold.get('first_note_s')):>15}{cell(cold.get('compiled_takes_over_s')):>10}"
            f"{cell(around.get('numpy_skipped_per_s')):>10}{'-' if skipped is None else skipped:>12}"
            f"{around.get('caught_up_ticks', '-'):>7}{around.get('lost_ticks', '-'):>5}"
            f"{cell(warm['first_note_s']):>16}{warm['started_on']:>10}  {cell(sim_c.get('seconds')):>18}{cell(sim_w['seconds']):>7}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="all", help="comma-separated shipped presets, or all (default)")
    parser.add_argument(
        "--cold-presets", default="pulse-sine,ermentrout-800", help="those also started cold, or all (default: %(default)s)"
    )
    parser.add_argument("--wait", type=float, default=600.0, help="longest a cold start is watched, seconds (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=RESULTS / "startup.json", help="JSON results (default: %(default)s)")
    parser.add_argument(
        "--realtime", action="store_true", help="jackd -R, as the README asks musicians: the tick then runs on SCHED_FIFO too"
    )
    parser.add_argument("--ticks-only", action="store_true", help="only time the numpy engine's ticks (a few seconds)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped run still stops its server and daemons
    shipped = sorted(p.stem for p in (ROOT / "presets").glob("*.toml"))
    chosen = shipped if args.presets == "all" else args.presets.split(",")
    cold = set(shipped if args.cold_presets == "all" else args.cold_presets.split(","))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    result: dict = {"machine": describe(commit=commit), "command": " ".join(sys.argv), "realtime": args.realtime, "rows": []}
    result["numpy_ticks"] = [numpy_ticks(preset) for preset in chosen]
    show_ticks(result["numpy_ticks"])
    if args.ticks_only:
        return _write(result, args.out)
    with tempfile.TemporaryDirectory(prefix="ffm-fresh-") as folder, private_jack(realtime=args.realtime) as env:
        copy = fresh_copy(Path(folder) / "copy")
        warm_cache = Path(folder) / "cache"
        result["fill_cache_s"] = fill_cache(copy, warm_cache)
        print(f"filled the warm cache (every shipped preset's kernels) in {result['fill_cache_s']} s", flush=True)
        for preset in chosen:
            row = run_preset(env, copy, warm_cache, preset, preset in cold, args.wait)
            result["rows"].append(row)
            print(json.dumps(row), flush=True)
    show(result["rows"])
    return _write(result, args.out)


def _write(result: dict, out: Path) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
