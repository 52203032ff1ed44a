"""The preset tuner: its search space, fitness, both optimisers, and whole tuning runs."""

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from firefly_midi import params as P
from firefly_midi import presets
from firefly_midi.cli import main
from firefly_midi.tune.cma import CMAES
from firefly_midi.tune.es import PATIENCE, SNES, utilities
from firefly_midi.tune.fitness import METRICS, MISSED_TOLERANCES, Target, distance, fitness, parse_target, standard_errors
from firefly_midi.tune.ga import Microbial, reflect
from firefly_midi.tune.prior import anchor
from firefly_midi.tune.space import Gene, Space, default_keys, parse_vary
from firefly_midi.tune.spec import prepare
from firefly_midi.tune.standings import Score, Standings
from firefly_midi.tune.stopping import DEFAULT_BUDGET_S, STALL_GENERATIONS, StopRule
from firefly_midi.tune.tuner import Tuner

TIMEOUT_S = 240  # every test here: a tuning run that hangs fails instead


@pytest.fixture(autouse=True)
def _timeout(request):
    """A deadline per test, unless pytest-timeout (which also uses SIGALRM) already gives one."""
    if request.config.pluginmanager.hasplugin("timeout"):
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"test ran past {TIMEOUT_S} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, TIMEOUT_S)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


# ----------------------------------------------------------------------------------------------- space


@given(st.floats(0.001, 10.0), st.floats(1.01, 1000.0), st.floats(0.0, 1.0))
def test_a_numeric_gene_stays_in_its_range_and_round_trips(lo, factor, x):
    gene = Gene("swarm.coupling", lo, min(lo * factor, 100.0), log=factor > 10)
    value = gene.value(x)
    assert gene.lo <= value <= gene.hi
    assert gene.value(gene.coordinate(value)) == pytest.approx(value, rel=1e-5)


@given(st.floats(0.0, 1.0))
def test_an_integer_gene_gives_integers_inside_its_range(x):
    gene = Gene("swarm.neighbors", 2.0, 60.0, log=True)
    value = gene.value(x)
    assert isinstance(value, int) and 2 <= value <= 60


def test_a_choice_gene_slices_the_unit_interval_evenly():
    gene = parse_vary("swarm.prc=constant,linear,sine", P.defaults())
    seen = [gene.value(x) for x in np.linspace(0, 1, 301)]
    assert set(seen) == {"constant", "linear", "sine"}
    assert gene.value(gene.coordinate("linear")) == "linear"


def test_vary_ranges_default_to_the_table_or_around_the_preset():
    base = presets.resolve("ermentrout-800")
    coupling = parse_vary("swarm.coupling", base)
    assert (coupling.lo, coupling.hi, coupling.log) == (0.0025, 0.04, True)
    noise = parse_vary("swarm.noise", base)  # 0 in the preset: the table's search span
    assert (noise.lo, noise.hi) == P.PARAMS["swarm.noise"].search
    explicit = parse_vary("swarm.neighbors=2:60", base)
    assert (explicit.lo, explicit.hi, explicit.log) == (2, 60, True)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("swarm.copling", "did you mean swarm.coupling"),
        ("swarm.coupling=0.1:0.01", "LO must be below HI"),
        ("swarm.coupling=0.1", "LO:HI"),
        ("swarm.coupling=0.1:500", "swarm.coupling must be"),
        ("mapping.channels", "can be tuned"),
        ("swarm.freq_min_hz", "give one"),  # 0 (automatic) in the defaults: nothing to vary around
        ("swarm.prc=sine", "at least two"),
    ],
)
def test_a_bad_vary_is_a_clear_error(text, says):
    with pytest.raises(P.ParamError, match=says):
        parse_vary(text, P.defaults())


