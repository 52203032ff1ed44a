"""The flash ring and phase snapshots the tick publishes for watchers."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from firefly_midi.telemetry import FlashRing, phase_snapshot


@given(st.integers(4, 64), st.lists(st.integers(0, 40), max_size=30), st.integers(1, 5000))
def test_a_reader_gets_every_flash_once_in_order_or_is_told_how_many_it_lost(capacity, per_tick, limit):
    ring = FlashRing(capacity)
    _, cursor, _ = ring.since(-1)
    pushed, received, lost = [], [], 0
    for tick, count in enumerate(per_tick):
        ids = np.arange(len(pushed), len(pushed) + count, dtype=np.int64)
        ring.push(ids, np.full(count, 0.5), tick, 0.001)
        pushed.extend(ids.tolist())
        if tick % 3 == 2:  # the reader looks every third tick
            flashes, cursor, missed = ring.since(cursor, limit)
            received.extend(int(i) for i, _ in flashes)
            lost += missed
    flashes, cursor, missed = ring.since(cursor, limit)
    received.extend(int(i) for i, _ in flashes)
    lost += missed
    assert received == sorted(received), "in order"
    assert len(received) + lost == len(pushed), "every flash is received or counted as lost"
    assert set(received) <= set(pushed)
    assert cursor == len(pushed)


def test_flash_times_are_swarm_seconds():
    ring = FlashRing(8)
    ring.push(np.array([3, 5]), np.array([0.25, 0.75]), 100, 0.001)
    flashes, _, _ = ring.since(0)
    assert flashes == [[3, 0.1003], [5, 0.1008]]


@given(st.integers(1, 5000), st.integers(16, 4096))
def test_snapshots_hold_at_most_the_points_asked(n, points):
    phase = np.linspace(0, 0.999, n)
    phase[::7] = np.nan
    snap = phase_snapshot(phase, points, grid=False)
    assert len(snap["phase"]) <= points
    assert snap["phase"][0] == -1  # silenced
    assert all(-1 <= q <= 65535 for q in snap["phase"])
    grid = phase_snapshot(phase, points, grid=True)
    rows, cols = grid["grid"]
    assert rows * cols == len(grid["phase"]) <= max(points, 4) * 4
