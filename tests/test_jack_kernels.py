"""The native JACK client's jitted parts, without a server: the input parser, the rings, the frame clock."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from firefly_midi.jack import clock, layout, parse, rings
from firefly_midi.testing.drummers import ScriptedAnchor

data_byte = st.integers(0, 0x7F)
channel_message = st.one_of(
    st.tuples(st.integers(0x80, 0xBF) | st.integers(0xE0, 0xEF), data_byte, data_byte).map(list),
    st.tuples(st.integers(0xC0, 0xDF), data_byte).map(list),
)
system_message = st.sampled_from([[0xF1, 5], [0xF2, 1, 2], [0xF3, 3], [0xF6]])
message = channel_message | system_message
sysex = st.tuples(st.lists(data_byte, max_size=8), st.booleans()).map(lambda s: [0xF0, *s[0]] + ([0xF7] if s[1] else []))
realtime = st.integers(0xF8, 0xFF)


@njit(cache=True)
def _parse_all(state, data, out):
    count = 0
    for byte in data:
        packed = parse.feed(state, np.int64(byte))
        if packed != parse.NOTHING:
            out[count] = packed
            count += 1
    return count


def parse_bytes(data: list[int]) -> list[list[int]]:
    state = rings.new_state()
    out = np.zeros(len(data), dtype=np.int64)
    count = _parse_all(state, np.array(data, dtype=np.int64), out)
    return [layout.unpack_message(int(packed)) for packed in out[:count]]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(message, st.lists(sysex, max_size=2)), max_size=12))
def test_messages_survive_any_sysex_before_them_terminated_or_not(items):
    stream = []
    for msg, sysexes in items:
        for chunk in sysexes:
            stream += chunk
        stream += msg
    assert parse_bytes(stream) == [msg for msg, _ in items]


@settings(max_examples=200, deadline=None)
@given(st.lists(message | sysex, max_size=10), st.lists(st.tuples(st.integers(0, 200), realtime), max_size=5))
def test_real_time_bytes_pass_anywhere_and_disturb_nothing(chunks, inserts):
    stream = [byte for chunk in chunks for byte in chunk]
    expected_others = parse_bytes(stream)
    for position, byte in sorted(inserts, reverse=True):
        stream.insert(min(position, len(stream)), byte)
    parsed = parse_bytes(stream)
    assert [m for m in parsed if m[0] < 0xF8] == expected_others
    assert sorted(m[0] for m in parsed if m[0] >= 0xF8) == sorted(byte for _, byte in inserts)


def test_running_status_and_stray_bytes():
    assert parse_bytes([0x90, 60, 100, 62, 90, 0x10, 0xF7, 0x11]) == [[0x90, 60, 100], [0x90, 62, 90]]
    assert parse_bytes([0xF0, 1, 2, 0x90, 60, 100]) == [[0x90, 60, 100]]  # a status byte ends a sysex
    assert parse_bytes([0xF1, 5, 6]) == [[0xF1, 5]]  # system common cancels running status


def test_ring_keeps_order_and_refuses_when_full():
    state = rings.new_state()
    frames = np.arange(layout.TX_CAPACITY + 10, dtype=np.int64)
    assert rings.put_batch(state, frames, frames * 2) == layout.TX_CAPACITY
    assert not rings.send_one(state, 1, 1)
    assert rings.fill(state, layout.TX_WRITE, layout.TX_READ) == layout.TX_CAPACITY
    first = rings.peek(state, layout.TX_READ, layout.TX_BASE, layout.TX_CAPACITY, 0)
    assert first == (0, 0)
    rings.advance(state, layout.TX_READ, 3)
    assert rings.peek(state, layout.TX_READ, layout.TX_BASE, layout.TX_CAPACITY, 0) == (3, 6)
    assert rings.send_one(state, 7, 7)


def test_rx_batches_come_out_in_order():
    state = rings.new_state()
    for k in range(5):
        assert rings.put(state, layout.RX_WRITE, layout.RX_READ, layout.RX_BASE, layout.RX_CAPACITY, 100 + k, k)
    out = np.zeros((3, 2), dtype=np.int64)
    assert rings.take_batch(state, out) == 3 and out[:, 0].tolist() == [100, 101, 102]
    assert rings.take_batch(state, out) == 2 and out[:2, 1].tolist() == [3, 4]
    assert rings.take_batch(state, out) == 0


@given(st.integers(0, 2**40), st.integers(0, 2**31))
def test_extend_frame_follows_the_32_bit_counter_across_wraps(start, step):
    raw = (start + step) & 0xFFFFFFFF
    assert clock.extend_frame(np.int64(start), np.int64(raw)) == start + step


def test_frame_clock_maps_from_the_earliest_entering_cycle_and_back():
    state = rings.new_state()
    clock.prepare(state, 48_000)
    # cycles of 64 frames entering 0-300 µs late; the one 3 cycles in was on time
    latencies = [300, 120, 250, 0, 90, 180]
    for k, late in enumerate(latencies):
        clock.publish_position(state, np.int64(1_000 + 64 * k), np.int64(64), np.int64(5_000_000 + round(k * 64e6 / 48_000) + late))
    mapping = clock.FrameClock(state, 48_000)
    assert mapping.position()[0] == 1_000 + 64 * 5
    when = mapping.time_at(1_000 + 64 * 3)
    assert mapping.frame_at(when) == 1_000 + 64 * 3
    assert mapping.frame_at(when + 0.25) == 1_000 + 64 * 3 + 12_000


def test_frame_clock_spreads_a_lost_step_over_seconds_and_follows_a_gain_at_once():
    mapping = ScriptedAnchor()

    def zero_ms(seconds: float, lost_s: float) -> float:  # frame 0 on the mapping, ms
        return mapping.zero_at(seconds, lost_s) * 1000.0

    assert zero_ms(1.0, 0.0) == 0.0
    steps = [zero_ms(1.0 + 0.001 * k, 0.030) for k in range(1, 1001)]  # lost 30 ms (the dummy driver at an xrun)
    assert 0.0 < steps[0] < 0.003  # not 30 ms at once: 2-3 µs in the first ms
    assert max(np.diff(steps)) < 0.006  # under 6 µs a ms: a beat of clock stretches by < 0.6 %
    later = [zero_ms(2.0 + 0.01 * k, 0.030) for k in range(1, 3001)]
    assert later[-1] == 30.0  # caught up within 30 s
    assert zero_ms(40.0, 0.010) == 10.0  # gained 20 ms: events would be late, so at once


def test_frame_clock_follows_a_frame_clock_that_runs_slow():
    mapping = ScriptedAnchor()
    # 60 s read every 5 ms; the frame clock loses 3.7 % (what the loaded dummy driver did)
    lag = [37.0 * k / 1000.0 - mapping.zero_at(0.001 * k, 37e-6 * k) * 1000.0 for k in range(0, 60_000, 5)]
    assert max(lag) < clock.CATCH_UP_US / 1000.0  # never snaps
    assert lag[-1] < 100.0  # learnt the drift: 37 ms a second, followed under 100 ms behind
