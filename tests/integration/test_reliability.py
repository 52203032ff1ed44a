"""Faults and bad input against real processes on a private JACK server (issue #7).

Every test here runs ``firefly-midi daemon`` as a real process, and drives it from other real
processes: a flood sender (``SENDER`` below, run with ``python -c``) that writes MIDI into the
daemon's ``in`` port through python-rtmidi and JACK-Client, the MIDI peer of peer.py that hears its
``out`` port, and control clients on its Unix socket.  docs/reliability.md tabulates what each one
showed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from firefly_midi import params as P
from firefly_midi import presets
from firefly_midi.control import ControlError, request, wait_for_daemon

from .conftest import Proc, jack_lsp, jackd_of, status_lines
from .test_daemon_jack import NOTE_ON, all_notes_off_channels, assert_every_note_ended, hanging_at_the_end, note_traffic

pytestmark = pytest.mark.jack

# The flood sender: its own process, as a misbehaving synth or sequencer would be.  Steps (argv[3]):
#   flood:SECONDS:RATE   note-on/off pairs at RATE messages per second, in bursts every 10 ms (rtmidi)
#   sysex:BYTES          one sysex of BYTES data bytes, written as raw 8 KiB JACK events (JACK-Client):
#                        rtmidi's JACK output silently drops any single message over ~16 KB
#   garbage:COUNT        COUNT random byte lists through rtmidi send_message (any length 0..6, values
#                        -2..300): what rtmidi refuses is counted by exception type; then raw JACK events
#                        rtmidi would refuse (data bytes, running status, 0xFF runs), then a lone 0xF7
#   raw:HEX,HEX          one raw JACK event per argument (hex bytes)
#   sleep:SECONDS
#   hold                 (last) print the report, then keep both clients until SIGTERM: see below
# It prints one JSON line with what it sent and what was refused.
SENDER = r"""
import json, queue, random, signal, subprocess, sys, time
import jack, rtmidi

daemon_in, name, steps = sys.argv[1], sys.argv[2], sys.argv[3:]
if "hold" in steps:  # blocked before any thread starts, so that only sigwait below takes it
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name)
out.open_virtual_port("out")
raw_events = queue.Queue()
client = jack.Client(name + "-raw", no_start_server=True)
port = client.midi_outports.register("out")

@client.set_process_callback
def process(frames):
    port.clear_buffer()
    for _ in range(3):  # up to 3 events (24 KiB) per 64-frame period
        try:
            event = raw_events.get_nowait()
        except queue.Empty:
            return
        port.write_midi_event(0, event)

client.activate()
for source in (name + ":out", name + "-raw:out"):
    deadline = time.monotonic() + 10
    while subprocess.run(["jack_connect", source, daemon_in], capture_output=True).returncode:
        if time.monotonic() > deadline:
            raise SystemExit("sender: cannot connect " + source)
        time.sleep(0.05)
report = {"notes": 0, "note_ons": 0, "sysex_bytes": 0, "garbage_sent": 0, "garbage_refused": {}, "raw_events": 0, "phases": []}
rng = random.Random(7)

def drain_raw():
    while not raw_events.empty():
        time.sleep(0.01)

