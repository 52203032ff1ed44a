"""The command line as a shell sees it: real processes, real pipes, their exit status and stderr."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from firefly_midi import __version__
from firefly_midi.cli import EXIT_CODES
from firefly_midi.params import PARAMS

DOCS = Path(__file__).resolve().parents[1] / "docs"
FIREFLY = [sys.executable, "-m", "firefly_midi"]
TIMEOUT_S = 120  # a loaded two-core machine: the package import alone can take seconds


def firefly(*args: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run([*FIREFLY, *args], capture_output=True, text=True, timeout=TIMEOUT_S, **options)


def documented_codes(text: str) -> dict[int, str]:
    """{code: meaning} of lines that start with an exit code (--help's epilog, the docs' table)."""
    rows = re.findall(r"^\s*\|?\s*`?(\d+)`?\s*\|?\s+(\S.*)$", text, flags=re.MULTILINE)
    return {int(code): meaning for code, meaning in rows}


@pytest.fixture
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ffcli-", dir="/tmp"))  # short: a socket path is at most 107 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def silent_socket(folder: Path) -> Iterator[Path]:
    """A Unix socket that accepts connections and never says a word, as a daemon busy compiling does."""
    path = folder / "silent.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen()
        yield path


@pytest.mark.parametrize("unbuffered", ["1", ""], ids=["unbuffered", "buffered"])
@pytest.mark.parametrize("command", [["params"], ["params", "--markdown"], ["presets"]], ids=" ".join)
def test_output_into_a_closed_pipe_ends_quietly_with_141(command: list[str], unbuffered: str) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the first byte: every write meets EPIPE
    try:
        env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
        done = subprocess.run([*FIREFLY, *command], stdout=write_end, stderr=subprocess.PIPE, text=True, env=env, timeout=TIMEOUT_S)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")


def test_params_into_head_prints_the_first_line_and_no_traceback() -> None:
    done = subprocess.run(
        ["bash", "-c", 'set -o pipefail; "$@" params | head -1', "pipeline", *FIREFLY],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    first = next(iter(PARAMS.values())).key
    assert done.stdout.split() and done.stdout.split()[0] == first
    assert done.stderr == ""
    assert done.returncode in (0, 141)  # 0 when params wrote everything before head left


def test_version() -> None:
    done = firefly("--version")
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, f"firefly-midi {__version__}", "")


def test_help_and_docs_list_the_same_exit_codes() -> None:
    done = firefly("--help")
    assert done.returncode == 0
    assert EXIT_CODES in done.stdout
    in_help = documented_codes(EXIT_CODES)
    assert sorted(in_help) == [0, 1, 2, 3, 130, 141]
    section = (DOCS / "control.md").read_text().split("## Exit codes", 1)
    assert len(section) == 2, "docs/control.md has no Exit codes section"
    assert sorted(documented_codes(section[1])) == sorted(in_help)


@pytest.mark.parametrize(
    "args",
    [
        ["simulate", "--no-such-option"],
        ["simulate", "--set", "swarm.no_such_key=1"],
        ["simulate", "--seconds", "0"],
        ["render", "--input", "/nonexistent/in.mid", "-o", "/tmp/out.mid"],
        ["simulate", "--preset", "no-such-preset"],
    ],
    ids=["option", "parameter", "value", "file", "preset"],
)
def test_a_refused_command_line_exits_2_with_a_message(args: list[str]) -> None:
    done = firefly(*args)
    assert done.returncode == 2
    assert done.stderr.strip() and "Traceback" not in done.stderr


def test_ctl_with_no_daemon_exits_3(folder: Path) -> None:
    done = firefly("ctl", "--socket", str(folder / "none.sock"), "status")
    assert done.returncode == 3
    assert "no firefly-midi daemon" in done.stderr


def test_a_daemon_that_finds_its_socket_taken_exits_1(silent_socket: Path) -> None:
    done = firefly("daemon", "--fresh", "--socket", str(silent_socket))
    assert done.returncode == 1
    assert "listening on" in done.stderr or "running on" in done.stderr
    assert "Traceback" not in done.stderr


def test_ctrl_c_exits_130_without_a_traceback(silent_socket: Path) -> None:
    # `run` finds a socket that accepts but never answers: a daemon still starting, which it waits for.
    proc = subprocess.Popen([*FIREFLY, "run", "--socket", str(silent_socket)], stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True)
    reader.start()
    try:
        said = ""
        while "waiting" not in said:
            said = lines.get(timeout=TIMEOUT_S)  # queue.Empty: run never said it waits
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=TIMEOUT_S) == 130
        reader.join(timeout=TIMEOUT_S)
        rest = "".join(lines.queue)
        assert "Traceback" not in rest, rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