def test_the_frequency_bounds_follow_the_tempo_unless_varied_themselves():
    base = presets.resolve("ermentrout-800")
    space = Space.build(base, ["swarm.freq_hz=0.5:2"])
    values = space.values(np.array([1.0]))
    assert values["swarm.freq_hz"] == 2.0
    assert values["swarm.freq_min_hz"] == pytest.approx(2 * base["swarm.freq_min_hz"], rel=1e-5)
    assert values["swarm.freq_max_hz"] == pytest.approx(2 * base["swarm.freq_max_hz"], rel=1e-5)
    P.check_consistency(values)
    both = Space.build(base, ["swarm.freq_hz=0.5:2", "swarm.freq_max_hz=1:3"])
    assert both.values(np.array([1.0, 0.0]))["swarm.freq_min_hz"] == base["swarm.freq_min_hz"]


def test_default_keys_fit_the_model():
    assert default_keys(presets.resolve("ermentrout-800"), ["tempo_bpm"]) == ["swarm.coupling", "swarm.freq_hz", "swarm.neighbors"]
    assert default_keys(presets.resolve("pulse-sine"), ["sync_time_s"]) == ["swarm.coupling"]  # the tempo is kept


def test_the_start_point_is_the_preset():
    base = presets.resolve("ermentrout-800")
    space = Space.build(base, [])
    assert space.varied(space.start()) == {k: base[k] for k in space.varied(space.start())}


# --------------------------------------------------------------------------------------------- fitness


def test_distance_is_the_weighted_rms_in_tolerances():
    targets = [Target("tempo_bpm", 90.0, 1.0), Target("sync_time_s", 20.0, 2.0, weight=3.0)]
    assert distance(targets, {"tempo_bpm": 90.0, "sync_time_s": 20.0}, 60.0) == 0.0
    assert distance(targets, {"tempo_bpm": 92.0, "sync_time_s": 20.0}, 60.0) == pytest.approx(math.sqrt(4 / 4))
    assert distance(targets, {"tempo_bpm": 90.0, "sync_time_s": 24.0}, 60.0) == pytest.approx(math.sqrt(3 * 4 / 4))


def test_a_time_that_never_came_counts_as_the_run_length_and_more():
    target = Target("sync_time_s", 20.0, 2.0)
    assert target.error(None, 60.0) == pytest.approx(20.0 + MISSED_TOLERANCES)
    assert target.error(None, 60.0) > target.error(59.0, 60.0)
    assert Target("tempo_bpm", 90.0, 1.0).error(None, 60.0) > 5


def test_fitness_averages_over_the_seeds():
    targets = [Target("tempo_bpm", 90.0, 1.0)]
    runs = [{"tempo_bpm": 90.0}, {"tempo_bpm": 94.0}]
    assert fitness(targets, runs, 30.0) == pytest.approx(2.0)


def test_targets_parse_with_default_tolerances():
    assert parse_target("tempo_bpm=90") == Target("tempo_bpm", 90.0, METRICS["tempo_bpm"].tolerance)
    assert parse_target("sync_time_s=20") == Target("sync_time_s", 20.0, 2.0)
    assert parse_target("sync_time_s=2").tolerance == 0.5  # the floor of a relative tolerance
    assert parse_target(" gap_cv = 0.05:0.01:2 ") == Target("gap_cv", 0.05, 0.01, 2.0)


@given(st.text(max_size=40))
def test_any_target_text_parses_or_is_a_param_error(text):
    try:
        target = parse_target(text)
    except P.ParamError as exc:
        assert "--target" in str(exc)
    else:
        assert target.metric in METRICS and target.tolerance > 0


# ------------------------------------------------------------------------------------------ optimisers


def _sphere(x: np.ndarray, centre: float = 0.3) -> np.ndarray:
    return ((np.atleast_2d(x) - centre) ** 2).sum(axis=1)


def _optimise(make, generations: int) -> list[float]:
    opt, best = make(), []
    for _ in range(generations):
        candidates = opt.ask()
        costs = _sphere(candidates)
        opt.tell(costs)
        best.append(min(best[-1] if best else np.inf, costs.min()))
    return best


