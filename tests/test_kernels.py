"""Each numba kernel against its plain-numpy twin, on random states (hypothesis)."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numba import njit

from firefly_midi.swarm import kernels as K
from firefly_midi.swarm import reference as R

phases = st.integers(1, 3000).flatmap(lambda n: arrays(np.float64, n, elements=st.floats(0.0, 0.999999)))


# advance() also meets phases at exactly 1 (add_noise clamps there: they flash at the tick's start)
# and NaN ones (silenced: they never flash)
edge_phases = st.integers(1, 3000).flatmap(
    lambda n: arrays(np.float64, n, elements=st.one_of(st.floats(0.0, 0.999999), st.sampled_from([1.0, np.nan])))
)


@given(edge_phases, st.floats(0.1, 20.0), st.floats(1e-4, 0.02))
def test_advance_matches_reference(phase, f0, dt):
    freq = np.full(phase.size, f0) * np.linspace(0.9, 1.1, phase.size)
    want_phase, want_ids, want_times = R.advance(phase, freq, dt)
    got = phase.copy()
    fired = np.zeros(phase.size, np.uint8)
    ids = np.zeros(phase.size, np.int64)
    times = np.zeros(phase.size)
    n = K.advance(got, freq, dt, fired, ids, times, 0)
    np.testing.assert_allclose(got, want_phase, atol=1e-12)
    np.testing.assert_array_equal(ids[:n], want_ids)
    np.testing.assert_allclose(times[:n], want_times, atol=1e-9)
    assert fired.sum() == n


@njit
def _sincos_all(values):
    out = np.empty((values.size, 2))
    for i in range(values.size):
        out[i, 0], out[i, 1] = K.sincos_2pi(values[i])
    return out


@given(arrays(np.float64, 200, elements=st.floats(-3.0, 3.0)))
def test_sincos_polynomial(x):
    got = _sincos_all(x)
    np.testing.assert_allclose(got[:, 0], np.sin(2 * np.pi * x), atol=5e-11)
    np.testing.assert_allclose(got[:, 1], np.cos(2 * np.pi * x), atol=5e-11)


coupling = st.tuples(
    st.sampled_from([K.PULSE, K.MIROLLO_STROGATZ, K.ERMENTROUT]),
    st.sampled_from([K.CONSTANT, K.LINEAR, K.SINE]),
    st.booleans(),
    st.integers(1, 40),  # flashes received at once
    st.floats(0.0, 0.05),  # eps
    st.floats(0.0, 0.2),  # kappa
)


@given(phases, coupling)
def test_receive_all_matches_reference(phase, setting):
    model, prc, desync, m, eps, kappa = setting
    w, ms_b, f0, fmin, fmax = 1.0 / 30, 3.0, 1.0, 0.87, 1.18
    freq = np.linspace(0.9, 1.1, phase.size)
    want_phi, want_freq = R.receive(model, prc, desync, phase, freq.copy(), m, w, eps, kappa, ms_b, f0, fmin, fmax)
    got_phase, got_freq = phase.copy(), freq.copy()
    fired = np.zeros(phase.size, np.uint8)
    ids = np.zeros(phase.size, np.int64)
    times = np.zeros(phase.size)
    n = K.receive_all(model, prc, desync, got_phase, got_freq, fired, float(m), w, eps, kappa, ms_b, f0, fmin, fmax, 0.5, ids, times, 0)
    fires = want_phi >= 1.0
    np.testing.assert_array_equal(ids[:n], np.flatnonzero(fires))
    np.testing.assert_allclose(got_phase[~fires], want_phi[~fires], atol=1e-9)
    assert np.all(got_phase[fires] == 0.0)
    np.testing.assert_allclose(got_freq, want_freq, rtol=1e-9, atol=1e-9)


@given(phases, st.floats(0.0, 5.0), st.floats(0.0, 2.0), st.floats(-1.0, 1.0), st.floats(-1.0, 1.0))
def test_kuramoto_sine_matches_reference(phase, k_hz, l_hz, zc, zs):
    freq = np.linspace(0.5, 1.5, phase.size)
    want_phase, want_freq = R.kuramoto_sine(phase, freq, 1e-3, k_hz, l_hz, zc, zs)
    got_phase, got_freq = phase.copy(), freq.copy()
    scratch = np.zeros(max(phase.size, K.BLOCK))
    fired = np.zeros(phase.size, np.uint8)
    ids = np.zeros(phase.size, np.int64)
    times = np.zeros(phase.size)
    c, s, _, live, _ = K.kuramoto_sine(got_phase, got_freq, 1e-3, k_hz, l_hz, zc, zs, scratch, fired, ids, times, K.idle_sweep())
    d = np.abs(got_phase - want_phase)
    np.testing.assert_allclose(np.minimum(d, 1 - d), 0, atol=1e-9)
    np.testing.assert_allclose(got_freq, want_freq, atol=1e-9)
    z = R.mean_field(phase)
    assert live == phase.size
    np.testing.assert_allclose([c / live, s / live], [z.real, z.imag], atol=1e-8)


@given(st.integers(2, 400).flatmap(lambda n: arrays(np.float64, n, elements=st.floats(0.0, 0.999999), unique=True)))
def test_sawtooth_histogram_matches_pairwise_definition(phase):
    hist = np.zeros(4096, np.int64)
    below = np.zeros(4096, np.int64)
    total, live = K.phase_histogram(phase, hist)
    got = phase.copy()
    freq = np.zeros(phase.size)
    dt = 1e-3
    K.kuramoto_sawtooth(got, freq, dt, 1.0, 0.0, hist, below, total, live)
    pull = (got - phase) / dt
    # The rank inside a histogram bin is interpolated: the error is bounded by the bin's occupancy.
    occupancy = hist[np.minimum((phase * 4096).astype(int), 4095)]
    bound = 2.0 * (occupancy - 1) / phase.size + 1e-9
    assert np.all(np.abs(pull - R.kuramoto_sawtooth_pull(phase)) <= bound)


@given(st.integers(1, 300), st.floats(0.0, 0.05), st.integers(0, 2**63 - 1), st.integers(0, 2**40), st.integers(0, 2**32))
def test_noise_matches_reference(n, sigma, key, counter, seed):
    phase = np.random.default_rng(seed).random(n)
    want = R.add_noise(phase, sigma, np.uint64(key), counter)
    got = phase.copy()
    assert K.add_noise(got, sigma, np.uint64(key), np.uint64(counter)) == counter + 1
    np.testing.assert_array_equal(got, want)


def test_noise_is_uniform_with_its_sigma_and_uncorrelated():
    """Per tick one splitmix64 draw seeds a 32-bit hash per firefly: the draws must still be
    uniform, of the asked spread, and unrelated between neighbours and between ticks."""
    n, sigma, key = 100_000, 0.01, np.uint64(12345)
    draws = []
    for counter in (0, 1, 2**33):
        phase = np.full(n, 0.5)
        K.add_noise(phase, sigma, key, np.uint64(counter))
        draws.append((phase - 0.5) / (sigma * np.sqrt(3.0)))  # uniform on [-1, 1]
    for d in draws:
        assert abs(d.mean()) < 0.01 and abs(d.std() - 1 / np.sqrt(3.0)) < 0.005
        assert np.histogram(d, bins=20, range=(-1, 1))[0].min() > 0.95 * n / 20
        assert abs(np.corrcoef(d[:-1], d[1:])[0, 1]) < 0.02
    assert abs(np.corrcoef(draws[0], draws[1])[0, 1]) < 0.02 and abs(np.corrcoef(draws[0], draws[2])[0, 1]) < 0.02


@given(st.integers(0, 2**63 - 1), st.integers(0, 2**40))
def test_counter_rng_matches_reference(key, counter):
    out = np.zeros(100)
    end = K.fill_uniform(out, np.uint64(key), np.uint64(counter))
    assert end == counter + 100
    np.testing.assert_array_equal(out, R.uniform01(np.uint64(key), np.arange(counter, counter + 100, dtype=np.uint64)))
    assert np.all((out >= 0) & (out < 1))


def _kuramoto_buffers(size):
    return np.zeros(max(size, K.BLOCK)), np.zeros(size, np.uint8), np.zeros(size, np.int64), np.zeros(size)


@given(
    st.integers(1, 3 * K.CHUNK + 7).flatmap(lambda n: arrays(np.float64, n, elements=st.floats(0.0, 0.999999))),
    st.floats(0.0, 5.0),
    st.floats(-1.0, 1.0),
    st.floats(-1.0, 1.0),
    st.integers(0, 2**32),
)
def test_kuramoto_sine_flashes_and_silenced_fireflies(phase, k_hz, zc, zs, seed):
    """Flashes come out in id order with the reference's crossings; NaN fireflies stay out of everything."""
    rng = np.random.default_rng(seed)
    phase = phase.copy()
    phase[rng.random(phase.size) < 0.1] = np.nan
    freq = rng.uniform(0.5, 30.0, phase.size)  # up to 0.03 cycles a tick: plenty of crossings
    dt, l_hz = 1e-3, 0.7
    live = ~np.isnan(phase)
    want_phase, want_freq = R.kuramoto_sine(phase[live], freq[live], dt, k_hz, l_hz, zc, zs)
    pull = zs * np.cos(2 * np.pi * phase[live]) - zc * np.sin(2 * np.pi * phase[live])
    step = dt * (freq[live] + k_hz * pull)
    crossed = phase[live] + step >= 1.0
    got_phase, got_freq = phase.copy(), freq.copy()
    scratch, fired, ids, times = _kuramoto_buffers(phase.size)
    c, s, adv, n_live, n = K.kuramoto_sine(got_phase, got_freq, dt, k_hz, l_hz, zc, zs, scratch, fired, ids, times, K.idle_sweep())
    assert n_live == live.sum()
    assert np.isnan(got_phase[~live]).all()
    np.testing.assert_array_equal(got_freq[~live], freq[~live])
    d = np.abs(got_phase[live] - want_phase)
    np.testing.assert_allclose(np.minimum(d, 1 - d), 0, atol=1e-9)
    np.testing.assert_allclose(got_freq[live], want_freq, atol=1e-9)
    z = R.mean_field(phase) if live.any() else 0j
    np.testing.assert_allclose([c, s], [z.real * n_live, z.imag * n_live], atol=1e-8 * max(n_live, 1))
    np.testing.assert_allclose(adv, step.sum(), rtol=1e-9, atol=1e-12)
    # Crossings within 1e-9 of the threshold may go either way between polynomial and libm sine.
    sure = np.abs(phase[live] + step - 1.0) > 1e-9
    want_ids = np.flatnonzero(live)[crossed & sure]
    got = set(ids[:n].tolist())
    assert set(want_ids) <= got <= set(want_ids) | set(np.flatnonzero(live)[~sure]), "exactly the crossings, up to the unsure"
    assert np.all(np.diff(ids[:n]) > 0), "flashes in id order"
    assert fired.sum() == n and np.all(fired[ids[:n]] == 1)
    at = {int(i): t for i, t in zip(ids[:n], times[:n], strict=True)}
    idx = np.flatnonzero(live)
    for j in want_ids:
        k = np.searchsorted(idx, j)
        np.testing.assert_allclose(at[int(j)], (1.0 - phase[j]) / step[k], atol=1e-6)


