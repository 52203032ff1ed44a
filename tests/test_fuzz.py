"""Fuzzing the two doors anything outside can push bytes through: MIDI input and preset files.

MIDI input: random lists of ints (empty, huge, out of 0..255) go to ``Player.hear``, and through whole
ticks from a queue.  Nothing may escape and the counters must add up.  Presets: random TOML documents and broken text always end in a
``ParamError`` that names the file (and the key, when a key is at fault), never in another exception.
"""

from __future__ import annotations

import math
import string
from collections import deque

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firefly_midi import automation, midi, presets
from firefly_midi import params as P
from firefly_midi.player import Player

LEARNED_CC = 21  # bound to swarm.coupling on every channel in the player below


class Queue:
    """An input source the test fills: (bytes, tick fraction)."""

    def __init__(self):
        self.items: deque[tuple[list[int], float]] = deque()

    def poll(self):
        return self.items.popleft() if self.items else None


@pytest.fixture(scope="module")
def player() -> Player:
    values = presets.resolve("pulse-sine")
    values["learn"] = automation.check_bindings([{"cc": LEARNED_CC, "key": "swarm.coupling", "lo": 0.0, "hi": 0.5}])
    values["input.clock_in"] = True
    return Player(values)


def counted(player: Player) -> int:
    c = player.counts
    return c.flashes + c.ignored + c.dropped


def kind(message: list[int]) -> str:
    """What the player should make of ``message``: "clock", "cc" (a bound controller) or "other"."""
    if message and message[0] in (midi.TIMING_CLOCK, midi.SONG_START, midi.SONG_STOP):
        return "clock"
    if len(message) == 3 and message[0] & 0xF0 == 0xB0 and message[1] == LEARNED_CC and 0 <= message[2] <= 127:
        return "cc"
    return "other"


midi_bytes = st.integers(0, 255)
wild_ints = st.one_of(midi_bytes, st.integers(-(2**70), 2**70), st.sampled_from([-1, 256, 0x1B0, 0x190, 0xF8, 0xFA, 0xFC, 0xF0, 0xF7]))
messages = st.one_of(
    st.lists(wild_ints, max_size=8),
    st.lists(midi_bytes, min_size=3, max_size=3),  # mostly well-formed: reaches note and CC handling
    st.tuples(st.integers(0x80, 0xEF), st.integers(0, 127), st.integers(0, 127)).map(list),
    st.lists(midi_bytes, min_size=1000, max_size=70000).map(lambda b: [0xF0, *b]),  # huge
)


@pytest.fixture(scope="module")
def following() -> Player:
    return Player(presets.resolve("follow-drummer"))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batch=st.lists(st.tuples(messages, st.floats(allow_nan=True, allow_infinity=True)), max_size=30))
def test_a_follower_hears_anything_counts_it_and_keeps_its_grid_finite(following, batch):
    before = counted(following)
    for message, frac in batch:
        following.hear(message, frac)
    following.tick(following.next_k)
    # no controller is bound here: all but clock messages are hits, ignored or dropped
    assert counted(following) - before == sum(kind(m) != "clock" for m, _ in batch)
    follower = following.follower
    assert math.isfinite(follower.period) and math.isfinite(follower.ref)
    assert math.isnan(follower.pending_t) or abs(follower.pending_t - following.swarm.time_s) < 1.0


@pytest.mark.slow  # hundreds of examples: 6-23 s each here
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batch=st.lists(st.tuples(messages, st.floats(allow_nan=True, allow_infinity=True)), max_size=30))
def test_hear_never_raises_and_every_message_is_counted(player, batch):
    kinds = {"clock": 0, "cc": 0, "other": 0}
    before, other = counted(player), player.counts.other
    for message, frac in batch:
        player.hear(message, frac)
        kinds[kind(message)] += 1
    player.swarm.step()  # empties the queue of external flashes
    # MIDI clock/start/stop messages and bound controllers count as "other"; everything else is a
    # flash, ignored, or dropped by a full queue.
    assert counted(player) - before == kinds["other"]
    assert player.counts.other - other == kinds["clock"] + kinds["cc"]


