"""MIDI clock out: Start, 24 clocks a beat, Stop, Song Position and Continue; led by a follower's grid."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firefly_midi import presets
from firefly_midi.events import EventBuffer
from firefly_midi.follow import Follower
from firefly_midi.midi_clock import SLEW_BPM, ClockOut
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


@settings(max_examples=10, deadline=None)
@given(st.floats(0.015, 0.03), st.sampled_from([-1.0, 1.0]))
def test_a_led_clock_spreads_the_grids_phase_correction_over_several_beats(off, sign):
    """A kick on every beat, the fourth ``late`` s off: the grid's phase jumps, the clock's beats follow gently."""
    period, late = 0.6, sign * off
    values = presets.resolve("follow-drummer")
    clock, swarm = ClockOut(), Swarm(values)
    clock.lead = follower = locked_follower(0.0, period)
    clock.running = True
    kicks = {round((beat * period + (late if beat == 4 else 0.0)) / DT) for beat in range(1, 9)}
    downbeats, grid_bpm, refs = [], [], set()
    for k in range(round(0.5 * period / DT), round(30 * period / DT)):
        if k in kicks:
            follower.hear(36, 127, k * DT)
        follower.tick(k * DT, DT, swarm)
        refs.add(follower.ref)
        events, pulses = EventBuffer(), clock.pulses
        clock.tick(events, k * DT, DT, 2.0)
        for i, (at, m) in enumerate(events.as_list()):
            if m == [0xF8] and (pulses + i) % 24 == 0:
                downbeats.append(at)
                grid_bpm.append(follower.bpm)
    jumps = np.diff(sorted(refs)) - period * np.round(np.diff(sorted(refs)) / period)
    assert np.abs(jumps).max() > 0.004, "the late kick moved the grid's phase (a beat of a clock on it by 0.67 BPM)"
    tempo = 60.0 / np.diff(downbeats)
    ends = np.array([grid_bpm[:-1], grid_bpm[1:]])  # the grid's tempo at the start and the end of each beat
    slew = SLEW_BPM + 0.01
    assert (tempo <= ends.max(axis=0) + slew).all() and (tempo >= ends.min(axis=0) - slew).all(), (
        "no beat of the clock is further than SLEW_BPM from the grid's tempo"
    )
    beats = (downbeats[-1] - follower.ref) / follower.period
    assert abs(beats - round(beats)) * follower.period < 0.002, "and some beats later it is back on the grid"
