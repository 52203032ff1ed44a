"""MIDI clock out: Start, 24 clocks a beat, Stop, Song Position and Continue; led by a follower's grid."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firefly_midi import presets
from firefly_midi.follow import Follower
from firefly_midi.mapping import EventBuffer
from firefly_midi.midi_clock import ClockOut
from firefly_midi.swarm import Swarm

pytestmark = pytest.mark.timeout(60)

DT = 0.001


def run(clock: ClockOut, ticks: int, start: int = 0, hz: float = 2.0) -> list[tuple[float, list[int]]]:
    out = []
    for k in range(start, start + ticks):
        events = EventBuffer()
        clock.tick(events, k * DT, DT, hz)
        out += events.as_list()
    return out


@given(st.integers(1, 3000), st.integers(1, 3000))
def test_after_a_stop_the_clock_continues_from_the_next_sixteenth(before, after):
    clock = ClockOut()
    first = run(clock, before)
    assert first[0] == (0.0, [0xFA])
    sent = sum(m == [0xF8] for _, m in first)
    stopped = EventBuffer()
    clock.stop(stopped, before * DT)
    assert stopped.as_list() == [(before * DT, [0xFC])]
    again = run(clock, after, start=before)
    sixteenths = -(-sent // 6)
    assert again[:2] == [(before * DT, [0xF2, sixteenths & 0x7F, sixteenths >> 7]), (before * DT, [0xFB])]
    assert again[2][1] == [0xF8], "the first clock goes with the continue"
    assert clock.pulses == 6 * sixteenths + sum(m == [0xF8] for _, m in again)


def locked_follower(ref: float, period: float) -> Follower:
    """A follow-drummer follower that heard three kicks a ``period`` apart, the last at ``ref``."""
    values = presets.resolve("follow-drummer")
    follower, swarm = Follower(values), Swarm(values)
    for beat in (-2, -1, 0):
        assert follower.hear(36, 100, ref + beat * period)
    follower.tick(ref + 0.5 * period, DT, swarm)  # past the refractory window: the last hit is settled
    assert follower.locked and follower.bpm == pytest.approx(60.0 / period)
    return follower


@settings(max_examples=30, deadline=None)
@given(st.floats(0.34, 1.0), st.floats(0.0, 1.0), st.integers(0, 23))
def test_a_led_clock_puts_the_daws_downbeats_on_the_grids_beats(period, ref, sent_before):
    clock = ClockOut()
    clock.running, clock.pulses = True, sent_before  # a clock already counting, mid-beat
    clock.lead = locked_follower(ref, period)
    clocks = [t for t, m in run(clock, 4000) if m == [0xF8]]
    downbeats = [t for i, t in enumerate(clocks) if (sent_before + i) % 24 == 0]
    assert len(downbeats) >= 2
    for t in downbeats:
        beats = (t - ref) / period
        assert abs(beats - round(beats)) * period < DT, "every 24th clock falls on a grid beat (within a tick)"
    gaps = np.diff(clocks)
    assert gaps.max() < period + DT, "aligning waits at most a beat"
    assert gaps.min() > period / 24 - DT, "and never bursts"