@pytest.mark.slow  # hundreds of examples: 6-23 s each here
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    queue=st.lists(st.tuples(messages, st.floats(allow_nan=True, allow_infinity=True)), max_size=200),
    limit=st.integers(1, 80),
)
def test_a_tick_bounds_its_input_and_counts_the_rest(player, queue, limit):
    player.values["input.max_per_tick"] = limit
    try:
        source = Queue()
        source.items.extend(queue)
        before, dropped = counted(player), player.counts.dropped
        player.tick(player.next_k, source)
        others = sum(kind(m) == "other" for m, _ in queue[:limit])
        assert not source.items
        assert player.counts.dropped - dropped >= max(0, len(queue) - limit)
        assert counted(player) - before == others + max(0, len(queue) - limit)
    finally:
        player.values["input.max_per_tick"] = 64


def test_a_fuzzed_tick_keeps_playing_and_silences_cleanly(player):
    """Whole ticks with garbage in the queue: nothing raises and every note started ends."""
    import random

    rng = random.Random(3)
    source = Queue()
    for _ in range(2000):
        source.items.extend(([rng.randrange(-5, 300) for _ in range(rng.randrange(5))], rng.random()) for _ in range(10))
        player.tick(player.next_k, source)
    player.silence()
    assert player.mapper.sounding == 0


# ------------------------------------------------------------------------------------------- presets
TABLES = sorted({key.partition(".")[0] for key in P.PARAMS} | {"bogus"})
NAMES = sorted({key.partition(".")[2] for key in P.PARAMS if "." in key} | {"bogus", "n", "ñ", "ключ", "😀"})
scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(["C4", "c#-1", "H9", "1,2,3", "nan", "1e999", "", "ermentrout-800"]),
    st.datetimes(),
    st.dates(),
    st.times(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(NAMES), inner, max_size=3)),
    max_leaves=8,
)
ramp_or_binding = st.dictionaries(
    st.sampled_from(["key", "from", "to", "seconds", "curve", "repeat", "start_s", "cc", "channel", "lo", "hi", "bogus"]),
    st.one_of(scalars, st.sampled_from(list(P.PARAMS))),
    max_size=7,
)
documents = st.dictionaries(
    st.sampled_from(TABLES),
    st.one_of(
        st.dictionaries(st.sampled_from(NAMES), values, max_size=4),
        st.lists(ramp_or_binding, max_size=3),  # arrays of tables: [[automation]], [[learn]], or where none belongs
        values,
    ),
    max_size=4,
)


def assert_names_file_and_key(exc: P.ParamError, text: str) -> None:
    message = str(exc)
    assert message.startswith("fuzz.toml"), message
    if "not valid TOML" in message:
        return
    keys = [k for k in P.PARAMS if k in message] + [t for t in TABLES if t in message]
    assert keys or exc.key, f"the error names no key: {message}"


@pytest.mark.slow  # hundreds of examples: 6-23 s each here
@settings(max_examples=500, deadline=None)
@given(documents)
def test_any_toml_document_is_a_preset_or_a_param_error(document):
    try:
        text = tomli_w.dumps(document)
    except (TypeError, ValueError):
        return  # not representable as TOML (e.g. a table inside an array of scalars): nothing to test
    try:
        values = presets.parse(text, "fuzz.toml")
    except P.ParamError as exc:
        assert_names_file_and_key(exc, text)
        return
    for key, value in values.items():  # accepted: every value is checked and in range
        assert P.check(key, value) == value or (isinstance(value, float) and math.isnan(value))


