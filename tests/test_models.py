"""The models against the literature: each test can fail if the dynamics are wrong."""

import hashlib
import math
import threading
import time

import numpy as np
import pytest
import reference_ermentrout as ref

from firefly_midi import presets
from firefly_midi.simulate import simulate
from firefly_midi.swarm import Swarm, topology
from firefly_midi.swarm import kernels as K
from firefly_midi.swarm.engine import usable_cpus
from firefly_midi.swarm.metrics import Recorder, order_parameter


def run(values, seconds):
    result, swarm, _recorder = simulate(values, seconds)
    return result, swarm


@pytest.mark.parametrize(("k", "gamma_hz"), [(1.2, 0.05), (2.0, 0.05), (2.0, 0.1)])
def test_kuramoto_lorentzian_matches_r_infinity(k, gamma_hz):
    gamma = 2 * math.pi * gamma_hz  # rad/s
    values = {
        "swarm.model": "kuramoto",
        "swarm.n": 10_000,
        "swarm.freq_dist": "lorentzian",
        "swarm.freq_spread_hz": gamma_hz,
        "swarm.coupling": k,
    }
    swarm = Swarm(values)
    swarm.run(int(20 / swarm.dt))
    rec = Recorder.for_run(int(10 / swarm.dt), swarm.n, swarm.dt)
    swarm.run(rec.ticks, rec)
    r = rec.samples[: rec.used // rec.sample_every, 0].mean()
    assert r == pytest.approx(math.sqrt(1 - 2 * gamma / k), abs=0.02)


def test_kuramoto_below_critical_coupling_stays_incoherent():
    values = {
        "swarm.model": "kuramoto",
        "swarm.n": 10_000,
        "swarm.freq_dist": "lorentzian",
        "swarm.freq_spread_hz": 0.1,
        "swarm.coupling": 0.5,
    }
    result, _ = run(values, 20)  # K_c = 2γ = 1.26 rad/s
    assert result["order_parameter"] < 0.1


@pytest.mark.parametrize("n", [10, 100, 1000])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mirollo_strogatz_always_ends_in_one_group(n, seed):
    values = presets.resolve("mirollo-strogatz", [f"swarm.n={n}"], seed)
    _, swarm = run(values, 30)
    period_ticks = math.ceil(1 / (values["swarm.freq_hz"] * swarm.dt))
    for _ in range(2 * period_ticks):  # the slowest possible firefly flashes within one period
        if swarm.step():
            break
    assert swarm.count == n, "every firefly must flash in the same tick"


def as_reference(values: dict) -> ref.Fireflies:
    """The exact event-driven reference (tests/reference_ermentrout.py) with a preset's parameters."""
    return ref.Fireflies(
        n=values["swarm.n"],
        f0=values["swarm.freq_hz"],
        fmin=values["swarm.freq_min_hz"],
        fmax=values["swarm.freq_max_hz"],
        eps=values["swarm.coupling"],
        observers=values["swarm.neighbors"],
        rewire_s=values["swarm.rewire_s"],
        delay_s=values["swarm.delay_ms"] / 1000,
    )


def test_ermentrout_800_reproduces_the_paper():
    """The paper: 800-1024 fireflies in sync in about 10 s, flashing within about 3% of the period.

    With the preset's assumed 0-30 ms delays the engine syncs in 7.5-9.4 s with a 1.0-1.1% window at
    0.923 Hz (seeds 0-7); the exact reference gives 7.6-8.6 s, 1.1-1.4% and 0.925-0.928 Hz (N = 800,
    seeds 0-6, tests/reference_ermentrout.py).  Bounds: sync within 10.5 s (the slowest seed + 1 s),
    the window within 1.6% (the reference's widest + 10%: the ~5% of 25 ms delays and the 8% of none
    both fail), the frequency within 0.01 Hz of the reference's."""
    sync_times, windows, freqs = [], [], []
    for seed in range(5):
        result, swarm = run(presets.resolve("ermentrout-800", seed=seed), 30)
        sync_times.append(result["sync_time_s"])
        windows.append(result["emission_window"])
        freqs.append(result["mean_freq_hz"])
        assert swarm.dropped_deliveries == 0
    assert all(t is not None and 6.0 <= t <= 10.5 for t in sync_times), sync_times
    assert max(windows) <= 0.016, windows
    assert all(abs(f - 0.926) <= 0.01 for f in freqs), freqs


@pytest.mark.slow
def test_ermentrout_800_without_delays_is_the_limit_cycle_of_the_exact_reference():
    """Eq. 1 with 30 instant flashes a cycle: sync, but a ~8% window (docs/models.md).  The band is
    the exact reference's over the same seeds (8.1-8.4% for seeds 0-7), widened by 1 point a side."""
    values = [presets.resolve("ermentrout-800", ["swarm.delay_ms=0"], seed=seed) for seed in range(3)]
    reference = [ref.simulate(as_reference(v), 30, seed) for seed, v in enumerate(values)]
    low = min(o.emission_window for o in reference) - 0.01
    high = max(o.emission_window for o in reference) + 0.01
    assert low > 0.06 and high < 0.10, "the reference itself is on the limit cycle"
    for v in values:
        result, _ = run(v, 30)
        assert result["sync_time_s"] is not None and result["sync_time_s"] <= 10.5
        assert low <= result["emission_window"] <= high, (result["emission_window"], low, high)


@pytest.mark.slow
@pytest.mark.parametrize(("delay_ms", "window_tol"), [(0, 0.01), (30, 0.012)])
def test_ermentrout_matches_the_exact_event_driven_reference_at_small_n(delay_ms, window_tol):
    """N = 200, six seeds each, 20 s: engine and reference are different random draws of the same
    model, so their means are compared.  Measured (engine vs reference): without delays sync 8.4 vs
    8.2 s, window 8.5 vs 8.1%, 1.0034 vs 1.0048 Hz; with 0-30 ms delays 8.9 vs 9.0 s, 3.9 vs 4.3%,
    0.943 vs 0.945 Hz.  Tolerances: 2 s, ``window_tol``, 0.005 Hz (about 3 standard errors)."""
    values = [presets.resolve("ermentrout-800", [f"swarm.delay_ms={delay_ms}", "swarm.n=200"], seed=seed) for seed in range(6)]
    engine = [run(v, 20)[0] for v in values]
    reference = [ref.simulate(as_reference(v), 20, seed) for seed, v in enumerate(values)]
    assert all(r["sync_time_s"] is not None for r in engine) and all(o.sync_time_s is not None for o in reference)
    assert np.mean([r["sync_time_s"] for r in engine]) == pytest.approx(np.mean([o.sync_time_s for o in reference]), abs=2.0)
    assert np.mean([r["emission_window"] for r in engine]) == pytest.approx(np.mean([o.emission_window for o in reference]), abs=window_tol)
    assert np.mean([r["mean_freq_hz"] for r in engine]) == pytest.approx(np.mean([o.mean_freq_hz for o in reference]), abs=0.005)


@pytest.mark.parametrize(("prc", "latest_sync_s"), [("constant", 12.0), ("linear", 25.0)])
def test_pulse_coupling_syncs_with_the_constant_and_linear_prcs(prc, latest_sync_s):
    """pulse-sine with the other sync curves: constant syncs in 7.5-9.3 s (0.13% window), linear in
    16.6-19.9 s (1.7-2.7%), seeds 0-2; uncoupled, r stays where chance puts it (< 0.1)."""
    for seed in range(3):
        result, _ = run(presets.resolve("pulse-sine", [f"swarm.prc={prc}"], seed=seed), 30)
        assert result["sync_time_s"] is not None and result["sync_time_s"] <= latest_sync_s, result
        assert result["order_parameter"] > 0.99 and result["emission_window"] < 0.05
    alone, _ = run(presets.resolve("pulse-sine", [f"swarm.prc={prc}", "swarm.coupling=0"], seed=0), 30)
    assert alone["sync_time_s"] is None and alone["order_parameter"] < 0.1


def test_kuramoto_with_frequency_adaptation_locks_at_the_mean_natural_frequency():
    """dω_i/dt = L/N Σ sin(θ_j − θ_i) sums to zero over i, so the mean frequency is conserved and the
    swarm locks there with r → 1.  The natural frequencies are redrawn off the preset's centre so
    that locking at freq_hz would fail."""
    swarm = Swarm(presets.resolve("kuramoto-adaptive", seed=3))
    natural = np.random.default_rng(3).normal(1.26, 0.05, swarm.n)
    swarm.state.freq[:] = swarm.state.natural[:] = natural
    assert abs(natural.mean() - swarm.values["swarm.freq_hz"]) > 0.03
    swarm.run(int(30 / swarm.dt))
    # conserved up to rounding: the fast-math sums drift 3e-6 Hz in 30,000 steps
    assert swarm.state.freq.mean() == pytest.approx(natural.mean(), abs=2e-5)
    assert np.abs(swarm.state.freq - natural.mean()).max() < 1e-4, "every firefly at the mean (spread 0.05 Hz at the start)"
    assert swarm.order_parameter() > 0.999


def test_delay_zero_changes_nothing():
    """swarm.delay_ms = 0 is the instant path: the same flashes as a swarm that never had the key."""
    values = presets.resolve("pulse-sine", seed=4)
    plain = Swarm({k: v for k, v in values.items() if k != "swarm.delay_ms"})
    zero = Swarm({**values, "swarm.delay_ms": 0.0})
    for _ in range(3000):
        assert plain.step() == zero.step()
        np.testing.assert_array_equal(plain.flashes()[0], zero.flashes()[0])
    np.testing.assert_array_equal(plain.state.phase, zero.state.phase)


def _flash_digest(values, ticks, use_run):
    """sha256 of every tick's flashes (count, ids, sub-tick times) and the final phases and frequencies."""
    swarm, digest = Swarm(values), hashlib.sha256()
    for _ in range(ticks):
        swarm.run(1) if use_run else swarm.step()
        ids, times = swarm.flashes()
        digest.update(np.int64(swarm.count).tobytes() + ids.tobytes() + times.tobytes())
    digest.update(swarm.state.phase.tobytes() + swarm.state.freq.tobytes())
    return digest.hexdigest()[:16], swarm.flashes_total


@pytest.mark.parametrize(
    ("preset", "sets", "seed"),
    [
        ("ermentrout-800", ["swarm.delay_ms=0"], 0),
        ("pulse-sine", ["swarm.n=800"], 1),
        ("ermentrout-800", [], 0),  # with its delays
        ("pulse-sine", ["swarm.n=800", "swarm.delay_ms=20"], 1),
    ],
)
def test_stepping_and_running_give_the_same_flashes(preset, sets, seed):
    """The daemon's step() and the offline run() are separate kernels (instant and delayed each):
    8,000 ticks give bit-identical flashes either way.  (Digests pinned across the speed work, at
    625a812 and f8fd626, matched too; they are not pinned here, since a CPU with other vector units
    may round the fastmath reductions differently.)"""
    values = presets.resolve(preset, sets, seed=seed)
    stepped = _flash_digest(values, 8000, use_run=False)
    assert _flash_digest(values, 8000, use_run=True) == stepped
    whole = Swarm(values)
    whole.run(8000)
    assert whole.flashes_total == stepped[1]


@pytest.mark.parametrize("topology", ["global", "ring", "random"])
def test_delays_act_on_every_topology_and_are_seeded(topology):
    """Delayed flashes still couple (r grows where an uncoupled swarm's does not), the same way every run."""
    values = {**presets.resolve("pulse-sine", seed=1), "swarm.topology": topology, "swarm.delay_ms": 20.0}
    a, b, alone = Swarm(values), Swarm(values), Swarm({**values, "swarm.coupling": 0.0})
    for swarm in (a, b, alone):
        swarm.run(15_000)
    np.testing.assert_array_equal(a.state.phase, b.state.phase)
    # from r = 0.04: coupled 0.23 (ring), 0.24 (random), 0.99 (global) after 15 s; uncoupled 0.04
    assert a.order_parameter() > 0.15 > 0.1 > alone.order_parameter()
    assert a.flashes_total > 0 and a.dropped_deliveries == 0


def test_desync_tdma_spreads_evenly():
    result, _ = run(presets.resolve("desync-tdma"), 40)
    assert result["gap_cv"] < 0.05
    assert result["order_parameter"] < 0.1


def test_kuramoto_desync_spreads_evenly():
    result, _ = run(presets.resolve("kuramoto-desync"), 30)
    assert result["gap_cv"] < 0.05


def test_interval_sync_collapses_intervals():
    values = presets.resolve("interval-sync")
    swarm = Swarm(values)
    before = swarm.state.freq.std()
    swarm.run(int(40 / swarm.dt))
    assert before > 0.04
    assert swarm.state.freq.std() < 0.01 * before
    assert swarm.order_parameter() > 0.99


def test_phase_sync_alone_cannot_lock_different_intervals():
    values = presets.resolve("interval-sync", ["swarm.interval_coupling=0"])
    result, _swarm = run(values, 40)
    assert result["order_parameter"] < 0.97


def test_grid_pacemaker_sends_travelling_waves():
    """A faster pacemaker at the centre of a locally coupled grid: flash times grow with distance."""
    values = {
        "swarm.model": "pulse",
        "swarm.prc": "sine",
        "swarm.n": 900,
        "swarm.topology": "grid",
        "swarm.neighbors": 1,
        "swarm.coupling": 0.6,
        "swarm.freq_hz": 1.0,
    }
    swarm = Swarm(values)
    pacemaker_hz = 1.1
    centre = topology.grid_region(900, 15, 15, 2)
    swarm.state.freq[centre] = swarm.state.natural[centre] = pacemaker_hz
    swarm.run(int(60 / swarm.dt))
    period = 1 / pacemaker_hz
    rec = Recorder.for_run(int(period / swarm.dt), 900, swarm.dt, raster=True, raster_rows=900)
    swarm.run(rec.ticks, rec)
    t, ids = rec.raster()
    first = {}
    for at, i in zip(t, ids, strict=True):
        first.setdefault(int(i), at)
    assert len(first) == 900, "the whole grid is entrained to the pacemaker's period"
    dist = topology.grid_distance(900, 15, 15)
    got = np.array([[dist[i], first[i]] for i in first])
    start = got[got[:, 0] <= 2, 1].min()
    delay = (got[:, 1] - start) % period
    assert np.corrcoef(got[:, 0], delay)[0, 1] > 0.8


def test_same_seed_same_flashes_different_seed_different():
    def flashes(seed):
        swarm = Swarm({**presets.resolve("ermentrout-800"), "swarm.seed": seed, "swarm.noise": 0.01})
        out = []
        for _ in range(3000):
            swarm.step()
            ids, times = swarm.flashes()
            out.extend(zip(ids.tolist(), times.tolist(), strict=True))
        return out

    assert flashes(3) == flashes(3)
    assert flashes(3) != flashes(4)


def test_step_and_run_agree():
    values = presets.resolve("pulse-sine")
    a, b = Swarm(values), Swarm(values)
    for _ in range(2000):
        a.step()
    b.run(2000)
    np.testing.assert_array_equal(a.state.phase, b.state.phase)


@pytest.mark.parametrize(
    ("name", "rel"),
    # measured big/small over seeds 0-2: pulse-sine 1.06-1.31 (larger swarms gather a little slower),
    # ermentrout-800 1.00-1.07, kuramoto-adaptive 0.89-1.17 (mean field: only finite-size noise differs)
    [("pulse-sine", 0.45), ("ermentrout-800", 0.15), ("kuramoto-adaptive", 0.3)],
)
def test_coupling_keeps_its_character_when_n_grows_tenfold(name, rel):
    small = run(presets.resolve(name), 30)[0]
    big = run(presets.resolve(name, [f"swarm.n={presets.resolve(name)['swarm.n'] * 10}"]), 30)[0]
    assert big["sync_time_s"] is not None
    assert big["sync_time_s"] == pytest.approx(small["sync_time_s"], rel=rel)


def test_external_flashes_entrain_and_regions_stay_local():
    values = {"swarm.model": "pulse", "swarm.n": 400, "swarm.topology": "grid", "swarm.neighbors": 1, "swarm.coupling": 0.05}
    swarm = Swarm(values)
    region = topology.grid_region(400, 0, 0, 3)
    before = swarm.state.phase.copy()
    swarm.inject(0.0, 5.0, region)
    swarm.step()
    moved = np.flatnonzero(np.abs(swarm.state.phase - (before + swarm.state.freq * swarm.dt) % 1) > 1e-9)
    assert set(moved) <= set(region) | set(swarm.flashes()[0])
    assert len(set(moved) & set(region)) > len(region) // 2


def test_damage_scramble_then_recover_and_silence():
    swarm = Swarm(presets.resolve("pulse-sine"))
    swarm.run(int(20 / swarm.dt))
    assert swarm.order_parameter() > 0.99
    swarm.damage(np.arange(100), "scramble")
    assert swarm.order_parameter() < 0.9
    swarm.run(int(30 / swarm.dt))
    assert swarm.order_parameter() > 0.99
    swarm.damage(np.arange(50), "silence")
    for _ in range(2000):
        swarm.step()
        assert np.all(swarm.flashes()[0] >= 50)
    synced = swarm.state.phase[50:].copy()
    swarm.damage(np.arange(50), "revive")
    revived = swarm.state.phase[:50]
    assert ((revived >= 0) & (revived < 1)).all()
    assert order_parameter(revived) < 0.5, "revived at random phases, not together (50 random phases: r ~ 0.14)"
    np.testing.assert_array_equal(swarm.state.phase[50:], synced)


def test_kuramoto_survives_silenced_fireflies():
    swarm = Swarm({"swarm.model": "kuramoto", "swarm.n": 2000, "swarm.coupling": 3.0})
    swarm.run(int(5 / swarm.dt))
    swarm.damage(np.arange(100), "silence")
    swarm.run(int(5 / swarm.dt))
    live = swarm.state.phase[100:]
    assert not np.isnan(live).any() and not np.isnan(swarm.state.freq).any()
    assert swarm.order_parameter() > 0.9


def test_recording_in_pieces_equals_one_run_and_flashes_add_up():
    values = presets.resolve("ermentrout-800")
    whole, pieces = Swarm(values), Swarm(values)
    a = Recorder.for_run(3000, 800, whole.dt)
    b = Recorder.for_run(3000, 800, pieces.dt)
    whole.run(3000, a)
    for chunk in (7, 993, 1000, 1000):
        pieces.run(chunk, b)
    np.testing.assert_array_equal(a.samples, b.samples)
    np.testing.assert_array_equal(a.counts, b.counts)
    assert whole.flashes_total == pieces.flashes_total == a.counts.sum()
    stepped = Swarm(values)
    for _ in range(3000):
        stepped.step()
    assert stepped.flashes_total == whole.flashes_total
    np.testing.assert_array_equal(stepped.state.freq, whole.state.freq)


def test_a_helper_started_before_the_first_sweep_claims_nothing():
    """A helper on a fresh board must wait for a sweep: on a zeroed board it ran chunk 0 with empty
    arguments while the stepping thread ran it too (seen as a 1e-6 divergence, half the runs)."""
    swarm = Swarm({"swarm.model": "kuramoto", "swarm.n": 2 * K.CHUNK})
    phase = swarm.state.phase.copy()
    sweep = swarm._sweep
    args = (sweep, swarm.state.phase, swarm.state.freq, swarm.fired, swarm.flash_ids, swarm.flash_times, swarm._scratch)
    sweep[K.SW_STOP] = 1
    K.kuramoto_helper(*args)  # compiled now, so the thread below runs at once
    sweep[K.SW_STOP] = 0
    helper = threading.Thread(target=K.kuramoto_helper, args=args)
    helper.start()
    # it has started when it has spun for a while: 50 ms of its own CPU time inside the kernel
    clock = time.pthread_getcpuclockid(helper.ident)
    deadline = time.monotonic() + 30
    while time.clock_gettime(clock) < 0.05 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert time.clock_gettime(clock) >= 0.05, "the helper thread never ran"
    sweep[K.SW_STOP] = 1
    helper.join(timeout=10)
    assert not helper.is_alive()
    assert sweep[K.SW_HELPED] == 0 and sweep[K.SW_DONE] == 0
    np.testing.assert_array_equal(swarm.state.phase, phase)


def test_a_kuramoto_run_shared_with_helper_threads_equals_one_thread_bit_for_bit():
    values = {
        "swarm.model": "kuramoto",
        "swarm.n": 5 * K.CHUNK + 123,  # six chunks, the last one short
        "swarm.coupling": 2.0,
        "swarm.freq_coupling": 0.5,
        "swarm.freq_dist": "gaussian",
        "swarm.freq_spread_hz": 0.3,
    }
    alone, shared = Swarm(values), Swarm(values, threads=4)
    ticks = 600
    recorders = [Recorder.for_run(ticks, swarm.n, swarm.dt, raster=True) for swarm in (alone, shared)]
    for swarm, recorder in zip((alone, shared), recorders, strict=True):
        swarm.run(ticks, recorder)
    assert alone.helped_chunks == 0
    assert shared.helped_chunks > 0 or usable_cpus() == 1, "the helper thread never took a chunk"
    assert not [t for t in threading.enumerate() if t.name == "firefly-sweep"], "helpers end with the run"
    np.testing.assert_array_equal(alone.state.phase, shared.state.phase)
    np.testing.assert_array_equal(alone.state.freq, shared.state.freq)
    a, b = recorders
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.samples, b.samples)
    for got, want in zip(a.raster(), b.raster(), strict=True):
        np.testing.assert_array_equal(got, want)
    assert a.counts.sum() > 0
