"""bench_follow.py --live: the synthetic drummers played into a running daemon over JACK.

A private dummy JACK server (48 kHz, 64 frames); for each drummer a fresh ``firefly-midi daemon
--backend jack-native --preset follow-drummer``; one native JACK client of this process plays the
drummer into the daemon's input, each hit scheduled at its exact frame, and hears the daemon's
output (notes and MIDI clock) with the frame each message came out on.  Everything is timed in
frames of the one server clock: the drummer's beats, the swarm's bursts, the clock's beats (every
24th clock since Start).  The tempo is the MIDI clock's: 60 / (the 24 clocks before each beat).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from firefly_midi.control import request
from firefly_midi.jack.client import NativeJackClient
from firefly_midi.testing import drummers as D

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from jackserver import private_jack, wait_for_port  # noqa: E402

RATE, FRAMES = 48_000, 64
SCHEDULE_AHEAD_S = 0.25  # hits go on the native client's ring this long before they are due


def start_daemon(env: dict[str, str], folder: Path, client: str, assignments: list[str], extra: tuple[str, ...]) -> subprocess.Popen:
    args = [sys.executable, "-m", "firefly_midi", "daemon", "--backend", "jack-native", "--client-name", client, *extra]
    args += ["--preset", "follow-drummer", "--fresh", "--socket", str(folder / "c.sock")]
    args += [a for assignment in assignments for a in ("--set", assignment)]
    own = {**env, "XDG_CONFIG_HOME": str(folder / "config"), "XDG_STATE_HOME": str(folder / "state")}
    log = (folder / "daemon.log").open("w")
    return subprocess.Popen(args, env=own, stdout=log, stderr=subprocess.STDOUT)


def wait_until_playing(folder: Path, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while "playing preset" not in (folder / "daemon.log").read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"bench_follow --live: the daemon did not play:\n{(folder / 'daemon.log').read_text()[-3000:]}")
        time.sleep(0.05)


def play(kit: NativeJackClient, drummer: D.Drummer, frame0: int) -> list[tuple[list[int], int]]:
    """Schedule the drummer's hits from ``frame0`` (a little ahead of each), gather what comes back."""
    heard: list[tuple[list[int], int]] = []
    start, i = time.monotonic(), 0
    while time.monotonic() - start < drummer.seconds + 1.0:
        now = time.monotonic() - start
        while i < len(drummer.hits) and drummer.hits[i][0] < now + SCHEDULE_AHEAD_S:
            at, message = drummer.hits[i]
            kit.schedule(message, frame0 + round(at * RATE))
            i += 1
        while (item := kit.poll_frame()) is not None:
            heard.append(item)
        time.sleep(0.002)
    return heard


def followed(heard: list[tuple[list[int], int]], frame0: int, drummer: D.Drummer) -> D.Followed:
    """The swarm's bursts, the clock's beats and its tempo at each of the drummer's beats (seconds from frame0)."""
    notes = [(frame - frame0) / RATE for message, frame in heard if message[0] & 0xF0 == 0x90 and message[2] > 0]
    clocks, beats, position = [], [], None  # position: the DAW's, in clocks (None until Start or Continue)
    for message, frame in heard:
        if message[0] == 0xF2:  # Song Position: sixteenths, six clocks each
            spp = 6 * (message[1] | message[2] << 7)
        elif message[0] in (0xFA, 0xFB):
            position = 0 if message[0] == 0xFA else spp
        elif message == [0xF8] and position is not None:
            clocks.append((frame - frame0) / RATE)
            if position % 24 == 0:
                beats.append(clocks[-1])
            position += 1
    times, ticks = np.array(notes), np.array(clocks)
    bursts = times[np.r_[True, np.diff(times) > 0.1]] if times.size else times
    at = np.searchsorted(ticks, drummer.beats)  # the clocks before each beat
    bpm = np.where(at >= 25, 60.0 / (ticks[np.maximum(at - 1, 0)] - ticks[np.maximum(at - 25, 0)] + 1e-12), np.nan)
    locked = np.arange(drummer.beats.size) >= 3  # the follower locks on the third hit (see test_follow)
    return D.Followed(bursts, bpm, bpm, locked, np.array(beats), [])


def measure_live(seconds: float, seeds: int, assignments: list[str], only: str = "") -> dict[str, list[dict[str, float]]]:
    """Every drummer's scores over JACK (those whose name starts with ``only``), one per seed."""
    runs: dict[str, list[dict[str, float]]] = {}
    with private_jack(RATE, FRAMES) as env:
        for seed in range(1, seeds + 1):
            for drummer in D.standard(seconds, seed, only):
                print(f"bench_follow --live: {drummer.name}, seed {seed}", file=sys.stderr, flush=True)
                runs.setdefault(drummer.name, []).append(one(env, drummer, assignments))
    return runs


def one(env: dict[str, str], drummer: D.Drummer, assignments: list[str]) -> dict[str, float]:
    heard, frame0 = session(env, drummer, assignments)
    score = D.score(drummer, followed(heard, frame0, drummer))
    score["lock_beat"] = float("nan")  # not seen from outside the daemon
    return score


def session(env: dict[str, str], drummer: D.Drummer, assignments: list[str], extra: tuple[str, ...] = ()) -> tuple[list, int]:
    """Play ``drummer`` into a fresh daemon (``extra``: more daemon arguments); what came back, and frame 0."""
    tag = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="ffm-follow-") as name:
        folder, client = Path(name), f"ffm-{tag}"
        proc = start_daemon(env, folder, client, assignments, extra)
        try:
            wait_for_port(env, f"{client}:in", timeout=90)
            wait_until_playing(folder, proc)
            with NativeJackClient(f"ffm-kit-{tag}") as kit:
                kit.connect(kit.out_port, f"{client}:in")
                kit.connect(f"{client}:out", kit.in_port)
                time.sleep(0.3)  # connections apply at a later cycle
                request(folder / "c.sock", "pause")  # the kit came late to the clock's Start: a DAW
                request(folder / "c.sock", "resume")  # would be told Song Position and Continue
                frame0 = kit.clock.frame_at(time.monotonic() + 0.2)
                heard = play(kit, drummer, frame0)
        finally:
            proc.terminate()
            proc.wait(30)
    return heard, frame0