def test_the_microbial_ga_finds_the_minimum_and_never_loses_its_best():
    ga = Microbial(4, 20, np.random.default_rng(1))
    history = []
    for _ in range(150):
        ga.tell(_sphere(ga.ask()))
        history.append(ga.best()[1])
    assert history[-1] < 1e-3
    assert all(b <= a for a, b in itertools.pairwise(history))  # the winner is never overwritten


def test_a_microbial_tournament_infects_the_loser_only():
    rng = np.random.default_rng(0)
    ga = Microbial(6, 2, rng)
    ga.tell(np.array([0.0, 1.0]))  # individual 0 wins every tournament
    winner, loser = ga.x[0].copy(), ga.x[1].copy()
    child = ga.ask()[0]
    ga.tell(np.array([2.0]))
    assert np.array_equal(ga.x[0], winner)
    from_winner = np.isclose(child, winner)
    from_loser = np.isclose(child, loser)
    assert (from_winner | from_loser).sum() >= 5  # all genes but the mutated one come from a parent
    assert np.all((child >= 0) & (child <= 1))


@given(st.floats(-5, 5))
def test_reflect_folds_into_the_unit_interval(x):
    y = float(reflect(np.array(x)))
    assert 0.0 <= y <= 1.0
    if 0.0 <= x <= 1.0:
        assert y == x