VALID = presets.shipped_dir().joinpath("pulse-sine.toml").read_text(encoding="utf-8")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(VALID)), st.integers(0, 8), st.text(alphabet=string.printable + "ñ😀\x00\ufeff[]=\"'", max_size=6)),
        min_size=1,
        max_size=5,
    )
)
def test_a_mangled_preset_is_a_preset_or_a_param_error(edits):
    text = VALID
    for where, cut, insert in edits:
        text = text[:where] + insert + text[where + cut :]
    try:
        values = presets.parse(text, "fuzz.toml")
    except P.ParamError as exc:
        assert_names_file_and_key(exc, text)
        return
    for key, value in values.items():  # accepted: every value is checked and in range
        assert P.check(key, value) == value or (isinstance(value, float) and math.isnan(value)), key


@pytest.mark.parametrize(
    "text",
    [
        "[swarm]\nn = 5\nn = 6\n",  # duplicate key
        "[swarm]\nn = 5\n[swarm]\ncoupling = 0.1\n",  # duplicate table
        "[[automation]]\nkey = 'swarm.coupling'\n[automation]\n",  # array of tables, then a table of the same name
        "[[learn]]\ncc = 200\nkey = 'swarm.coupling'\nlo = 0\nhi = 1\n",  # cc out of range
        "[[learn]]\ncc = 1\nkey = 'mapping.scale'\nlo = 0\nhi = 1\n",  # not a numeric key
        "[[automation]]\nkey = 'swarm.n'\nfrom = 1\nto = 1e12\nseconds = 1\n",
        "learn = 5\n",
        "automation = 'swarm.coupling'\n",
        "[swarm.n]\nx = 1\n",
        "[swarm]\nn = {x = 1}\n",
        "[swarm]\nn = [1, 2]\n",
        "[swarm]\nn = 1e400\n",
        "[swarm]\nn = 99999999999999999999\n",
        "[swarm]\ncoupling = nan\n",
        "[swarm]\ncoupling = inf\n",
        "[swarm]\nmodel = 1979-05-27T07:32:00Z\n",
        "[mapping]\nchannels = [1, 17]\n",
        "[mapping]\nchannels = []\n",
        "[mapping]\nroot = 'Z#4'\n",
        "[swarm]\nmodel = 'pulse\u0000'\n",
        "\ufeff[swarm]\nn = 5\n",
        '[swarm]\nn = "\\ud800"\n',
        "[ñ]\n😀 = 1\n",
        "[swarm\nn = 5\n",
        "\x00",
    ],
)
def test_known_nasty_presets_are_param_errors(text):
    with pytest.raises(P.ParamError) as info:
        presets.parse(text, "fuzz.toml")
    assert_names_file_and_key(info.value, text)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=300), documents.map(lambda d: _dumps_or_empty(d)), st.just("preset = 5\n"), st.just("preset = 'nope'\n")))
def test_a_corrupt_state_file_is_refused_with_param_error_or_not_found(tmp_path_factory, text):
    """Refused with a ParamError naming the file, or FileNotFoundError naming the missing preset; or
    accepted, and then every value is checked and the preset is a known one."""
    path = tmp_path_factory.mktemp("state") / "state.toml"
    path.write_text(text, encoding="utf-8")
    try:
        preset, values = presets.load_state(path)
    except P.ParamError as exc:
        assert str(path) in str(exc), str(exc)
        return
    except FileNotFoundError as exc:
        assert "no preset named" in str(exc), str(exc)
        return
    assert preset in presets.available()
    for key, value in values.items():
        assert P.check(key, value) == value or (isinstance(value, float) and math.isnan(value)), key


def _dumps_or_empty(document) -> str:
    try:
        return tomli_w.dumps(document)
    except (TypeError, ValueError):
        return ""


@pytest.mark.parametrize("loader", [presets.load, presets.load_state])
def test_a_file_that_is_not_utf8_is_a_param_error(tmp_path, loader):
    path = tmp_path / "state.toml"
    path.write_bytes(b"\x80\x81[swarm]\n")
    with pytest.raises(P.ParamError, match=r"state\.toml"):
        loader(path) if loader is presets.load_state else loader(str(path))