@given(phases, st.floats(0.0, 1.0))
def test_mean_field_skips_silenced(phase, share):
    phase = phase.copy()
    phase[: int(share * phase.size)] = np.nan
    c, s, total, live = K.mean_field(phase)
    alive = phase[~np.isnan(phase)]
    assert live == alive.size
    if live:
        z = R.mean_field(phase)
        np.testing.assert_allclose([c / live, s / live], [z.real, z.imag], atol=1e-9)
        np.testing.assert_allclose(total, alive.sum(), rtol=1e-12)


def _delay_queue(slots, size, timed=True):
    """The engine's delivery rows; Ermentrout's keep no arrival times (a dq_t without columns)."""
    return np.zeros(K.DQ_SLOTS + slots, np.int64), np.full((slots, size), -1, np.int32), np.zeros((slots, size if timed else 0))


@given(
    st.integers(4, 60),
    st.sampled_from([(K.PULSE, K.CONSTANT), (K.PULSE, K.LINEAR), (K.MIROLLO_STROGATZ, K.SINE), (K.ERMENTROUT, K.SINE)]),
    st.sampled_from(["random", "global"]),
    st.floats(0.0, 0.2),  # eps
    st.floats(0.05, 12.0),  # delay in ticks
    st.integers(0, 2**32),
)
def test_delayed_delivery_matches_reference(n, setting, topology, eps, delay_ticks, seed):
    """Several ticks of queued, delayed flashes: same deliveries, same flashes, same states.

    The kernel runs twice, Ermentrout's table of a tick's sines off (a sine per delivery) and
    forced on: both agree with the reference, and with each other bit for bit.
    """
    model, prc = setting
    rng = np.random.default_rng(seed)
    phase, freq = rng.random(n), rng.uniform(0.87, 1.18, n)
    table = np.empty((0, 1), np.int32) if topology == "global" else rng.integers(0, n, (n, 5)).astype(np.int32)
    coupling = (1.0 / 5, eps, 0.05, 3.0, 1.0, 0.87, 1.18)
    codes = np.array([model, prc, 0, table.shape[0] == 0, 0], np.int64)
    coef = np.zeros(12)
    coef[[K.F_W, K.F_EPS, K.F_KAPPA, K.F_MS_B, K.F_F0, K.F_FMIN, K.F_FMAX]] = coupling
    coef[K.F_DELAY_TICKS] = delay_ticks
    key, counter = np.uint64(seed | 1), 7
    runs = []
    for recent in (0.0, 1e300):  # state[M_RECENT]: no table / a table whenever anything is due
        lately = np.array([0.0, 0.0, 0.0, 1.0, 0.0, recent])
        run = {"phase": phase.copy(), "freq": freq.copy(), "fired": np.zeros(n, np.uint8), "rng": np.array([key, counter], np.uint64)}
        rows = _delay_queue(int(np.ceil(delay_ticks)) + 2, 4 * n * 5 * 2, timed=model != K.ERMENTROUT)
        runs.append((run, lately, rows, np.empty(n)))
    want_fired, pending = np.zeros(n, np.uint8), {}
    ids, times = np.zeros(n, np.int64), np.zeros(n)
    for index in range(20):
        outside = rng.choice(n, size=int(rng.integers(0, 4)), replace=False)  # flashes of their own
        flashed = rng.random(outside.size)
        want_fired[:] = 0
        want_fired[outside] = 1
        want_ids, want_times, counter = R.couple_delayed(
            model, prc, False, phase, freq, want_fired, table, outside, flashed, coupling, delay_ticks, pending, key, counter, index
        )
        for run, lately, (meta, link, dq_t), sines in runs:
            run["fired"][:] = 0
            run["fired"][outside] = 1
            ids[: outside.size], times[: outside.size] = outside, flashed
            got = K.pulse_couple_delayed(
                codes, coef, run["phase"], run["freq"], run["fired"], table, ids, times, outside.size, lately, run["rng"],
                meta, link, dq_t, sines, index,
            )  # fmt: skip
            np.testing.assert_array_equal(ids[:got], want_ids)
            np.testing.assert_allclose(times[:got], want_times, atol=1e-12)
            np.testing.assert_allclose(run["phase"], phase, atol=1e-9)
            np.testing.assert_allclose(run["freq"], freq, atol=1e-9)
            assert int(run["rng"][1]) == counter and meta[K.DQ_DROPPED] == 0
        (one, *_), (other, *_) = runs
        np.testing.assert_array_equal(one["freq"], other["freq"])
        np.testing.assert_array_equal(one["phase"], other["phase"])