@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=50))
def test_nes_utilities_sum_to_zero_and_follow_the_ranks(values):
    u = utilities(np.array(values))
    assert abs(u.sum()) < 1e-9
    order = np.argsort(values, kind="stable")  # lowest cost first: the highest utility
    assert np.all(np.diff(u[order]) <= 0) and u[order[0]] > 0 > u[order[-1]]
    assert np.all(u[order[len(values) // 2 + 1 :]] == u[order[-1]])  # the worse half weighs the same, whatever its costs


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_evolution_strategies_descend_to_the_minimum(optimizer):
    es = SNES(3, 16, np.random.default_rng(2), np.full(3, 0.9), optimizer=optimizer)
    best = _optimise(lambda: es, 60)
    assert best[-1] < 1e-4 < 0.2 < best[0]
    assert np.abs(es.mean - 0.3).max() < 0.01  # the mean itself, not just a lucky sample, found the centre


def test_es_narrows_sigma_per_key_to_the_scale_of_the_cost():
    """Issue #19: a tolerance 100 times narrower along one key than along the other.  Within 40
    generations, σ narrows along the narrow key far more than along the wide one, and samples land in
    the narrow tolerance, where a shared σ that reset every few generations never came."""
    es = SNES(2, 16, np.random.default_rng(3), np.array([0.6, 0.6]))
    rng, hits = np.random.default_rng(0), 0
    for _ in range(40):
        x = es.ask()
        cost = np.hypot((x[:, 0] - 0.4) / 0.002, (x[:, 1] - 0.4) / 0.2)  # in tolerances, like the tuner's fitness
        es.tell(cost + 0.1 * rng.standard_normal(len(x)))  # and noisy, like a swarm's
        hits += int((cost < 1).sum())
    assert es.sigma[0] < es.sigma[1] / 5
    assert abs(es.mean[0] - 0.4) < 0.002
    assert hits >= 16


def test_es_restarts_from_its_best_when_nothing_better_comes():
    es = SNES(2, 8, np.random.default_rng(1), np.full(2, 0.5))
    es.tell(_sphere(es.ask()))
    best_x = es.best_x.copy()
    for _ in range(PATIENCE):
        es.ask()
        es.tell(np.full(8, 1.0))  # nothing beats the first generation's best
    assert es.restarts == 1
    assert np.array_equal(es.mean, best_x) and np.all(es.sigma == es.sigma0)


def test_es_samples_stay_in_the_unit_cube_as_mirrored_pairs():
    es = SNES(3, 8, np.random.default_rng(0), np.array([0.0, 0.5, 1.0]), sigma=0.3)
    x = es.ask()
    assert np.all((x >= 0) & (x <= 1))
    assert np.allclose(x[:4, 1] - 0.5, 0.5 - x[4:, 1])  # inside the cube, a pair is θ ± σε


def test_es_steps_up_the_gradient_of_the_ranks():
    es = SNES(1, 2, np.random.default_rng(0), np.array([0.5]), sigma=0.1)
    plus_minus = es.ask()
    es.tell(np.array([0.0, 1.0]))  # the + side is better: the mean moves toward it
    assert np.sign(es.mean[0] - 0.5) == np.sign(plus_minus[0, 0] - plus_minus[1, 0])


def test_cma_es_finds_the_minimum_and_restarts_when_it_has_converged():
    cma = CMAES(3, 8, np.random.default_rng(4), np.full(3, 0.9))
    best = _optimise(lambda: cma, 120)
    assert best[-1] < 1e-6 < 0.2 < best[0]
    assert cma.restarts >= 1  # converged long before 120 generations: restarted around its best, not idle


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: Microbial(3, 8, rng),
        lambda rng: SNES(3, 8, rng, np.full(3, 0.5)),
        lambda rng: CMAES(3, 8, rng, np.full(3, 0.5)),
    ],
)
def test_an_optimiser_restored_from_its_state_carries_on_identically(make):
    straight, paused = make(np.random.default_rng(5)), make(np.random.default_rng(99))
    for _ in range(5):
        straight.tell(_sphere(straight.ask()))
    saved = json.loads(json.dumps(straight.state()))
    paused.restore(saved)
    for _ in range(5):
        a, b = straight.ask(), paused.ask()
        assert np.array_equal(a, b)
        straight.tell(_sphere(a))
        paused.tell(_sphere(b))


# ---------------------------------------------------------------------------------------- tuning runs
TARGETS = ["sync_time_s=3", "tempo_bpm=80"]


def _spec(tmp_path, name="out.toml", targets=TARGETS, **options):
    options = {"algo": "ga", "population": 4, "seeds": 2, "holdout": 2, "anchor": False, **options}
    vary = ["swarm.coupling", "swarm.freq_hz=0.8:1.6"]
    return prepare("pulse-sine", tmp_path / name, targets, vary, ["swarm.n=50"], seconds=10.0, **options)


@pytest.mark.parametrize("algo", ["ga", "es", "cmaes"])
def test_a_tuning_run_writes_a_preset_that_loads_and_says_how_it_was_tuned(tmp_path, algo):
    spec = _spec(tmp_path, algo=algo)
    result = Tuner(spec, jobs=2).run(generations=3)
    text = spec.output.read_text()
    values = presets.load(str(spec.output))
    assert values["swarm.n"] == 50 and values["swarm.model"] == "pulse"
    assert values["swarm.coupling"] == result.values["swarm.coupling"]
    assert "Tuned by `firefly-midi tune` from the preset pulse-sine" in text
    assert "sync_time_s = 3 (±0.5)" in text and f"Algorithm: {algo}" in text
    assert "Sounds like" in text  # the base preset's own comment is kept
    assert result.evaluations == (4 + 2 * 2 if algo == "ga" else 3 * 4)
    checks = len(result.holdout_history)
    assert result.simulations == 2 * (result.evaluations - result.infeasible) + 2 * checks
    assert checks >= 1 and result.holdout is not None  # the best is always checked on the hold-out seeds
    assert "Hold-out seeds 2..3, never searched: " in text and f"fitness {result.holdout.fitness:.3g}" in text


def test_the_tuner_improves_on_the_preset(tmp_path):
    spec = _spec(tmp_path, population=8)
    tuner = Tuner(spec, jobs=2)
    start = tuner._evaluate(spec.space.start()[None, :], _InlinePool(), spec.sim_seeds())[0][0]
    result = tuner.run(generations=6)
    assert result.fitness < start


class _InlinePool:
    def map(self, fn, items):
        return map(fn, items)


def test_same_seed_same_result_whatever_the_threads(tmp_path):
    one = Tuner(_spec(tmp_path, "a.toml"), jobs=1).run(generations=3)
    two = Tuner(_spec(tmp_path, "b.toml"), jobs=2).run(generations=3)
    assert _path(one) == _path(two) and one.values == two.values
    other = Tuner(_spec(tmp_path, "c.toml", seed=1), jobs=2).run(generations=3)
    assert _path(other) != _path(one)
    strip = lambda p: p.read_text()  # noqa: E731
    assert strip(tmp_path / "a.toml") == strip(tmp_path / "b.toml")


def _path(result) -> list[tuple[int, float]]:
    """The best fitness against evaluations (without the wall times, which no two runs share)."""
    return [(e, f) for e, f, _ in result.history]


@pytest.mark.parametrize("algo", ["es", "cmaes"])
def test_a_stopped_run_resumes_to_the_same_result(tmp_path, algo):
    def spec(name):  # a target never met (r is ~1 or ~0), so the run goes on to the cap
        return _spec(tmp_path, name, [*TARGETS, "order_parameter=0.5:0.001"], algo=algo, anchor=True)

    straight = Tuner(spec("s.toml"), jobs=2).run(generations=4)
    checkpoint = tmp_path / "r.checkpoint.json"
    first = Tuner(spec("r.toml"), jobs=2, checkpoint=checkpoint)
    first.run(generations=2)
    resumed = Tuner(spec("r.toml"), jobs=2, checkpoint=checkpoint)
    assert resumed.resumed_from == 2
    result = resumed.run(generations=4)
    assert _path(result) == _path(straight) and result.values == straight.values
    assert result.holdout_history == straight.holdout_history


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    checkpoint = tmp_path / "x.checkpoint.json"
    Tuner(_spec(tmp_path), jobs=1, checkpoint=checkpoint).run(generations=1)
    with pytest.raises(P.ParamError, match="another tuning run"):
        Tuner(_spec(tmp_path, seed=7), jobs=1, checkpoint=checkpoint)
    assert Tuner(_spec(tmp_path, seed=7), jobs=1, checkpoint=checkpoint, restart=True).generation == 0


def test_written_presets_are_readable_like_any_file_the_user_writes(tmp_path):
    spec = _spec(tmp_path)
    Tuner(spec, jobs=1).run(generations=1)
    assert spec.output.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_ctrl_c_stops_cleanly_and_keeps_the_best_so_far(tmp_path):
    spec = _spec(tmp_path, algo="cmaes")
    checkpoint = tmp_path / "out.checkpoint.json"

    def interrupt_after_two(tuner):
        if tuner.generation == 2:
            raise KeyboardInterrupt

    result = Tuner(spec, jobs=2, checkpoint=checkpoint).run(generations=10, progress=interrupt_after_two)
    assert result.interrupted and result.generations == 2
    assert presets.load(str(spec.output))["swarm.coupling"] == result.values["swarm.coupling"]
    saved = json.loads(checkpoint.read_text())
    assert saved["generation"] == 2
    kept = Tuner(spec, jobs=2, checkpoint=checkpoint)  # the checkpoint keeps the best too
    assert kept.standings.best is not None and np.array_equal(kept.standings.best.x, result.best.x)


def test_the_budget_and_the_stop_fitness_end_a_run_early(tmp_path):
    assert Tuner(_spec(tmp_path), jobs=2).run(budget_s=0.0, generations=50).generations == 0
    result = Tuner(_spec(tmp_path), jobs=2).run(stop_at=1e9, generations=50)
    assert result.done and result.stop_reason == "held" and result.generations == 1


def test_contradicting_parameters_are_infeasible_not_fatal(tmp_path):
    vary = ["swarm.freq_hz=0.5:2", "swarm.freq_max_hz=0.6:3"]  # often below freq_hz: ermentrout refuses
    spec = prepare("ermentrout-800", tmp_path / "e.toml", ["tempo_bpm=70"], vary, ["swarm.n=100"], seconds=5.0, population=8, anchor=False)
    result = Tuner(spec, jobs=2).run(generations=3)
    assert result.infeasible > 0 and math.isfinite(result.fitness)
    P.check_consistency(result.values)


# ---------------------------------------------------------------------------------------- command line


def test_tune_on_the_command_line_prints_json(tmp_path, capsys):
    out = tmp_path / "cli.toml"
    argv = ["tune", "--preset", "pulse-sine", "--set", "swarm.n=50", "--seconds", "8", "--population", "4"]
    argv += ["--generations", "2", "--seeds", "1", "--target", "order_parameter=0.5:0.001", "--vary", "swarm.freq_hz=0.8:1.6"]
    argv += ["--algo", "ga", "--json", "-o", str(out)]
    assert main(argv) == 0
    said = capsys.readouterr()
    report = json.loads(said.out)
    assert "stopping when every target is met on the search and the hold-out seeds, or when 2 generations have run" in said.err
    assert set(report["best"]) == {"swarm.freq_hz"} and report["evaluations"] == 6
    assert report["stop_reason"] == "generations" and not report["done"]
    assert report["holdout_fitness"] is not None and len(report["holdout_seeds"]) == 5
    assert report["metrics"]["order_parameter"] >= 0 and out.is_file()
    assert set(report["targets_met"]) == {"order_parameter"}
    assert (tmp_path / "cli.checkpoint.json").exists(), "a capped run leaves its checkpoint: a larger cap goes on from it"
    assert main(argv) == 0  # the same command again: the same answer
    assert json.loads(capsys.readouterr().out)["best"] == report["best"]
    assert main([*argv[:-3], "-o", str(out)]) == 0  # in words: each target met or not
    said = capsys.readouterr().out
    assert "order_parameter: " in said and "(hold-out), wanted 0.5 ± 0.001" in said and "not done" in said


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--target", "tempo=90"], "unknown metric"),
        (["--target", "sync_tme_s=10"], "did you mean sync_time_s?"),
        (["--target", "tempo_bpm=72bpm"], "'72bpm' is not a number"),
        (["--target", "tempo_bpm=72", "--vary", "swarm.coupling=0:500"], "--vary 'swarm.coupling=0:500': swarm.coupling must be"),
        (["--target", "recovery_time_s=5"], "needs a --damage"),
        (["--target", "tempo_bpm=90", "--vary", "swarm.nosie"], "did you mean swarm.noise"),
        (["--target", "tempo_bpm=90", "--population", "0"], "--population"),
        (["--target", "tempo_bpm=90", "--algo", "es", "--population", "7"], "--population must be an even number"),
        (["--target", "tempo_bpm=90", "--sigma", "0"], "--sigma must be a positive number"),
        (["--target", "tempo_bpm=90", "--lr", "nan"], "--lr must be a positive number"),
    ],
)
def test_bad_tune_arguments_exit_2_with_a_message(tmp_path, capsys, extra, says):
    assert main(["tune", "--preset", "pulse-sine", "-o", str(tmp_path / "x.toml"), *extra]) == 2
    assert says in capsys.readouterr().err


