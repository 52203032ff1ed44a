"""simulate --damage: parsing, who is hit, recovery_time, and a swarm that heals."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from firefly_midi import presets
from firefly_midi.cli import main
from firefly_midi.params import ParamError
from firefly_midi.simulate import simulate
from firefly_midi.swarm import Swarm, topology
from firefly_midi.swarm.damage import Damage, parse, select
from firefly_midi.swarm.metrics import Recorder, decimate, recovery_time

# pulse-sine at n = 200 is synchronised (r > 0.99) by ~10 s and heals a half scramble at 15 s in ~8 s.
SECONDS = 30.0
AT_S = 15.0


@pytest.fixture(scope="module")
def pulse_sine():
    return presets.resolve("pulse-sine", ["swarm.n=200"], None)


# ------------------------------------------------------------------------------------------ parse
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20:scramble:0.5", Damage(20.0, "scramble", 0.5)),
        ("20:silence:0.3@0.5,0.5", Damage(20.0, "silence", 0.3, region=(0.5, 0.5))),
        ("20:silence:0.3:5", Damage(20.0, "silence", 0.3, for_s=5.0)),
        ("20:silence:30%@0,1:2.5", Damage(20.0, "silence", 0.3, region=(0.0, 1.0), for_s=2.5)),
        ("0:SCRAMBLE:100%", Damage(0.0, "scramble", 1.0)),
        ("7.5:scramble:1", Damage(7.5, "scramble", 1.0)),
    ],
)
def test_parse_accepts(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "3 or 4 fields"),
        ("20:scramble", "3 or 4 fields"),
        ("20:scramble:0.5:1:2", "3 or 4 fields"),
        ("20:melt:0.5", "KIND must be"),
        ("soon:scramble:0.5", "AT_S must be a number"),
        ("-1:scramble:0.5", "AT_S must be at least 0"),
        ("inf:scramble:0.5", "AT_S must be finite"),
        ("20:scramble:0", "AMOUNT must be"),
        ("20:scramble:1.5", "AMOUNT must be"),
        ("20:scramble:150%", "AMOUNT must be"),
        ("20:scramble:nan", "AMOUNT must be finite"),
        ("20:scramble:0.5:5", "only follows silence"),
        ("20:silence:0.5:0", "must be positive"),
        ("20:silence:0.5@0.5", "ROW,COL"),
        ("20:silence:0.5@2,0.5", "ROW,COL must each be in 0..1"),
    ],
)
def test_parse_refuses_naming_the_flag_and_the_form(text, why):
    with pytest.raises(ParamError) as refused:
        parse(text)
    assert why in str(refused.value)
    assert "--damage" in str(refused.value) and "AT_S:KIND:AMOUNT" in str(refused.value)


@given(st.one_of(st.text(), st.text(alphabet="0123456789.:@,%-+e naifscramblesilence", max_size=40)))
def test_parse_of_anything_gives_a_damage_or_a_param_error(text):
    try:
        damage = parse(text)
    except ParamError:
        return
    assert damage.kind in ("scramble", "silence") and 0 < damage.amount <= 1 and damage.at_s >= 0


# ----------------------------------------------------------------------------------------- select
@pytest.mark.parametrize(("amount", "n"), [(0.5, 200), (0.3, 101), (1.0, 7), (0.001, 200)])
def test_select_is_deterministic_and_the_right_size(amount, n):
    hit = select(Damage(10.0, "scramble", amount), n, seed=3)
    assert hit.dtype == np.int64 and hit.size == round(amount * n)
    assert np.array_equal(hit, select(Damage(10.0, "scramble", amount), n, seed=3))
    assert np.array_equal(hit, np.unique(hit)) and (hit.size == 0 or 0 <= hit[0] <= hit[-1] < n)


def test_select_draws_other_fireflies_for_another_seed_or_time():
    hit = select(Damage(10.0, "scramble", 0.5), 200, seed=0)
    assert not np.array_equal(hit, select(Damage(10.0, "scramble", 0.5), 200, seed=1))
    assert not np.array_equal(hit, select(Damage(11.0, "scramble", 0.5), 200, seed=0))


@pytest.mark.parametrize(("n", "region"), [(900, (0.5, 0.5)), (200, (0.5, 0.5)), (200, (0.0, 0.0)), (1000, (1.0, 0.25))])
def test_select_in_a_region_is_a_disc_around_its_centre(n, region):
    hit = select(Damage(10.0, "silence", 0.3, region=region), n, seed=0)
    assert hit.size == round(0.3 * n)
    rows, cols = topology.grid_shape(n)
    distance = topology.grid_distance(n, region[0] * (rows - 1), region[1] * (cols - 1))
    missed = np.setdiff1d(np.arange(n), hit)
    assert distance[hit].max() <= distance[missed].min(), "every firefly hit is nearer the centre than every one spared"
    assert np.argmin(distance) in hit


# ---------------------------------------------------------------------------------- recovery_time
TIMES = np.arange(1, 101) * 0.1  # 0.1 .. 10 s


def series(*pieces):
    """r as (value, samples) pieces, 100 samples in all."""
    r = np.concatenate([np.full(count, value) for value, count in pieces])
    assert r.size == TIMES.size
    return r


def test_recovery_time_is_the_start_of_the_last_stretch_back_near_r_before():
    r = series((1.0, 50), (0.5, 10), (0.97, 5), (0.9, 5), (0.99, 30))  # damage after sample 50 (t = 5 s)
    assert recovery_time(TIMES, r, 5.0, 1.0) == pytest.approx(7.1 - 5.0)
    assert recovery_time(TIMES, r, 5.0, 1.0, tolerance=0.2) == pytest.approx(6.1 - 5.0)


def test_recovery_time_zero_when_r_never_fell_and_none_when_it_never_came_back():
    assert recovery_time(TIMES, series((1.0, 50), (0.99, 50)), 5.0, 1.0) == 0.0
    assert recovery_time(TIMES, series((1.0, 50), (0.5, 49), (1.0, 1)), 5.0, 1.0) == pytest.approx(10.0 - 5.0)
    assert recovery_time(TIMES, series((1.0, 50), (0.5, 50)), 5.0, 1.0) is None
    assert recovery_time(TIMES, series((1.0, 100)), 10.0, 1.0) is None, "no sample after the damage"


def test_recovery_time_ignores_what_came_before_the_damage():
    assert recovery_time(TIMES, series((0.2, 50), (1.0, 50)), 5.0, 1.0) == 0.0


def test_decimate_keeps_at_most_the_asked_points_and_the_first():
    values = np.arange(1701)
    kept = decimate(values, 400)
    assert kept.size == 400 and (kept[0], kept[-1]) == (0, 1700) and np.all(np.diff(kept) > 0)
    assert np.array_equal(decimate(values[:10], 400), values[:10])


# ------------------------------------------------------------------------------------- simulate
def test_without_damage_the_run_is_the_one_kernel_call_it_always_was(pulse_sine):
    result, _, recorder = simulate(pulse_sine, SECONDS)
    swarm = Swarm(pulse_sine)
    ticks = round(SECONDS / swarm.dt)
    alone = Recorder.for_run(ticks, swarm.n, swarm.dt)
    swarm.run(ticks, alone)
    expected = alone.summary(swarm.dt, swarm.state.phase)
    assert result["flashes"] == expected["flashes"] and result["sync_time_s"] == expected["sync_time_s"]
    assert np.array_equal(recorder.samples, alone.samples)
    assert "damage" not in result and "recovery_time_s" not in result


def test_a_scrambled_swarm_falls_apart_then_heals(pulse_sine):
    clean, _, clean_recorder = simulate(pulse_sine, SECONDS)
    result, swarm, recorder = simulate(pulse_sine, SECONDS, damage=[parse(f"{AT_S}:scramble:0.5")])
    (event,) = result["damage"]
    rows = round(AT_S / (recorder.sample_every * swarm.dt))
    assert np.array_equal(recorder.samples[:rows], clean_recorder.samples[:rows]), "before the damage nothing changes"
    assert event["fireflies"] == 100 and event["r_before"] > 0.99
    assert event["r_min_after"] < event["r_before"] - 0.3
    assert 0 < result["recovery_time_s"] == event["recovery_time_s"] < SECONDS - AT_S
    assert result["flashes"] != clean["flashes"]
    t, r = np.array(event["series"]["t"]), np.array(event["series"]["r"])
    assert t.size == r.size <= 400 and AT_S - 2.0 < t[0] < AT_S and t[-1] == pytest.approx(SECONDS)
    assert r[t > event["recovery_time_s"] + AT_S].min() >= event["r_before"] - 0.02


def test_silence_alone_costs_no_synchrony_and_a_revival_is_timed_from_its_return(pulse_sine):
    result, swarm, _ = simulate(pulse_sine, SECONDS, damage=[parse(f"{AT_S}:silence:0.3")])
    (dark,) = result["damage"]
    assert np.isnan(swarm.state.phase).sum() == 60
    assert dark["recovery_time_s"] == 0.0 and dark["r_min_after"] >= dark["r_before"] - 0.02, "r counts only the live fireflies"
    result, swarm, _ = simulate(pulse_sine, SECONDS, damage=[parse(f"{AT_S}:silence:0.3@0.5,0.5:2")])
    (revived,) = result["damage"]
    assert not np.isnan(swarm.state.phase).any()
    assert revived["r_min_after"] < revived["r_before"] - 0.1
    assert 0 < revived["recovery_time_s"] < SECONDS - AT_S - 2


def test_damage_to_an_unsynchronised_swarm_has_no_recovery_and_says_why(pulse_sine):
    result, _, _ = simulate(pulse_sine, 5.0, damage=[parse("2:scramble:0.5")])
    assert result["recovery_time_s"] is None and "not synchronised" in result["damage"][0]["note"]


def test_several_damages_are_reported_in_time_order_each_up_to_the_next(pulse_sine):
    damages = [parse("22:silence:0.3:3"), parse(f"{AT_S}:scramble:0.5")]
    result, _, _ = simulate(pulse_sine, SECONDS, damage=damages)
    first, second = result["damage"]
    assert (first["at_s"], second["at_s"]) == (AT_S, 22.0)
    assert first["series"]["t"][-1] <= 22.0
    assert result["recovery_time_s"] == first["recovery_time_s"]


def test_damage_outside_the_run_is_refused(pulse_sine):
    with pytest.raises(ValueError, match="within the run"):
        simulate(pulse_sine, 5.0, damage=[parse("5:scramble:0.5")])


# ------------------------------------------------------------------------------------------- CLI
def test_cli_json_has_the_recovery_and_the_series(capsys):
    argv = ["simulate", "--preset", "pulse-sine", "--set", "swarm.n=200", "--seconds", "30", "--json", "--damage", "15:scramble:50%"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["recovery_time_s"] > 0
    assert out["damage"][0]["series"]["r"] and len(out["damage"][0]["series"]["t"]) == len(out["damage"][0]["series"]["r"])


@pytest.mark.parametrize(("value", "message"), [("15:scramble", "--damage '15:scramble'"), ("40:scramble:0.5", "--damage at 40 s")])
def test_cli_bad_damage_exits_2_naming_the_flag(capsys, value, message):
    assert main(["simulate", "--seconds", "30", "--damage", value]) == 2
    assert message in capsys.readouterr().err
