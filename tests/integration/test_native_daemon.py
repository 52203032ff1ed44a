"""The daemon on the native JACK backend (``--backend jack-native``): an
input that a sysex never ending cannot deafen, and the callback it plays through proven real-time safe.

The witness is a ``NativeJackClient`` sink in this process: it dates every event with the frame the
server delivered it at, independently of the daemon's own clock mapping.
"""

from __future__ import annotations

import queue
import sys
import time
import uuid

import jack  # JACK-Client (a dependency): a source that writes any bytes, sysex included
import pytest

from firefly_midi.jack import process, rtcheck
from firefly_midi.jack.client import NativeJackClient

from .conftest import Proc, status_lines, wait_for_port

pytestmark = pytest.mark.jack

RATE = 48_000
PULSE_HZ = 4.0  # one firefly, no coupling: a flash every 0.25 s of swarm time, exactly
STEADY_PULSE = {
    "swarm.model": "pulse",
    "swarm.n": 1,
    "swarm.freq_hz": PULSE_HZ,
    "swarm.freq_spread_hz": 0.0,
    "swarm.coupling": 0.0,
    "swarm.noise": 0.0,
    "mapping.mode": "density",
    "mapping.note_ms": 100,
}


def wait_until(condition, timeout: float, what: str, log=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}; the daemon's log ends:\n{log()[-3000:]}")
        time.sleep(0.01)


@pytest.fixture
def native_daemon(spawn, jack_server, monkeypatch):
    """Start a daemon on ``--backend jack-native`` with ``--set`` values; return once it plays.
    This process's own JACK clients (the sink, the source) reach the same private server."""
    for key in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER"):
        monkeypatch.setenv(key, jack_server[key])

    def start(values: dict[str, object]) -> Proc:
        client = f"ffm-{uuid.uuid4().hex[:6]}"
        args = [sys.executable, "-m", "firefly_midi", "daemon", "--backend", "jack-native", "--client-name", client]
        args += ["--status-every", "0.5", "--preset", "pulse-sine", "--fresh"]
        proc = spawn(args + [a for key, value in values.items() for a in ("--set", f"{key}={value}")])
        proc.client = client
        wait_for_port(jack_server, f"{client}:in", timeout=60)
        wait_until(lambda: "playing preset" in proc.log() or proc.popen.poll() is not None, 60, "the daemon to play", proc.log)
        assert proc.popen.poll() is None, proc.log()[-3000:]
        return proc

    return start


@pytest.fixture
def sink():
    client = NativeJackClient(f"ffm-sink-{uuid.uuid4().hex[:6]}")
    client.__enter__()
    yield client
    client.close()


def note_on_frames(sink: NativeJackClient, count: int, timeout: float, log) -> list[int]:
    frames: list[int] = []

    def more() -> bool:
        while (item := sink.poll_frame()) is not None:
            message, frame = item
            if len(message) == 3 and message[0] & 0xF0 == 0x90 and message[2] > 0:
                frames.append(frame)
        return len(frames) >= count

    wait_until(more, timeout, f"{count} note-ons", log)
    return frames


def test_an_unterminated_sysex_does_not_deafen_the_daemon(native_daemon, sink):
    proc = native_daemon({**STEADY_PULSE, "swarm.coupling": 0.5})
    pending: queue.Queue[bytes] = queue.Queue()
    source = jack.Client(f"ffm-src-{uuid.uuid4().hex[:6]}", no_start_server=True)
    port = source.midi_outports.register("out")

    @source.set_process_callback
    def _(frames: int) -> None:
        port.clear_buffer()
        if not pending.empty():
            port.write_midi_event(0, pending.get_nowait())

    source.activate()
    try:
        source.connect(port, f"{proc.client}:in")
        pending.put(b"\xf0\x7e\x7f\x09\x01")  # a sysex that never ends
        for _ in range(5):
            time.sleep(0.1)
            pending.put(b"\x90\x3c\x64")  # each status byte ends it: heard, a flash
            time.sleep(0.05)
            pending.put(b"\x80\x3c\x00")

        def heard() -> bool:
            statuses = status_lines(proc.log())
            return bool(statuses) and statuses[-1]["flashes_in"] >= 5

        wait_until(heard, 20, "the daemon to hear the notes after the sysex", proc.log)
        assert status_lines(proc.log())[-1]["ports"]["native"]["sysex_unterminated"] >= 1
    finally:
        source.deactivate()
        source.close()


def test_the_callback_the_daemon_plays_through_is_real_time_safe():
    """The native backend registers ``process.callbacks().process``, compiled from ``process._process``."""
    assert process.callbacks().process._pyfunc is process._process
    verdict = rtcheck.check(process._process, process.PROCESS_SIGNATURE)
    assert verdict.safe, verdict