for step in steps:
    kind, _, arg = step.partition(":")
    report["phases"].append([kind, time.time()])
    if kind == "flood":
        seconds, rate = (float(x) for x in arg.split(":"))
        burst = max(2, int(rate / 100)) // 2 * 2
        start = time.monotonic()
        k = 0
        while time.monotonic() - start < seconds:
            for _ in range(burst // 2):
                note = rng.randrange(128)
                out.send_message([0x90, note, 100])
                out.send_message([0x80, note, 0])
            report["notes"] += burst
            report["note_ons"] += burst // 2
            k += 1
            pause = start + k * 0.01 - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    elif kind == "sysex":
        data = bytes([0xF0]) + bytes(rng.randrange(128) for _ in range(1024)) * (int(arg) // 1024) + bytes([0xF7])
        for i in range(0, len(data), 8192):
            raw_events.put(data[i : i + 8192])
        drain_raw()
        report["sysex_bytes"] += len(data)
    elif kind == "garbage":
        for _ in range(int(arg)):
            message = [rng.randrange(-2, 301) for _ in range(rng.randrange(7))]
            try:
                out.send_message(message)
                report["garbage_sent"] += 1
            except Exception as exc:
                key = type(exc).__name__
                report["garbage_refused"][key] = report["garbage_refused"].get(key, 0) + 1
        for event in ([0x90, 60], [61, 100], [62], [5, 6, 7], [0xFF] * 5, [0x80, 200, 1], [0xF4], [0xB0, 123], [0xF7]):
            raw_events.put(bytes(event))
            report["raw_events"] += 1
        drain_raw()
    elif kind == "raw":
        raw_events.put(bytes.fromhex(arg))
        report["raw_events"] += 1
        drain_raw()
    elif kind == "sleep":
        time.sleep(float(arg))
    elif kind == "hold":
        report["phases"][-1][0] = "end"
        print(json.dumps(report), flush=True)
        signal.sigwait({signal.SIGTERM})
if "hold" not in steps:
    report["phases"].append(["end", time.time()])
time.sleep(0.2)
client.deactivate()  # close both clients: one that just exits stalls the tests' synchronous jackd
client.close()
out.close_port()
if "hold" not in steps:
    print(json.dumps(report), flush=True)
"""


def send(spawn, daemon: Proc, *steps: str) -> Proc:
    """Start the flood sender against ``daemon``'s input with ``steps``; returns its Popen."""
    name = f"flood-{os.getpid()}-{time.monotonic_ns() % 100000}"
    return spawn([sys.executable, "-c", SENDER, daemon.in_port, name, *steps])


def sent_report(sender: Proc, timeout: float = 60) -> dict:
    sender.popen.wait(timeout=timeout)
    assert sender.popen.returncode == 0, sender.log()[-2000:]
    return json.loads(sender.out_path.read_text().strip().splitlines()[-1])


def held_report(sender: Proc, timeout: float = 60) -> dict:
    """The report of a sender whose last step is ``hold``: printed once it sent everything, while
    it keeps its clients (``sent_report`` after ``sender.stop()`` lets it go)."""
    deadline = time.monotonic() + timeout
    while not (lines := [line for line in sender.out_path.read_text().splitlines() if line.startswith("{")]):
        assert sender.popen.poll() is None and time.monotonic() < deadline, sender.log()[-2000:]
        time.sleep(0.05)
    return json.loads(lines[0])


def stop_daemon_then_peer(proc, listener) -> tuple[str, int, list[dict]]:
    """SIGTERM the daemon, then the peer (which hears the daemon's last note-offs first)."""
    proc.stop(signal.SIGTERM)
    _, log, code = proc.finish(timeout=30)
    time.sleep(0.3)
    listener.stop()
    lines, _, _ = listener.finish(timeout=30)
    return log, code, lines


# ----------------------------------------------------------------------------------- 1. input floods
# The sender holds its clients until the daemon has stopped.  A client leaving the synchronous dummy
# server stops its cycles for about a second on a quiet 2-core machine, with either backend, and for
# seconds under load (jackd logs "ProcessGraphSync: Process error" and "JackFreewheelDriver::
# ProcessSync: SuspendRefNum error ... engine may now behave abnormally"; every client's process
# thread idles in libjack meanwhile).  Leaving just before the daemon's SIGTERM, it took the daemon's
# last note-offs with it on the native backend (one run in three), whose close waits for them to
# leave at their frames: a server stall, not what the test measures.


@pytest.mark.parametrize("backend", ["jack", "jack-native"], indirect=True)
def test_a_flood_of_notes_sysex_and_garbage_is_counted_and_nothing_hangs(daemon, peer, spawn):
    """10,000 note messages/s for 10 s, a 4 MiB sysex and random bytes into ``in``.

    The daemon keeps playing, counts what it drops (``dropped_in``), every note it played ends, and
    its tick keeps time under the flood: the typical half-second's lateness p99 stays within a tick
    (or 2x the quiet figure of the same run), and it skips under 2 % of its ticks.
    """
    # input.max_per_tick = 16: a 100-message burst overflows it even when JACK spreads it over a few cycles
    proc = daemon("--preset", "pulse-sine", "--set", "swarm.freq_hz=4", "--set", "mapping.note_ms=150", "--set", "input.max_per_tick=16")
    listener = peer(proc.client, "--seconds", "60")
    # unloaded: these status lines (one each half second) give the baseline lateness; 5 are needed below
    deadline = time.monotonic() + 20
    while len(status_lines(proc.log())) < 6 and time.monotonic() < deadline:
        time.sleep(0.1)
    sender = send(spawn, proc, "flood:3:10000", "sysex:4194304", "flood:3:10000", "garbage:3000", "flood:4:10000", "hold")
    report = held_report(sender)
    time.sleep(1.5)
    alive = proc.popen.poll() is None
    log, code, lines = stop_daemon_then_peer(proc, listener)
    sender.stop()
    sent_report(sender)
    assert alive, f"the daemon died under the flood:\n{log[-3000:]}"
    assert code == 0, log[-3000:]
    statuses = status_lines(log)
    unloaded = [s for s in statuses if s["ports"]["received"] == 0]
    assert unloaded, "no status line before the flood"
    last = statuses[-1]
    assert last["errors"] == 0, log[-3000:]
    assert last["dropped_in"] > 0, "a flood of 100 messages per 10 ms burst must overflow input.max_per_tick (16)"
    received, handled = last["ports"]["received"], last["flashes_in"] + last["ignored_in"]
    # status() reads the counters from another thread, mid-tick: at most one tick's messages are in flight
    assert 0 <= received - handled - last["dropped_in"] <= 64, f"every message received is handled or dropped: {last}"
    assert last["flashes_in"] > 1000
    assert received >= 0.8 * report["notes"], f"received {received} of {report['notes']} notes sent"
    # the sysex and the garbage never stalled the input: it took notes in every second of the flood
    # (the sender's own clock says when it sent: under load, its exit takes seconds of silence)
    began, ended = report["phases"][0][1], report["phases"][-1][1]
    flood = [s for s in statuses if began + 0.5 <= s["logged_at"] <= ended - 0.5]
    gains = [b["ports"]["received"] - a["ports"]["received"] for a, b in zip(flood, flood[2:], strict=False)]
    assert len(gains) >= 10 and min(gains) > 0, f"the input stalled: received per second {gains}"
    ons, _ = assert_every_note_ended(lines)
    assert ons > 10
    # lateness: each status line carries the p99 of the ticks since the line before (half a second).
    # The typical (median) window of the flood against the typical quiet window, before the flood
    # and after it: on a shared machine a single window can be late for reasons of its own.  The
    # bound is a tick, not the quiet figure alone: the sender's own work takes CPU from the tick
    # thread on a 2-core machine (a test server is not real-time, so neither is the tick), and the
    # same commit measured 4 us quiet and 290-430 us flooded on one machine, 0 and under 100 on another.
    quiet = [s["lateness_window_us"]["p99"] for s in statuses if s["logged_at"] < began or s["logged_at"] > ended + 1.0]
    flooded = [s["lateness_window_us"]["p99"] for s in flood]
    assert len(quiet) >= 5 and len(flooded) >= 10, (quiet, flooded)
    base, loaded = float(np.median(quiet)), float(np.median(flooded))
    ticks = sum(s["lateness_window_us"]["count"] for s in flood[1:])
    skipped = flood[-1]["skipped_ticks"] - flood[0]["skipped_ticks"]
    print(f"\nlateness p99 of half-second windows, median: quiet {base:.0f} us {quiet}, flood {loaded:.0f} us {flooded}")
    print(f"flood: {ticks} ticks, {skipped} skipped; sent {report}")
    print(f"status {json.dumps({k: last[k] for k in ('flashes_in', 'ignored_in', 'dropped_in', 'dropped_external')})}")
    tick_us = 1000.0 * P.PARAMS["clock.tick_ms"].default  # the daemon runs on the default tick
    assert loaded <= max(2 * base, tick_us), f"lateness p99 under flood {loaded} us, unloaded {base} us"
    assert skipped <= 0.02 * (ticks + skipped), f"the flood made the tick skip {skipped} of {ticks + skipped} ticks"


def test_notes_after_an_unterminated_sysex_still_arrive(daemon, spawn):
    """A sysex that never ends (0xF0 without 0xF7) must not deafen the input for good.

    rtmidi's JACK input, with sysex ignored, takes every later event for more of that sysex and
    drops it until some event ends in 0xF7; the daemon's sysex guard sends one once the input has
    heard nothing for half a second (ports.jack_rtmidi.JackRtMidiBackend.heartbeat), and its 0xF7s are never counted
    as input.  Each truncated sysex here comes after notes, so the input was not silent before it.
    The native backend's parser ends a sysex at the next status byte, so it loses not even the
    notes right after one.
    """
    proc = daemon("--preset", "pulse-sine")
    notes = ["raw:903C64", "raw:803C00", "sleep:0.05"] * 20
    truncated = ["raw:F0010203", *["raw:903C64", "raw:803C00"] * 3, "sleep:1.5"]  # swallowed: lost
    sender = send(spawn, proc, *notes, *truncated, *notes, *truncated, *notes, "sleep:1.0")
    sent_report(sender)
    proc.stop()
    log, code = proc.finish()[1:]
    assert code == 0
    last = status_lines(log)[-1]
    if proc.backend == "jack-native":
        assert last["ports"]["native"]["sysex_unterminated"] == 2, last["ports"]
        assert last["flashes_in"] == 66, last  # all 60 + 2 x 3 note-ons
        assert last["ignored_in"] == 66 and last["ports"]["received"] == 132, last
        return
    assert last["ports"]["sysex_guard"], last["ports"]
    # the 60 note-ons sent outside the truncated sysex' half second are flashes, the note-offs ignored
    assert last["flashes_in"] == 60, last
    assert last["ignored_in"] == 60 and last["ports"]["received"] == 120, last


def wait_for_status(path: Path, condition, timeout: float) -> dict:
    """The daemon's status once ``condition(status)`` holds, or the last one after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition(status := request(path, "status")) and time.monotonic() < deadline:
        time.sleep(0.1)
    return status


def test_a_synth_unplugged_mid_note_and_plugged_in_again_is_left_with_no_note_hanging(daemon, peer, jack_server):
    """Its connection pulled while notes sounded, the synth never got their note-offs; meanwhile the
    musician changed the key, so no later note ends them either.  Once it is connected again the
    daemon sends All Notes Off (told by JACK of the new connection) before playing on."""
    folder = Path(tempfile.mkdtemp(prefix="ffm-"))
    path = folder / "c.sock"
    proc = daemon("--preset", "pulse-sine", "--set", "swarm.freq_hz=4", "--set", "mapping.note_ms=600", "--socket", str(path))
    synth = peer(proc.client, "--seconds", "30")
    wait_for_daemon(path, 30.0)
    time.sleep(1.5)  # notes sounding at the synth
    ours, theirs = f"{proc.client}:out", f"{synth.name}:in"
    subprocess.run(["jack_disconnect", ours, theirs], env=jack_server, check=True, timeout=10)
    request(path, "set", key="mapping.root", value="C5")  # other notes from now on
    time.sleep(1.5)  # the notes sounding when the cable was pulled end meanwhile, unheard
    unplugged_until = time.monotonic() - synth.started
    subprocess.run(["jack_connect", ours, theirs], env=jack_server, check=True, timeout=10)
    time.sleep(1.5)
    stopping_at = time.monotonic() - synth.started  # the stop ends every note: look before it
    log, code, lines = stop_daemon_then_peer(proc, synth)
    assert code == 0, log[-3000:]
    notes = [(t, channel, note) for t, kind, channel, note, _ in note_traffic(lines) if kind == NOTE_ON]
    old = {(c, n) for t, c, n in notes if t < unplugged_until}
    new = {(c, n) for t, c, n in notes if unplugged_until <= t < stopping_at}
    assert old and new and old - new, "the test needs notes of the old key, and notes of the new key after it"
    sounding = hanging_at_the_end([line for line in lines if line.get("t", 0) < stopping_at])
    assert not sounding & (old - new), f"notes of the old key still sound at the synth: {sorted(sounding & (old - new))}"
    assert "connected to our output" in log, log[-3000:]


def test_a_drum_machine_unplugged_and_plugged_in_again_is_heard_again(daemon, peer, jack_server):
    folder = Path(tempfile.mkdtemp(prefix="ffm-"))
    path = folder / "c.sock"
    proc = daemon("--preset", "pulse-sine", "--socket", str(path))
    drums = peer(proc.client, "--seconds", "30", "--pulse-bpm", "240")  # 4 notes a second into in
    wait_for_daemon(path, 30.0)
    assert wait_for_status(path, lambda s: s["flashes_in"] > 0, 10.0)["flashes_in"] > 0, "the drum machine was not heard"
    theirs, ours = f"{drums.name}-out:out", proc.in_port
    subprocess.run(["jack_disconnect", theirs, ours], env=jack_server, check=True, timeout=10)
    time.sleep(0.3)
    unplugged = request(path, "status")["flashes_in"]
    time.sleep(1.0)
    assert request(path, "status")["flashes_in"] == unplugged, "heard a drum machine that was unplugged"
    subprocess.run(["jack_connect", theirs, ours], env=jack_server, check=True, timeout=10)
    status = wait_for_status(path, lambda s: s["flashes_in"] >= unplugged + 4, 10.0)
    proc.stop()
    assert proc.finish()[2] == 0
    assert status["flashes_in"] >= unplugged + 4, f"the input did not hear the drum machine again: {status['ports']}"
    assert status["errors"] == 0


# rtmidi's only: the sysex guard is its JACK input's workaround (jack_rtmidi); the native backend
# has none to lose, its parser cannot go deaf (test_notes_after_an_unterminated_sysex_still_arrive)
@pytest.mark.parametrize("backend", ["jack"], indirect=True)
def test_a_sysex_guard_that_stops_reaching_the_input_is_made_again(daemon, peer, jack_server):
    """The sysex guard's 0xF7s are the JACK input's heartbeat: sent every half second of silence,
    each comes back through the input.  When they stop coming back, the daemon probes the input to
    learn which of the two went deaf (seen on CI: jack2 dropped the guard when a client left a
    synchronous server uncleanly) and opens that one again.  Here the guard is unplugged for real:
    the input still hears, so only the guard is made again, and the drum machine is heard after."""
    folder = Path(tempfile.mkdtemp(prefix="ffm-"))
    path = folder / "c.sock"
    proc = daemon("--preset", "pulse-sine", "--socket", str(path))
    drums = peer(proc.client, "--seconds", "30", "--pulse-bpm", "240", "--pulse-after", "7")
    wait_for_daemon(path, 30.0)
    before = request(path, "status")["ports"]
    guard, ours = f"{proc.client}-guard:sysex-end", f"{proc.client}-in:in"
    subprocess.run(["jack_disconnect", guard, ours], env=jack_server, check=True, timeout=10)
    deadline = time.monotonic() + 6.0
    while (status := request(path, "status"))["ports"]["deaf_guards"] == before["deaf_guards"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status["ports"]["deaf_guards"] == before["deaf_guards"] + 1, f"the unplugged guard went unnoticed: {status['ports']}"
    assert status["ports"]["deaf_inputs"] == before["deaf_inputs"], "the input hears: it must not be opened again"
    assert status["flashes_in"] == 0, "the drum machine has not played yet"
    while time.monotonic() - drums.started < 9.5:
        time.sleep(0.1)
    status = request(path, "status")
    wired = connections(jack_server, proc.client, guard=True)
    proc.stop()
    assert proc.finish()[2] == 0
    assert status["flashes_in"] >= 4, f"the input did not hear the drum machine: {status['ports']}"
    assert (ours, guard) in wired and (ours, f"{drums.name}-out:out") in wired, wired
    assert status["ports"]["deaf_guards"] == before["deaf_guards"] + 1, "a guard that reaches the input was made again"


def test_a_stalled_jack_server_is_waited_out_and_not_taken_for_a_deaf_input(daemon, peer, jack_server):
    """A synchronous jack2 waiting on a hung client runs no cycles, and no client hears anything
    meanwhile: the input's heartbeat goes unanswered, but the input is not deaf.  The daemon must
    see the stall (the server's frame counter stands still), keep ticking and answering, open
    nothing (opening a client would block in libjack with rtmidi holding the GIL, and freeze it),
    and hear the drum machine once the server runs again.  The stall here is jackd stopped for 4 s."""
    folder = Path(tempfile.mkdtemp(prefix="ffm-"))
    path = folder / "c.sock"
    proc = daemon("--preset", "pulse-sine", "--socket", str(path))
    drums = peer(proc.client, "--seconds", "30", "--pulse-bpm", "240", "--pulse-after", "9")
    wait_for_daemon(path, 30.0)
    before = settled_pace(path)
    server = jackd_of(jack_server)
    server.send_signal(signal.SIGSTOP)
    try:
        time.sleep(3.0)  # longer than the heartbeat takes to call an input deaf (2 s)
        during = request(path, "status", timeout=2.0)
        time.sleep(1.0)
    finally:
        server.send_signal(signal.SIGCONT)
    while time.monotonic() - drums.started < 12.0:
        time.sleep(0.1)
    after = request(path, "status")
    proc.stop()
    log, code = proc.finish()[1:]
    assert code == 0, log[-3000:]
    assert during["ticks"] > before["ticks"] + 1000, "the tick went on while the server stood still"
    assert during["ports"]["stalls"] == before["ports"]["stalls"] + 1, during["ports"]
    # (its end may come late: on a loaded machine a slow client, such as the drum machine's Python
    # process callback, holds a synchronous dummy server under half its pace for seconds)
    assert "of its cycles (a client of it hangs?)" in log
    for key in ("deaf_inputs", "deaf_guards"):
        assert after["ports"][key] == before["ports"][key], f"a stall is no deaf {key[5:-1]}: {after['ports']}\n{log[-3000:]}"
    assert after["flashes_in"] >= 4, f"the input did not hear the drum machine after the stall: {after['ports']}"


def settled_pace(path: Path, steady_s: float = 2.6, timeout: float = 8.0) -> dict:
    """The daemon's status once its JACK server has kept its pace (no new stall) for ``steady_s``,
    longer than a stall counts (JackWatch.STALL_KEPT_S): a server still catching up from the
    clients' start (seen on a loaded machine) would make the test's own stall part of that one."""
    deadline = time.monotonic() + timeout
    status = request(path, "status")
    since = time.monotonic()
    while time.monotonic() - since < steady_s and time.monotonic() < deadline:
        time.sleep(0.2)
        now = request(path, "status")
        if now["ports"]["stalls"] != status["ports"]["stalls"] or (now["ports"]["server_pace"] or 0.0) < 0.5:
            since = time.monotonic()
        status = now
    return status


# ------------------------------------------------------------------------- 2-3. the control plane abused
class Raw:
    """A raw client on the control socket: sends any bytes, reads reply lines."""

    def __init__(self, path: Path, timeout: float = 10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rb")
        self.hello = json.loads(self.file.readline())

    def ask(self, line: bytes) -> dict:
        self.sock.sendall(line)
        return json.loads(self.file.readline())


# the control plane is the same code on every backend: once, on the native one (test_commands.CONTROL_PLANE)
@pytest.mark.parametrize("backend", ["jack-native"], indirect=True)
def test_the_control_plane_survives_abuse_from_real_clients(daemon):
    folder = Path(tempfile.mkdtemp(prefix="ffm-"))  # a Unix socket path must stay under 108 bytes
    path = folder / "c.sock"
    proc = daemon("--preset", "pulse-sine", "--socket", str(path))
    wait_for_daemon(path, 30.0)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, oct(path.stat().st_mode)
    raw = Raw(path)
    assert raw.hello["protocol"] == 1
    abuse = [
        (b"{not json\n", "bad_json"),
        (b"[1, 2]\n", "bad_json"),
        (b"\xff\xfe\n", "bad_json"),
        (b"\n", "bad_json"),
        (b'{"cmd": "stautus"}\n', "unknown_command"),
        (b'{"cmd": 5}\n', "unknown_command"),
        (b'{"id": 1}\n', "bad_argument"),
        (b'{"cmd": "set", "key": "swarm.coupling", "value": "abc"}\n', "bad_param"),
        (b'{"cmd": "set", "key": "swarm.coupling", "value": 1e308}\n', "bad_param"),
        (b'{"cmd": "set", "key": 5, "value": 1}\n', "bad_param"),
        (b'{"cmd": "set", "key": "swarm.n", "value": [1, 2]}\n', "bad_param"),
        (b'{"cmd": "forward", "seconds": -1}\n', "bad_argument"),
        (b'{"cmd": "forward", "seconds": "NaN"}\n', "bad_argument"),
        (b'{"cmd": "subscribe", "fps": 1000}\n', "bad_argument"),
        (b'{"cmd": "status", "verbose": true}\n', "bad_argument"),
        (b'{"cmd": "preset", "name": "no-such-preset"}\n', "not_found"),
        (b'{"cmd": "save", "name": "../../etc/passwd"}\n', "bad_param"),
    ]
    codes = []
    for line, code in abuse:
        reply = raw.ask(line)
        assert reply["ok"] is False, (line, reply)
        codes.append((line, reply["error"]["code"], code))
    assert all(got == want or (want == "bad_param" and got == "bad_argument") for _, got, want in codes), codes
    huge = b'{"cmd": "set", "key": "swarm.coupling", "value": "' + b"9" * (10 * 1024 * 1024) + b'"}\n'
    assert raw.ask(huge)["error"]["code"] == "too_large"
    assert raw.ask(b'{"id": 2, "cmd": "get", "key": "swarm.n"}\n') == {"id": 2, "ok": True, "result": 200}

    # a client that subscribes and never reads, and 50 clients at once
    stuck = Raw(path)
    stuck.sock.sendall(b'{"cmd": "subscribe", "fps": 60, "points": 65536}\n')
    results: list[object] = []

    def one() -> None:
        try:
            results.append(request(path, "status", timeout=10.0)["preset"])
        except Exception as exc:  # kept: the assertion below shows it
            results.append(exc)

    threads = [threading.Thread(target=one) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert results == ["pulse-sine"] * 50, results

    # a broken preset hot-loaded: refused with the file and key, the old preset plays on
    broken = folder / "broken.toml"
    broken.write_text("[swarm]\ncoupling = 1000\n", encoding="utf-8")
    invalid = folder / "invalid.toml"
    invalid.write_text("[swarm\nn = 5\n", encoding="utf-8")
    ticks = request(path, "status")["ticks"]
    for bad, words in ((broken, "swarm.coupling"), (invalid, "not valid TOML")):
        with pytest.raises(ControlError) as info:
            request(path, "preset", name=str(bad))
        assert info.value.code == "bad_param" and str(bad) in str(info.value) and words in str(info.value), str(info.value)
    time.sleep(0.5)
    status = request(path, "status")
    assert status["preset"] == "pulse-sine" and status["ticks"] > ticks + 300 and status["errors"] == 0
    assert proc.popen.poll() is None
    stuck.sock.close()
    proc.stop()
    _, log, code = proc.finish()
    assert code == 0, log[-3000:]
    assert not path.exists(), "the socket file is removed on exit"
    shutil.rmtree(folder, ignore_errors=True)


# ----------------------------------------------------------------------------------- 4. SIGKILL mid-chord
def peer_port(listener) -> str:
    args = listener.popen.args
    return f"{args[args.index('--name') + 1]}:in"


def wait_until_gone(env: dict[str, str], port: str, timeout: float = 10.0) -> None:
    from .conftest import jack_ports

    deadline = time.monotonic() + timeout
    while port in jack_ports(env):
        assert time.monotonic() < deadline, f"JACK still lists {port} of a killed client"
        time.sleep(0.05)


def state_path(tmp_path: Path) -> Path:
    return tmp_path / "xdg_state_home" / "firefly-midi" / "state.toml"


def test_after_sigkill_mid_chord_the_restart_silences_every_channel_first(daemon, peer, jack_server, tmp_path):
    folder = Path(tempfile.mkdtemp(prefix="ffm-"))
    path = folder / "c.sock"
    first = daemon("--preset", "pulse-sine", "--set", "mapping.note_ms=10000", "--set", "swarm.freq_hz=4", "--socket", str(path))
    listener = peer(first.client, "--seconds", "60")
    wait_for_daemon(path, 30.0)
    writes = []
    for i in range(20):  # state writes in flight when the kill comes
        value = round(0.05 + 0.001 * i, 3)
        request(path, "set", key="swarm.coupling", value=value)
        writes.append(value)
    time.sleep(1.5)
    first.popen.send_signal(signal.SIGKILL)
    first.popen.wait(10)
    wait_until_gone(jack_server, f"{first.client}:out")

    preset, values = presets.load_state(state_path(tmp_path))
    assert preset == "pulse-sine" and values["swarm.coupling"] in writes and values["mapping.note_ms"] == 10000
    assert not list(state_path(tmp_path).parent.glob(".state.toml.*")), "a half-written state file was left behind"

    # The peer stamps a message when it reads it: a note the first daemon sent just before the kill
    # can be read after the kill.  Only what comes after the second daemon's launch is the restart's.
    restarted_at = time.monotonic() - listener.started
    second = daemon("--connect-out", peer_port(listener), "--socket", str(path), client=first.client)  # resumes the state
    wait_for_daemon(path, 30.0)
    assert request(path, "get", key="swarm.coupling") == values["swarm.coupling"]
    time.sleep(2.0)
    stopped_at = time.monotonic() - listener.started
    log, code, lines = stop_daemon_then_peer(second, listener)
    assert code == 0, log[-3000:]
    before = [line for line in lines if "m" in line and line["t"] < restarted_at]
    after = [line for line in lines if "m" in line and restarted_at <= line["t"] < stopped_at - 0.05]  # not the shutdown's
    assert any(line["m"][0] & 0xF0 == 0x90 for line in after), "the restarted daemon played nothing"
    hanging = {(m[0] & 15, m[1]) for m in (line["m"] for line in before) if m[0] & 0xF0 == 0x90 and m[2] > 0}
    assert hanging, "no note was sounding when the daemon was killed"
    assert after, "the restarted daemon sent nothing to the peer"
    first_note = next((i for i, line in enumerate(after) if line["m"][0] & 0xF0 == 0x90), len(after))
    silenced = all_notes_off_channels(after[:first_note])
    used = {channel for channel, _ in hanging} | {c - 1 for c in values["mapping.channels"]} | {values["mapping.cc_channel"] - 1}
    assert used <= silenced, (
        f"All Notes Off before the first note on channels {sorted(silenced)}; needed {sorted(used)}\n"
        f"the restart's first messages: {after[: first_note + 1][:12]}\nits log:\n{log[-2000:]}"
    )


@pytest.mark.async_jack
def test_after_sigkill_the_restart_restores_the_connections_others_made(daemon, peer, jack_server, tmp_path):
    """The connections a user made survive the daemon's SIGKILL: the restart makes them again.

    On an asynchronous server: a client killed outright stalls a synchronous jack2 for seconds, and
    jack2 then drops another client with it (docs/reliability.md), here perhaps the peer whose
    connections are to be restored.  This test counts connections, not events, so the events an
    asynchronous server can lose under load do not matter to it.
    """
    first = daemon("--preset", "pulse-sine")
    listener = peer(first.client, "--seconds", "30", "--pulse-bpm", "120")  # connects out -> peer:in and peer-out:out -> in
    deadline = time.monotonic() + 10  # both connections made, and kept by the daemon in its state
    while len(before := connections(jack_server, first.client)) < 2 or len(presets.load_connections(state_path(tmp_path))) < 2:
        assert time.monotonic() < deadline, (before, presets.load_connections(state_path(tmp_path)))
        time.sleep(0.05)
    first.popen.send_signal(signal.SIGKILL)
    first.popen.wait(10)
    wait_until_gone(jack_server, f"{first.client}:out")
    second = daemon(client=first.client)
    deadline = time.monotonic() + 5
    while connections(jack_server, first.client) != before and time.monotonic() < deadline:
        time.sleep(0.1)
    after = connections(jack_server, first.client)
    guarded = connections(jack_server, first.client, guard=True) - after
    ports = jack_lsp(jack_server, "-c")
    second.stop()
    log = second.finish()[1]
    listener.stop()
    assert after == before, f"JACK's ports:\n{ports}\nthe restarted daemon's log:\n{log[-2500:]}"
    own = {(f"{first.client}-in:in", f"{first.client}-guard:sysex-end")} if first.backend == "jack" else set()  # the native has no guard
    assert guarded == own, "the restart makes its own sysex guard again"


def connections(env: dict[str, str], client: str, guard: bool = False) -> set[tuple[str, str]]:
    """(port, connected port) pairs of ``client``'s ports, from ``jack_lsp -c``; the connection the
    daemon makes itself, from its sysex guard into its input, only with ``guard``."""
    pairs, port = set(), None
    for line in jack_lsp(env, "-c").splitlines():
        if not line.startswith(" "):
            port = line.strip()
        elif port and port.split(":")[0] in (client, f"{client}-in") and (guard or line.strip() != f"{client}-guard:sysex-end"):
            pairs.add((port, line.strip()))
    return pairs
