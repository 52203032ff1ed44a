"""The parameter table, preset files and the command line: clear errors, exit code 2."""

import json
import math
import subprocess
import sys

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from firefly_midi import automation, presets
from firefly_midi import params as P
from firefly_midi.cli import main

NUMERIC = [p for p in P.PARAMS.values() if p.kind in ("int", "float")]


@given(st.sampled_from(NUMERIC), st.floats(allow_nan=True, allow_infinity=True))
def test_numbers_outside_the_range_are_refused_with_the_key_and_range(param, value):
    inside = param.lo <= value <= param.hi and (param.kind == "float" or float(value).is_integer())
    if inside:
        assert P.check(param.key, value) == pytest.approx(value)
    else:
        with pytest.raises(P.ParamError) as info:
            P.check(param.key, value)
        assert param.key in str(info.value)
        assert f"{param.lo:g}"[:3] in str(info.value) or "integer" in str(info.value)


@given(st.sampled_from(list(P.PARAMS)), st.text(max_size=12))
def test_any_text_either_parses_or_names_the_key(key, text):
    try:
        P.check(key, text)
    except P.ParamError as exc:
        assert key in str(exc)


@given(st.sampled_from(NUMERIC), st.text(alphabet="abc=[]'{}# ", max_size=10))
def test_broken_preset_names_file_line_and_key(param, junk):
    table, _, name = param.key.rpartition(".")
    text = f'# comment\n[{table}]\n{name} = "{junk}"\n'
    with pytest.raises(P.ParamError) as info:
        presets.parse(text, "broken.toml")
    message = str(info.value)
    assert message.startswith("broken.toml:3: ")
    assert param.key in message


def test_invalid_toml_names_the_line():
    with pytest.raises(P.ParamError, match=r"bad.toml:3: not valid TOML"):
        presets.parse("[swarm]\nn = 5\nmodel = \n", "bad.toml")


def test_unknown_key_in_preset_suggests_the_right_one():
    with pytest.raises(P.ParamError, match=r"x.toml:2: unknown parameter 'swarm.copling'; did you mean swarm.coupling"):
        presets.parse("[swarm]\ncopling = 0.1\n", "x.toml")


def test_every_shipped_preset_loads_and_says_what_it_sounds_like():
    names = {path.stem: path for path in sorted(presets.shipped_dir().glob("*.toml"))}
    for required in (
        "ermentrout-800",
        "pulse-sine",
        "mirollo-strogatz",
        "desync-tdma",
        "interval-sync",
        "kuramoto-adaptive",
        "kuramoto-desync",
        "grid-waves",
    ):
        assert required in names
    for name, path in names.items():
        presets.load(name)
        assert "Sounds like" in path.read_text(), name


def test_simulate_json_has_every_metric(capsys):
    assert main(["simulate", "--preset", "pulse-sine", "--seconds", "5", "--json", "--set", "swarm.n=50"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in (
        "sync_time_s",
        "order_parameter",
        "mean_freq_hz",
        "tempo_bpm",
        "gap_cv",
        "emission_window",
        "flashes",
        "n",
        "ticks",
        "wall_s",
        "realtime_factor",
    ):
        assert key in out
    assert out["n"] == 50 and out["ticks"] == 5000


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("swarm.n=0", "swarm.n must be an integer in 1..10000000"),
        ("swarm.bogus=1", "unknown parameter 'swarm.bogus'"),
        ("swarm.model=boids", "swarm.model must be one of pulse"),
        ("swarm.coupling", "expected KEY=VALUE"),
    ],
)
def test_bad_set_exits_2_with_a_message(capsys, argument, message):
    assert main(["simulate", "--seconds", "1", "--set", argument]) == 2
    assert message in capsys.readouterr().err


def test_console_script_runs_and_draws_a_raster(tmp_path):
    png = tmp_path / "raster.png"
    done = subprocess.run(
        [sys.executable, "-m", "firefly_midi", "simulate", "--seconds", "3", "--raster", str(png), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout)["n"] == 800
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_docs_list_every_parameter_as_the_table_says(capsys):
    """docs/presets.md carries the generated table: a key added to param_table.py must show up there."""
    from pathlib import Path

    assert main(["params", "--markdown"]) == 0
    table = capsys.readouterr().out.strip()
    doc = (Path(__file__).parent.parent / "docs" / "presets.md").read_text(encoding="utf-8")
    assert table in doc, "regenerate the table: firefly-midi params --markdown"


@given(st.integers(-1, 9), st.sampled_from("CDEFGAB"), st.sampled_from(["", "#", "b"]))
def test_note_names_are_midi_numbers_with_c4_at_60(octave, name, accidental):
    number = P.NOTE_NAMES[name] + {"#": 1, "b": -1, "": 0}[accidental] + 12 * (octave + 1)
    text = f"{name}{accidental}{octave}"
    if 0 <= number <= 127:
        assert P.check("mapping.root", text) == number
    else:
        with pytest.raises(P.ParamError, match=r"mapping\.root"):
            P.check("mapping.root", text)
    assert P.check("mapping.root", "C4") == 60


@given(st.lists(st.integers(-3, 20), max_size=6))
def test_channel_lists_hold_channels_1_to_16(channels):
    text = ",".join(map(str, channels))
    if all(1 <= c <= 16 for c in channels):
        assert P.check("mapping.channels", text) == tuple(channels)
        assert P.check("mapping.channels", channels) == tuple(channels)
    else:
        with pytest.raises(P.ParamError, match=r"mapping\.channels"):
            P.check("mapping.channels", channels)


RAMP = {"key": "swarm.freq_hz", "from": 2.0, "to": 0.5, "seconds": 10.0}


@given(
    st.sampled_from(["key", "from", "to", "seconds", "curve", "repeat", "start_s", "bogus"]),
    st.one_of(st.text(max_size=5), st.floats(allow_nan=True), st.integers(-5, 500), st.none()),
)
def test_broken_automation_names_the_ramp_and_field(field, value):
    table = dict(RAMP)
    if value is None:
        table.pop(field, None)
    else:
        table[field] = value
    toml_value = {k: _toml(v) for k, v in table.items()}
    text = "[[automation]]\n" + "".join(f"{k} = {v}\n" for k, v in toml_value.items())
    try:
        ramps = presets.parse(text, "auto.toml")["automation"]
    except P.ParamError as exc:
        assert str(exc).startswith("auto.toml:1: automation[0]"), str(exc)
        return
    ramp = ramps[0]
    assert 0.01 <= ramp.value_at(ramp.start_s + ramp.seconds / 2) <= 100


def _toml(value: object) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if value != value else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):  # TOML's own escaping: JSON's leaves control characters like DEL raw
        return tomli_w.dumps({"v": value}).removeprefix("v = ").strip()
    return json.dumps(value, ensure_ascii=False)


def test_ramps_move_linearly_exponentially_and_loop():
    linear = automation.Ramp("swarm.freq_hz", 2.0, 1.0, 10.0)
    assert linear.value_at(-1) is None and linear.value_at(5) == pytest.approx(1.5) and linear.value_at(99) == 1.0
    exp = automation.Ramp("swarm.freq_hz", 2.0, 0.5, 10.0, "exp")
    assert exp.value_at(5) == pytest.approx(1.0)
    loop = automation.Ramp("swarm.freq_hz", 1.0, 2.0, 10.0, repeat="loop")
    assert loop.value_at(12.5) == pytest.approx(1.25)
    pingpong = automation.Ramp("swarm.freq_hz", 1.0, 2.0, 10.0, repeat="pingpong")
    assert pingpong.value_at(12.5) == pytest.approx(1.75)
