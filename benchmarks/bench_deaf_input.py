"""The deaf-JACK-input race, provoked: daemon starts with short-lived JACK clients coming and going.

Run: python benchmarks/bench_deaf_input.py [--starts 10] [--heard-within 20]
Prints a table and writes benchmarks/results/deaf_input.json.

rtmidi's JACK input can open deaf when a short-lived client (``jack_lsp`` here) has just left the
server: libjack shares one futex table among a process's clients, and the input keeps the futex of
the client that left (docs/reliability.md, "the JACK input opens deaf").  The daemon probes its
input when it opens it and its heartbeat finds an input that went deaf later; either way it opens
the input again.  This script starts the daemon ``--starts`` times on a private JACK server with
``jack_lsp`` run in a loop beside it and a drum machine (tests/integration/peer.py) playing into
it, and counts, per start: the seconds until the daemon heard its first note, the inputs and
sysex guards it found deaf and opened again, and whether it exited cleanly on SIGTERM.

Why a benchmark and not a test: the race needs a loaded machine to hit, and on one the synchronous
dummy server itself stalls for seconds while the loop's clients come and go; a python-rtmidi call
into a stalled libjack holds the GIL, so the whole daemon stands still with it.  How often that
happens depends on the machine, not on the daemon: counted here, not asserted.  The mechanisms are
tested one by one (tests/integration/test_reliability.py: a sysex guard unplugged for real, a
stalled server waited out, a silent input's heartbeat).
"""

from __future__ import annotations

import argparse
import json
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

from jackserver import private_jack, server_log, stop_process, wait_for_port  # noqa: E402
from machine import describe  # noqa: E402

from firefly_midi.control import ControlError, request, wait_for_daemon  # noqa: E402
from firefly_midi.testing.jackserver import jack_lsp  # noqa: E402

PEER = HERE.parent / "tests" / "integration" / "peer.py"


def lsp_in_a_loop(env: dict[str, str], stop: threading.Event) -> None:
    while not stop.is_set():
        jack_lsp(env)


def first_heard(path: Path, within: float) -> tuple[float | None, dict]:
    """Seconds from now until the daemon's status counts an incoming flash (None: not within), and its last status."""
    start = time.monotonic()
    status: dict = {}
    while time.monotonic() - start < within:
        try:
            status = request(path, "status", timeout=5.0)
        except (ControlError, OSError):
            time.sleep(0.1)
            continue
        if status.get("flashes_in", 0) > 0:
            return time.monotonic() - start, status
        time.sleep(0.1)
    return None, status


def one_start(env: dict[str, str], tmp: Path, heard_within: float) -> dict:
    client = f"ffm-deaf-{uuid.uuid4().hex[:6]}"
    path = tmp / f"{client}.sock"
    log_path = tmp / f"{client}.log"
    args = [sys.executable, "-m", "firefly_midi", "daemon", "--backend", "jack", "--client-name", client]
    args += ["--fresh", "--preset", "pulse-sine", "--socket", str(path)]
    with open(log_path, "w") as log:  # a file, never a pipe nobody reads
        daemon = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=HERE.parent)
    peer = None
    try:
        wait_for_port(env, f"{client}-in:in", timeout=120)
        peer_args = [
            sys.executable,
            str(PEER),
            "--daemon",
            client,
            "--name",
            f"drums-{client[-6:]}",
            "--seconds",
            "120",
            "--pulse-bpm",
            "600",
        ]
        peer = subprocess.Popen(peer_args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_daemon(path, 60.0)
        seconds, status = first_heard(path, heard_within)
    finally:
        if peer is not None:
            stop_process(peer, 30)
        code = stop_process(daemon, 30)
    ports = status.get("ports", {})
    return {
        "heard_s": seconds,
        "deaf_inputs": ports.get("deaf_inputs", 0),
        "deaf_guards": ports.get("deaf_guards", 0),
        "stalls": ports.get("stalls", 0),
        "exit_code": code,
        "log_tail": log_path.read_text()[-1500:] if seconds is None or code != 0 else "",
    }


def run(starts: int, heard_within: float) -> dict:
    with private_jack() as env, tempfile.TemporaryDirectory(prefix="ffm-deaf-") as tmp:
        env = {**env, **{k: str(Path(tmp) / k.lower()) for k in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR")}}
        halt = threading.Event()
        looper = threading.Thread(target=lsp_in_a_loop, args=(env, halt), daemon=True)
        looper.start()
        try:
            rows = [one_start(env, Path(tmp), heard_within) for _ in range(starts)]
        finally:
            halt.set()
            looper.join(timeout=40)
        jackd_tail = server_log(env) if any(r["heard_s"] is None or r["exit_code"] != 0 for r in rows) else ""
    heard = sorted(r["heard_s"] for r in rows if r["heard_s"] is not None)
    return {
        "machine": describe(),
        "starts": starts,
        "heard_within_s": heard_within,
        "heard": len(heard),
        "heard_s_median": heard[len(heard) // 2] if heard else None,
        "heard_s_max": heard[-1] if heard else None,
        "deaf_inputs": sum(r["deaf_inputs"] for r in rows),
        "deaf_guards": sum(r["deaf_guards"] for r in rows),
        "stalls": sum(r["stalls"] for r in rows),
        "clean_exits": sum(r["exit_code"] == 0 for r in rows),
        "rows": rows,
        "jackd_log_tail": jackd_tail,
    }


def print_table(result: dict) -> None:
    print(f"{'start':>5} {'heard (s)':>10} {'deaf inputs':>12} {'deaf guards':>12} {'stalls':>7} {'exit':>6}")
    for i, r in enumerate(result["rows"], 1):
        heard = "never" if r["heard_s"] is None else f"{r['heard_s']:.2f}"
        code = "hung" if r["exit_code"] is None else str(r["exit_code"])
        print(f"{i:>5} {heard:>10} {r['deaf_inputs']:>12} {r['deaf_guards']:>12} {r['stalls']:>7} {code:>6}")
    print(
        f"heard in {result['heard']} of {result['starts']} starts within {result['heard_within_s']:.0f} s "
        f"(median {_s(result['heard_s_median'])}, max {_s(result['heard_s_max'])}); "
        f"found deaf and opened again: {result['deaf_inputs']} inputs, {result['deaf_guards']} guards; "
        f"server stalls {result['stalls']}; clean exits {result['clean_exits']} of {result['starts']}"
    )
    print(result["machine"])


def _s(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--heard-within", type=float, default=20.0, help="seconds a start may take to hear the drum machine")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "deaf_input.json")
    options = parser.parse_args()
    result = run(options.starts, options.heard_within)
    print_table(result)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