@njit
def _write_through_borrowed(table, value):
    view = K.borrowed(table)  # one array: one view, not a tuple
    for i in range(view.shape[0]):
        for j in range(view.shape[1]):
            view[i, j] = value * i + j
    return view.shape[0] * view.shape[1], view.strides[0]


@given(st.integers(1, 40), st.integers(1, 40), st.integers(-5, 5), st.booleans())
def test_a_borrowed_view_is_the_same_memory_shape_and_strides(rows, cols, value, transposed):
    """``borrowed`` (the run loops' arrays without reference counts) must alias its array exactly."""
    table = np.zeros((cols, rows) if transposed else (rows, cols), dtype=np.int64)
    target = table.T if transposed else table  # a non-contiguous array keeps its own strides
    size, stride = _write_through_borrowed(target, value)
    assert size == rows * cols and stride == target.strides[0]
    np.testing.assert_array_equal(target, value * np.arange(rows)[:, None] + np.arange(cols)[None, :])


def test_settings_unpack_by_name_from_the_packed_arrays():
    """``settings_of`` reads each field from its slot: the engine packs a Settings into codes/coef by the same order."""
    values = K.Settings(*range(1, 1 + len(K.CODE_FIELDS)), *(0.5 + np.arange(len(K.COEF_FIELDS))))
    codes = np.array(values[: len(K.CODE_FIELDS)], np.int64)
    coef = np.array(values[len(K.CODE_FIELDS) :], np.float64)
    got = K.settings_of(codes, coef)
    assert got._fields == K.Settings._fields
    for name in K.Settings._fields:
        want = getattr(values, name)
        assert getattr(got, name) == (want != 0 if name in ("desync", "everyone") else want), name
    assert got.dt == coef[K.F_DT] and got.model == codes[K.C_MODEL] and got.delay_ticks == coef[K.F_DELAY_TICKS]
