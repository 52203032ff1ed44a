"""Kernels checked against what they are for, not against a transliteration of their code.

firefly_midi/swarm/reference.py mirrors the kernels line by line (same constants, same walk), so a
wrong idea copied into both passes there.  Here each check states the behaviour in plain terms and
computes the expected result by hand (math.sin, small worked cases) or as a property: who may
change, by how much, who flashes, which rows are redrawn when.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from firefly_midi.swarm import Swarm, topology
from firefly_midi.swarm import kernels as K

TAU = 2 * math.pi
NO = -1  # padding in a neighbour table


def buffers(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """fired flags, flash ids and flash times for n fireflies."""
    return np.zeros(n, np.uint8), np.zeros(n, np.int64), np.zeros(n, np.float64)


def deliver(model, prc, phase, freq, fired, table, ids, times, start, n, eps=0.1, kappa=0.0):
    """deliver_sparse with weight 1 and the frequency bounds 0.5-2 Hz around f0 = 1 Hz."""
    return K.deliver_sparse(model, prc, False, phase, freq, fired, table, 1.0, eps, kappa, 3.0, 1.0, 0.5, 2.0, ids, times, start, n)


# --------------------------------------------------------------------------------------- deliver_sparse
def test_a_flash_moves_exactly_its_rows_peers_by_the_constant_prc():
    """Firefly 0 flashes; its row is (1, 2, -1): 1 (before ½) is set back by ε, 2 (after ½) pushed on
    by ε; 3, not in the row, and the padding are untouched."""
    phase = np.array([0.0, 0.3, 0.7, 0.4])
    freq = np.ones(4)
    table = np.array([[1, 2, NO], [NO, NO, NO], [NO, NO, NO], [NO, NO, NO]], np.int32)
    fired, ids, times = buffers(4)
    fired[0], ids[0], times[0] = 1, 0, 0.25
    n = deliver(K.PULSE, K.CONSTANT, phase, freq, fired, table, ids, times, 0, 1)
    assert n == 1
    np.testing.assert_allclose(phase, [0.0, 0.2, 0.8, 0.4], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(freq, 1.0)


def test_a_cascade_spreads_along_the_rows_at_the_first_flashs_time_and_nobody_flashes_twice():
    """0 → 1 → 2 → 0: 1 and 2 sit just below threshold, so 0's flash sets off 1, whose flash sets off 2,
    all at 0's sub-tick time; 2's flash reaches 0, which has flashed this tick and ignores it."""
    phase = np.array([0.0, 0.95, 0.95])
    freq = np.ones(3)
    table = np.array([[1], [2], [0]], np.int32)
    fired, ids, times = buffers(3)
    fired[0], ids[0], times[0] = 1, 0, 0.4
    n = deliver(K.PULSE, K.CONSTANT, phase, freq, fired, table, ids, times, 0, 1)
    assert n == 3
    assert ids[:3].tolist() == [0, 1, 2]
    np.testing.assert_array_equal(times[:3], 0.4)
    np.testing.assert_array_equal(phase, 0.0)
    np.testing.assert_array_equal(fired, 1)


def test_silenced_and_already_flashed_fireflies_hear_nothing():
    phase = np.array([0.0, np.nan, 0.3, 0.3])
    freq = np.ones(4)
    table = np.array([[1, 2, 3], [NO, NO, NO], [NO, NO, NO], [NO, NO, NO]], np.int32)
    fired, ids, times = buffers(4)
    fired[0], ids[0], times[0] = 1, 0, 0.0
    fired[2] = 1  # flashed earlier this tick
    deliver(K.PULSE, K.CONSTANT, phase, freq, fired, table, ids, times, 0, 1)
    assert np.isnan(phase[1]) and phase[2] == 0.3
    assert phase[3] == pytest.approx(0.2)


@given(st.floats(0.0, 0.999), st.floats(0.5, 2.0))
def test_ermentrout_deliveries_move_frequency_by_eq_1_and_never_phase(phi, omega):
    """ω ← ω + ε(f0 − ω) + g⁺(φ)(fmin − ω) + g⁻(φ)(fmax − ω), g± = max(±sin 2πφ / 2π, 0); φ stays."""
    phase = np.array([0.0, phi])
    freq = np.array([1.0, omega])
    table = np.array([[1], [NO]], np.int32)
    fired, ids, times = buffers(2)
    fired[0] = 1
    eps = 0.01
    n = deliver(K.ERMENTROUT, K.SINE, phase, freq, fired, table, ids, times, 0, 1, eps=eps)
    g = math.sin(TAU * phi) / TAU
    want = omega + eps * (1.0 - omega) + max(g, 0.0) * (0.5 - omega) + max(-g, 0.0) * (2.0 - omega)
    assert n == 1 and phase[1] == phi
    assert freq[1] == pytest.approx(want, rel=1e-9, abs=1e-12)


# -------------------------------------------------------------------------------------- receive_subset
@given(st.lists(st.floats(0.0, 0.999), min_size=6, max_size=6), st.sets(st.integers(0, 5), max_size=6))
def test_an_external_flash_on_a_region_moves_the_region_only(phases, region):
    phase = np.array(phases)
    before = phase.copy()
    freq = np.ones(6)
    fired, ids, times = buffers(6)
    targets = np.array(sorted(region), np.int64)
    s = 0.2  # m · w · ε
    n = K.receive_subset(K.PULSE, K.CONSTANT, False, phase, freq, fired, targets, 1.0, 1.0, s, 0.0, 3.0, 1.0, 0.5, 2.0, 0.6, ids, times, 0)
    outside = np.setdiff1d(np.arange(6), targets)
    np.testing.assert_array_equal(phase[outside], before[outside])
    for i in targets:
        moved = before[i] - s if before[i] < 0.5 else (before[i] + s if before[i] > 0.5 else before[i])
        if moved >= 1.0:
            assert phase[i] == 0.0 and fired[i] == 1 and i in ids[:n]
        else:
            assert phase[i] == pytest.approx(max(moved, 0.0), abs=1e-15)
    assert ids[:n].tolist() == [i for i in targets if before[i] + s >= 1.0 and before[i] > 0.5]
    np.testing.assert_array_equal(times[:n], 0.6)


# ------------------------------------------------------------------------------------ desync_same_tick
def test_two_desync_fireflies_flashing_in_one_tick_are_pushed_apart_by_their_sub_tick_lag():
    """a flashed at 0.2 of the tick, b at 0.7: a sees b's flash just after its own (pushed on by
    s·sin 2π·lag), b sees a's just before its own (held back, clamped at 0)."""
    dt, s = 1e-3, 0.05
    phase = np.array([0.3, 0.0004])
    freq = np.array([1.0, 1.0])
    ids, times = np.array([0, 1], np.int64), np.array([0.2, 0.7])
    K.desync_same_tick(phase, freq, ids, times, 2, dt, s, K.SINE)
    lag = 0.5 * dt
    assert phase[0] == pytest.approx(0.3 + s * math.sin(TAU * lag), rel=1e-9)
    assert phase[1] == pytest.approx(max(0.0004 + s * math.sin(TAU * (1 - lag)), 0.0), abs=1e-12)
    assert phase[1] < 0.0004


