"""The soak benchmark's CI-size run: 10⁵ fireflies, a telemetry subscriber and a steady input, 30 s.

benchmarks/bench_soak.py starts its own private JACK server and daemon; this runs it as a user
would and checks what it reports: memory does not grow, nothing is left hanging, nothing failed.
The 10-minute run is `python benchmarks/bench_soak.py` (figures in docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import unavailable

pytestmark = [pytest.mark.jack, pytest.mark.slow]  # half a minute of soak, on each backend

SECONDS = 30  # memory growth is measured from the 10th second on (bench_soak.summarize)

ROOT = Path(__file__).resolve().parents[2]


def test_a_soak_leaks_nothing_and_leaves_no_note_hanging(tmp_path, compiled_kernels, backend):
    if not shutil.which("jackd"):
        unavailable("jackd is not installed (Debian: apt-get install jackd2)")
    out = tmp_path / "soak.json"
    env_dirs = {name: str(tmp_path / name.lower()) for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_soak.py"), "--seconds", str(SECONDS), "--output", str(out), "--backend", backend],
        env={**os.environ, **env_dirs},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.exists(), done.stdout[-2000:] + done.stderr[-6000:]
    result = json.loads(out.read_text())
    assert result["exit_code"] == 0 and result["errors"] == 0, result.get("daemon_log_tail", "")[-3000:]
    assert result["hanging_notes"] == 0
    assert result["rss_growth_kb"] < 5 * 1024, f"resident memory grew {result['rss_growth_kb']} KB in {SECONDS} s"
    assert result["frames"] > 20 * SECONDS and result["telemetry_error"] in (None, "")
    why = f"ports {result['ports']}\n{result['daemon_log_tail'][-2500:]}\njackd: {result.get('jackd_log_tail', '')[-1500:]}"
    assert result["flashes_in"] > 0 and result["notes_out_daemon"] > 0, why
    # notes in and out balanced (issue #7): every note sent in is a flash, every note played is heard,
    # and every note-on heard is answered by its note-off, none started again while sounding
    counts = {k: result[k] for k in ("flashes_in", "notes_sent_in", "dropped_in", "inputs_reopened")}
    assert result["dropped_in"] == 0, f"{counts}; {why}"
    if result["inputs_reopened"] == 0:
        assert result["flashes_in"] == result["notes_sent_in"], f"{counts}; {why}"
    else:  # the input went deaf (libjack, see ports.Ports.reopen_input): notes are lost until it is open again
        lost_at_most = result["inputs_reopened"] * 8 * 4  # 8 s a reopen at most, 4 notes a second
        assert result["flashes_in"] >= result["notes_sent_in"] - lost_at_most, f"{counts}; {why}"
        assert result["samples"][-1]["flashes_in"] > result["samples"][-3]["flashes_in"], f"deaf at the end: {why}"
    heard = {k: result[k] for k in ("notes_out_daemon", "note_ons_heard", "note_offs_heard", "note_on_while_sounding")}
    assert result["note_ons_heard"] == result["note_offs_heard"] == result["notes_out_daemon"], heard
    assert result["note_on_while_sounding"] == 0, heard
