"""The transport (firefly_midi/transport.py) against a dummy frame clock whose frames run at a rate
of our choosing: events land on exact frames, the clock wakes when the frames say, and a jump of the
frames (a stalled or restarted server) re-anchors without stalling or bursting the tick."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firefly_midi.clock import Clock
from firefly_midi.transport import MAX_STEP_S, Transport

pytestmark = pytest.mark.timeout(60)
RATE = 48_000


class DummyFrameClock:
    """Frames that run ``speed`` times as fast as time.monotonic(), from ``start_frame`` now."""

    def __init__(self, speed: float = 1.0, start_frame: int = 123_456) -> None:
        self.sample_rate, self.speed = RATE, speed
        self.zero_s = time.monotonic() - start_frame / (RATE * speed)  # when frame 0 played

    def frame_at(self, time_s: float) -> int:
        return round((time_s - self.zero_s) * RATE * self.speed)

    def time_at(self, frame: float) -> float:
        return self.zero_s + frame / (RATE * self.speed)

    def jump(self, seconds: float) -> None:
        """The frames stand still (a stalled server) for ``seconds``: each frame plays that much later."""
        self.zero_s += seconds


def test_on_monotonic_the_transport_is_the_clock_itself():
    transport = Transport()
    assert not transport.on_frames and transport.frame(5.0) is None
    assert transport.wake_at(5.0) == 5.0


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_000_000), st.floats(0.9, 1.1))
def test_a_steady_pulse_lands_on_exact_frames_whatever_the_frames_rate(start_frame, speed):
    transport = Transport()
    transport.follow(DummyFrameClock(speed, start_frame))
    t0 = time.monotonic() + 0.1
    frames = [transport.frame(t0 + n * 1000 / RATE) for n in range(200)]  # 24 per beat at 120 BPM: 1000 frames
    assert set(np.diff(frames)) == {1000}


def test_the_clock_wakes_when_the_frames_say():
    frames = DummyFrameClock(speed=0.96)  # a sound card 4 % slow against time.monotonic()
    transport = Transport()
    transport.follow(frames)
    t = time.monotonic() + 1.0
    wake = transport.wake_at(t)
    assert wake == pytest.approx(frames.time_at(transport.frame(t)), abs=1 / RATE)  # to the frame
    assert wake - transport.wake_at(t - 0.5) == pytest.approx(0.5 / 0.96, rel=1e-6)  # transport seconds run on frames


def test_a_jump_of_the_frames_re_anchors_and_the_next_wake_up_stays_in_time():
    frames = DummyFrameClock()
    transport = Transport()
    transport.follow(frames)
    t = time.monotonic()
    before = transport.wake_at(t)
    frames.jump(4.0)  # the server stood still for 4 s: its frames now play 4 s later
    after = transport.wake_at(t + 0.001)
    assert transport.jumps == 1
    assert after - before == pytest.approx(0.001, abs=1e-4)  # the tick neither sleeps 4 s nor bursts
    assert transport.frame(t + 0.001) == frames.frame_at(after)  # and its events land where the frames are now
    assert transport.wake_at(t + 0.002) - after == pytest.approx(0.001, abs=1e-4) and transport.jumps == 1


def test_a_small_drift_is_time_not_a_jump():
    frames = DummyFrameClock()
    transport = Transport()
    transport.follow(frames)
    t = time.monotonic()
    for n in range(100):
        frames.jump(MAX_STEP_S / 10)  # a slow frame clock loses a little each tick
        transport.wake_at(t + n * 0.001)
    assert transport.jumps == 0


def test_leaving_the_frames_goes_on_from_where_they_were():
    frames = DummyFrameClock(speed=0.9)
    transport = Transport()
    transport.follow(frames)
    t = time.monotonic() + 1.0
    wake = transport.wake_at(t)
    transport.leave()
    assert not transport.on_frames and transport.frame(t) is None
    assert transport.wake_at(t + 0.001) == pytest.approx(wake + 0.001, abs=1e-9)


def test_a_clock_on_frames_ticks_at_the_frames_pace():
    frames = DummyFrameClock(speed=0.5)  # frames at half speed: ticks come half as often
    transport = Transport()
    transport.follow(frames)
    ticks: list[float] = []
    clock = Clock(0.002, lambda k: ticks.append(time.monotonic()), realtime=False, transport=transport)
    clock.start()
    deadline = time.monotonic() + 10
    while len(ticks) < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    clock.stop()
    assert len(ticks) >= 100
    span = ticks[99] - ticks[0]
    assert span == pytest.approx(99 * 0.002 / 0.5, rel=0.1)


def test_an_input_dated_on_the_transport_keeps_its_offset_within_the_tick():
    """Native JACK input, once the transport follows the frames, comes dated on the clock's own time:
    its place in the tick is exact, whatever time.monotonic() says when the tick polls."""
    from firefly_midi.tick_loop import PortInput

    class Ports:
        arrival = "transport"

        def __init__(self, times: list[float]) -> None:
            self.items = [([0x90, 60, 100], t) for t in times]

        def poll(self):
            return self.items.pop(0) if self.items else None

    tick = 0.001
    ports = Ports([99.9995, 99.99925, 99.999, 99.995, 100.0005])
    polled = PortInput(ports, tick)
    polled.tick_at = 100.0  # the tick polling now; the messages arrived during the one before
    fractions = [polled.poll()[1] for _ in range(5)]
    assert fractions == pytest.approx([0.5, 0.25, 0.0, -4.0, 1.0])