def test_desync_flashes_at_the_same_instant_still_part_by_id():
    phase = np.array([0.1, 0.1])
    K.desync_same_tick(phase, np.ones(2), np.array([0, 1], np.int64), np.array([0.5, 0.5]), 2, 1e-3, 0.05, K.SINE)
    assert phase[0] > 0.1 > phase[1]


# ------------------------------------------------------------------------------------- kuramoto_kick
@given(st.lists(st.one_of(st.floats(0.0, 0.999999), st.just(float("nan"))), min_size=1, max_size=20), st.floats(0.0, 2.0))
def test_a_kick_moves_each_phase_towards_the_flash_and_never_past_it(phases, amount):
    """φ += amount · sin(2π(0 − φ)), clamped to [0, 1): a phase kicked past 1 waits just below it."""
    phase = np.array(phases)
    before = phase.copy()
    K.kuramoto_kick(phase, np.zeros(0, np.int64), True, amount, False)
    for got, x in zip(phase, before, strict=True):
        if math.isnan(x):
            assert math.isnan(got)
            continue
        want = min(max(x - amount * math.sin(TAU * x), 0.0), 1.0 - 1e-12)
        assert got == pytest.approx(want, abs=1e-9)
        assert 0.0 <= got < 1.0


def test_a_sawtooth_kick_on_targets_only():
    """H(0 − φ) = 2((−φ) mod 1) − 1: a firefly at 0.25 moves on by amount·0.5, one at 0.75 back by as much."""
    phase = np.array([0.25, 0.75, 0.25])
    K.kuramoto_kick(phase, np.array([0, 1], np.int64), False, 0.1, True)
    np.testing.assert_allclose(phase, [0.25 + 0.1 * 0.5, 0.75 - 0.1 * 0.5, 0.25], rtol=0, atol=1e-15)