def test_the_tuner_can_evolve_swarms_that_heal_fast(tmp_path):
    vary = ["swarm.coupling=0.05:1"]
    spec = prepare(
        "pulse-sine", tmp_path / "heal.toml", ["recovery_time_s=0.5"], vary, ["swarm.n=50"], ["10:scramble:0.5"], population=6, seeds=2
    )
    assert spec.seconds >= 10 + 10  # room after the damage to see the recovery
    tuner = Tuner(spec, jobs=2)
    start = tuner._evaluate(spec.space.start()[None, :], _InlinePool(), spec.sim_seeds())
    result = tuner.run(generations=4)
    assert result.fitness < start[0][0]
    assert result.best.search.metrics["recovery_time_s"] < start[1][0]["recovery_time_s"]
    assert "Damage: 10:scramble:0.5" in spec.output.read_text()


@pytest.mark.slow  # a real tune process until its first checkpoint
def test_sigint_to_a_running_tune_keeps_the_best_preset(tmp_path):
    """A real Ctrl-C: the process exits 130, saying where the best preset so far is, and it loads."""
    out = tmp_path / "sig.toml"
    argv = [sys.executable, "-m", "firefly_midi", "tune", "--preset", "pulse-sine", "--set", "swarm.n=50", "--seconds", "10"]
    # The coupling alone cannot bring pulse-sine's 80 BPM down to 70: the run goes on until the signal.
    argv += ["--target", "tempo_bpm=70", "--vary", "swarm.coupling", "--population", "4", "--seeds", "1", "-o", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / "sig.checkpoint.json"
    deadline = time.monotonic() + 120
    while not checkpoint.is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"the best preset so far is in {out}" in err and "Traceback" not in err
    assert presets.load(str(out))["swarm.model"] == "pulse"
    assert json.loads(checkpoint.read_text())["standings"], "the checkpoint keeps the best so far too"


# ------------------------------------------------------------------------------- budgets and hold-outs


def _tiny(tmp_path, targets, vary, **options):
    """A problem of a few milliseconds a simulation: 20 fireflies for 5 s, one seed each side."""
    options = {"population": 4, "seeds": 1, "holdout": 1, **options}
    return prepare("pulse-sine", tmp_path / "tiny.toml", targets, vary, ["swarm.n=20"], seconds=5.0, **options)


def test_a_budget_run_stops_as_soon_as_the_targets_hold(tmp_path):
    spec = _tiny(tmp_path, ["tempo_bpm=100"], ["swarm.freq_hz=0.5:3"], seeds=2, holdout=3)
    result = Tuner(spec, jobs=2).run(budget_s=60.0)
    assert result.done and result.stop_reason == "held"
    assert result.wall_s < 30.0  # well before the budget
    assert all(result.met(spec).values()) and all(result.holdout_met(spec).values())
    assert "; holds." in spec.output.read_text()


def test_a_budget_run_goes_on_past_the_old_twenty_generations_while_targets_are_unmet(tmp_path):
    spec = _tiny(tmp_path, ["tempo_bpm=70"], ["swarm.coupling"], algo="cmaes")  # coupling cannot slow 80 BPM to 70
    budget = 6.0
    result = Tuner(spec, jobs=2).run(budget_s=budget)
    assert result.stop_reason == "budget" and not result.done
    assert result.generations > 20
    assert result.wall_s <= budget * 1.05  # kept, the last hold-out check included (a generation's timing jitter aside)
    assert result.holdout is not None


def test_without_a_budget_or_a_cap_the_default_rule_applies_and_says_so():
    rule = StopRule.of()
    assert (rule.budget_s, rule.generations, rule.stall_generations) == (DEFAULT_BUDGET_S, None, STALL_GENERATIONS)
    assert f"the best has not improved for {STALL_GENERATIONS} generations" in rule.describe()
    assert StopRule.of(budget_s=50).stall_generations is None  # a budget is spent, not cut short by a stall
    assert "or when 50 s have passed" in StopRule.of(budget_s=50, stop_at=1).describe()


def test_a_stalled_run_stops_under_the_default_rule(tmp_path):
    spec = _tiny(tmp_path, ["tempo_bpm=70"], ["swarm.coupling"], algo="ga")
    result = Tuner(spec, jobs=2).run(rule=StopRule(stall_generations=3, budget_s=120))
    assert result.stop_reason == "stalled" and result.generations >= 3


def test_hold_out_seeds_are_never_searched(tmp_path):
    spec = _spec(tmp_path, seeds=3, holdout=5)
    assert not set(spec.sim_seeds()) & set(spec.holdout_seeds()) and len(set(spec.holdout_seeds())) == 5


def test_a_best_that_fails_on_hold_out_is_re_ranked_on_all_its_seeds_and_the_next_is_checked():
    targets = [Target("tempo_bpm", 90.0, 1.0)]
    table = Standings(targets, seeds=3, holdout=5)
    lucky, steady = np.array([0.1]), np.array([0.2])
    table.offer(lucky, Score(0.1, {"tempo_bpm": 90.1}))
    table.offer(steady, Score(0.5, {"tempo_bpm": 90.5}))
    assert [c.x[0] for c in table.to_check()] == [0.1, 0.2]  # both promising, best first
    table.record(table.best, Score(3.0, {"tempo_bpm": 93.0}))  # the lucky one fails on unseen seeds
    assert not table.done and table.best.x[0] == 0.2  # (3 × 0.1 + 5 × 3) / 8 ranks below 0.5
    table.record(table.best, Score(0.6, {"tempo_bpm": 90.6}))
    assert table.done and table.best.x[0] == 0.2


def test_a_hold_out_mean_that_scrapes_the_edge_of_its_tolerance_does_not_hold():
    targets = [Target("sync_time_s", 25.0, 2.5)]
    table = Standings(targets, seeds=3, holdout=5)
    table.offer(np.array([0.5]), Score(0.5, {"sync_time_s": 24.0}, {"sync_time_s": 0.3}))
    table.record(table.best, Score(0.9, {"sync_time_s": 22.9}, {"sync_time_s": 0.6}))  # 2.1 + 0.6 > 2.5
    assert not table.done
    table.record(table.best, Score(0.9, {"sync_time_s": 22.9}, {"sync_time_s": 0.3}))  # 2.1 + 0.3 ≤ 2.5
    assert table.done


def test_standard_errors_are_of_the_mean_over_the_seeds():
    targets = [Target("tempo_bpm", 90.0, 1.0), Target("sync_time_s", 10.0, 1.0)]
    runs = [{"tempo_bpm": 89.0, "sync_time_s": 9.0}, {"tempo_bpm": 91.0, "sync_time_s": None}]
    errors = standard_errors(targets, runs)
    assert errors["tempo_bpm"] == pytest.approx(1.0) and errors["sync_time_s"] is None


def test_the_target_tempo_anchors_the_start_of_the_search(tmp_path):
    """A slowed swarm (tempo 0.9 × 60 × freq_hz): two scaling steps land within the tolerance."""
    space = Space.build(presets.resolve("pulse-sine"), ["swarm.coupling", "swarm.freq_hz=0.5:3"])
    targets = [Target("tempo_bpm", 100.0, 1.0)]
    calls = []

    def evaluate(x):
        tempo = 0.9 * 60 * space.values(x[0])["swarm.freq_hz"] * (1 - 0.05 * space.values(x[0])["swarm.freq_hz"])
        calls.append(tempo)
        return np.array([abs(tempo - 100)]), [{"tempo_bpm": tempo}]

    start = anchor(space, targets, space.start(), evaluate)
    assert abs(calls[0] - 100) > 20 and abs(min(calls, key=lambda t: abs(t - 100)) - 100) < 5
    assert space.values(start)["swarm.coupling"] == pytest.approx(space.values(space.start())["swarm.coupling"], rel=1e-5)
    calls.clear()  # no tempo asked for: the start is the preset's, and nothing is simulated
    assert np.array_equal(anchor(space, [Target("order_parameter", 1.0, 0.1)], space.start(), evaluate), space.start()) and not calls
