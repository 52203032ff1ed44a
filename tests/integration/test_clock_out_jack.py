"""MIDI clock out on ``--backend jack-native`` lands on exact JACK frames (issue 16).

A daemon whose tempo is steady from its first beat (one firefly, no phase noise, 2 Hz: 120 BPM, a
clock every 1,000 frames at 48 kHz) plays into our sink and into ``jack_midi_dump -a``, an
independent witness that stamps what it hears with JACK frame times.  The daemon's transport
follows the server's frames, so every interval is 1,000 frames exactly; the only ones allowed off
are those next to an event the callback got too late to place (counted ``late``) or a jump of the
server's frames (counted by the transport).  Timing each event on time.monotonic() and mapping it to
a frame put 57 of 623 intervals off by 2-8 frames on this machine.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from firefly_midi import params as P
from firefly_midi import presets
from firefly_midi.daemon import Daemon
from firefly_midi.ports import PortConfig

from .conftest import wait_for_port
from .test_jack_native import DUMP_EVENT, _server, frame_dump, running, wait_until

pytestmark = pytest.mark.jack
CLOCK, FRAMES_PER_CLOCK = 0xF8, 1000  # 48 kHz / (2 beats/s x 24 clocks a beat)


@pytest.fixture
def server(monkeypatch):
    """A private synchronous dummy server (64 frames at 48 kHz) for this test alone."""
    yield from _server(monkeypatch, sync=True)


def steady_clock_values() -> dict:
    values = presets.resolve("pulse-sine")
    values.update({"swarm.n": 1, "swarm.noise": 0.0, "swarm.freq_hz": 2.0, "mapping.clock_out": True})
    return {key: P.check(key, value) for key, value in values.items()}


def off_intervals(frames: list[int]) -> tuple[int, int]:
    """How many intervals between consecutive clocks there are, and how many are off by more than a frame."""
    intervals = np.diff(np.asarray(frames, dtype=np.int64))
    return intervals.size, int((np.abs(intervals - FRAMES_PER_CLOCK) > 1).sum())


@pytest.mark.timeout(180)
def test_midi_clock_out_lands_on_exact_frames(server, tmp_path, compiled_kernels):
    dump, dump_name = frame_dump(server, tmp_path / "dump.txt", "cdump")
    sink = running("ffm-csink")
    daemon = Daemon(steady_clock_values(), ports=PortConfig(backend="jack-native", client="ffm-cday", connect_out=sink.in_port))
    try:
        daemon.start()
        wait_for_port(server, f"{dump_name}:input")
        sink.connect("ffm-cday:out", f"{dump_name}:input")
        assert daemon.ports.transport.on_frames
        heard: list[int] = []

        def enough() -> bool:
            heard.extend(frame for message, frame in iter(sink.poll_frame, None) if message == [CLOCK])
            return len(heard) >= 200

        wait_until(enough, 60, "200 MIDI clocks")
        late, jumps = daemon.ports.midi.client.counters().late, daemon.ports.transport.jumps
    finally:
        daemon.stop()
        time.sleep(0.2)
        dump.terminate()
        dump.wait(5)
        sink.close()
    lines = (tmp_path / "dump.txt").read_text().splitlines()
    dumped = [int(m.group(1)) for line in lines if (m := DUMP_EVENT.match(line)) and m.group(2).split() == ["f8"]]
    allowed = 2 * late + jumps  # a late event moves the intervals either side of it; a jump, one
    for witness, frames in (("our sink", heard[1:]), ("jack_midi_dump", dumped[1:])):
        count, off = off_intervals(frames)
        print(f"{witness}: {count} intervals, {off} off by more than a frame ({late} late events, {jumps} jumps)")
        assert count >= 150, f"{witness} heard {count + 1} clocks"
        assert off <= allowed, f"{witness}: {off} of {count} intervals off by more than a frame, {late} late, {jumps} jumps"