# ------------------------------------------------------------------------------------ kuramoto_sparse
@pytest.mark.parametrize("sawtooth", [False, True])
def test_sparse_kuramoto_averages_h_over_the_live_peers_of_each_row(sawtooth):
    """dφ_i = dt (ω_i + K/2π · mean_j H(φ_j − φ_i)) and dω_i = dt L/2π · the same mean, over the
    row's live peers (padding and silenced peers left out)."""
    dt, k_hz, l_hz = 1e-3, 2.0, 0.5
    start = np.array([0.1, 0.3, np.nan, 0.8])
    freq = np.array([1.0, 1.1, 1.2, 0.9])
    table = np.array([[1, 2, 3], [0, NO, NO], [0, 1, NO], [2, NO, NO]], np.int32)

    def h(d: float) -> float:
        if not sawtooth:
            return math.sin(TAU * d)
        d %= 1.0
        return 0.0 if d == 0.0 else 2 * d - 1

    pulls = {0: (h(0.3 - 0.1) + h(0.8 - 0.1)) / 2, 1: h(0.1 - 0.3), 3: 0.0}  # 3's only peer is silenced
    phase, got_freq = start.copy(), freq.copy()
    K.kuramoto_sparse(sawtooth, phase, got_freq, dt, k_hz, l_hz, table, start.copy())
    for i, pull in pulls.items():
        assert phase[i] == pytest.approx(start[i] + dt * (freq[i] + k_hz * pull), abs=1e-12)
        assert got_freq[i] == pytest.approx(freq[i] + dt * l_hz * pull, abs=1e-12)
    assert np.isnan(phase[2]) and got_freq[2] == freq[2]


# --------------------------------------------------------------------------------------- rewiring
def test_every_random_row_is_redrawn_exactly_once_per_rewire_period():
    values = {"swarm.model": "pulse", "swarm.n": 500, "swarm.topology": "random", "swarm.neighbors": 30, "swarm.rewire_s": 0.1}
    swarm = Swarm(values)
    period = round(0.1 / swarm.dt)
    swarm.step()  # the first tick redraws nothing: the table is fresh
    for _ in range(2):
        redrawn = np.zeros(swarm.n, int)
        for _ in range(period):
            before = swarm.table.copy()
            swarm.step()
            redrawn += (swarm.table != before).any(axis=1)
        # a redrawn row of 30 peers out of 499 equals the old one with probability ~1e-80
        np.testing.assert_array_equal(redrawn, 1)
        assert_random_table(swarm.table, swarm.n, 30)


def assert_random_table(table: np.ndarray, n: int, k: int) -> None:
    assert table.shape == (n, k)
    assert ((table >= 0) & (table < n)).all()
    assert not (table == np.arange(n)[:, None]).any(), "no firefly sees its own flash"


# ------------------------------------------------------------------------------------ topology tables
@pytest.mark.parametrize(("n", "k"), [(10, 2), (10, 4), (50, 6), (7, 6), (9, 3)])
def test_a_ring_row_holds_the_k_nearest_without_self_and_even_rings_are_symmetric(n, k):
    table = topology.ring(n, k)
    assert table.shape == (n, k)
    for i, row in enumerate(table):
        assert i not in row and len(set(row.tolist())) == k
        distance = np.minimum((row - i) % n, (i - row) % n)
        assert distance.max() <= k // 2 + k % 2
    if k % 2 == 0:
        assert_symmetric(table, n)


@pytest.mark.parametrize(("n", "radius"), [(100, 1), (100, 2), (90, 1), (37, 2)])
def test_a_grid_row_holds_the_cells_within_the_radius_and_is_symmetric(n, radius):
    table = topology.grid(n, radius)
    rows, cols = topology.grid_shape(n)
    assert rows * cols >= n > (rows - 1) * cols
    for i, row in enumerate(table):
        peers = row[row >= 0]
        assert i not in peers and len(set(peers.tolist())) == peers.size
        want = {j for j in range(n) if j != i and (j // cols - i // cols) ** 2 + (j % cols - i % cols) ** 2 <= radius * radius}
        assert set(peers.tolist()) == want
    assert_symmetric(table, n)


def test_random_peers_are_k_a_row_never_oneself_and_cover_everyone():
    table, _ = topology.random_peers(400, 30, np.uint64(7), np.uint64(0))
    assert_random_table(table, 400, 30)
    seen = np.bincount(table.ravel(), minlength=400)
    assert seen.sum() == 400 * 30
    # in-degree is Binomial(12000, 1/399): mean 30, sd 5.5; 30 ± 6 sd holds for all 400 but ~1e-8 of the time
    assert seen.min() > 0 and seen.max() < 63
    assert topology.in_degree(table, 400) == 30


def assert_symmetric(table: np.ndarray, n: int) -> None:
    edges = {(i, int(j)) for i in range(n) for j in table[i] if j >= 0}
    assert edges == {(j, i) for i, j in edges}
