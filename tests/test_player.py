"""The one tick pipeline, driven through its public seams: a Player, ticks, and a queue of input."""

from __future__ import annotations

import tracemalloc
from collections import deque

import pytest

from firefly_midi import automation, presets
from firefly_midi.player import AUDIBLE_CATCH_UP, Player, build_parts
from firefly_midi.render import TimedInput, play_offline

pytestmark = pytest.mark.timeout(120)


class Queue:
    """An input source a test fills: (bytes, tick fraction) heard at the next tick."""

    def __init__(self, *items: tuple[list[int], float]):
        self.items = deque(items)

    def poll(self):
        return self.items.popleft() if self.items else None


def events_of(player: Player, count: int) -> list[tuple[float, list[int]]]:
    """The ``count`` events the last tick (or silence) left in ``player.events``."""
    return player.events.as_list()[:count]


def make(preset: str = "pulse-sine", **overrides) -> Player:
    return Player(presets.resolve(preset, [f"{k}={v}" for k, v in overrides.items()]))


def test_skipped_ticks_are_stepped_so_the_swarm_keeps_wall_time():
    player = make()
    player.tick(0)
    player.tick(5)  # the clock skipped ticks 1-4
    assert player.swarm.ticks == 6 and player.caught_up_ticks == 4 and player.behind_ticks == 0
    player.tick(106)  # a stall: more than is caught up in one tick, repaid over the next ones
    assert player.caught_up_ticks == 4 + 8 and player.behind_ticks == 100 - 8 and player.lost_ticks == 0
    for k in range(107, 107 + 12):
        player.tick(k)
    assert player.behind_ticks == 0 and player.caught_up_ticks == 104 and player.lost_ticks == 0
    assert player.swarm.ticks == 119  # one step per clock tick: the swarm is back on the wall's time
    player.paused = True
    player.tick(200)  # paused ticks are not owed
    player.paused = False
    player.tick(201)
    assert player.swarm.ticks == 120 and player.lost_ticks == 0


def test_a_short_skip_plays_every_note_it_owes_and_a_long_stall_plays_none_of_its_own():
    """A handover or a page fault skips a few ticks: the steps caught up play their notes (the music
    does not lose a beat), at their own times, ahead of the tick's.  A stall longer than
    AUDIBLE_CATCH_UP steps plays none of the skipped steps' notes: a burst of late notes is worse."""

    def played(skips: dict[int, int], ticks: int) -> list[tuple[float, list[int]]]:
        player, heard, k = make("pulse-sine", **{"swarm.freq_hz": 20}), [], 0
        while player.swarm.ticks < ticks:
            k += skips.get(k, 0)
            heard += events_of(player, player.tick(k))
            k += 1
        return heard

    steady = played({}, 2000)
    assert len(steady) > 40
    assert played({300: 3, 900: AUDIBLE_CATCH_UP, 1500: 1}, 2000) == steady
    stalled = played({900: 400}, 2000)
    assert len(stalled) < len(steady)
    assert [e for e in stalled if e[0] < 0.9] == [e for e in steady if e[0] < 0.9]


def test_a_long_stall_keeps_every_midi_clock_pulse_and_the_tempo():
    """A DAW slaved to our clock counts its pulses: the steps a long stall catches up start no
    notes, but their pulses go out (late) and their flashes count for the tempo, so the pulses keep
    their swarm times and the tempo is the steady run's (a 20-tick stall once dropped two pulses and
    left the tempo 0.5 % off for seconds)."""

    def clocks(skips: dict[int, int]) -> tuple[list[float], float]:
        player, pulses, k = make("pulse-sine", **{"swarm.freq_hz": 2, "swarm.noise": 0, "mapping.clock_out": True}), [], 0
        while player.swarm.ticks < 20_000:
            k += skips.get(k, 0)
            pulses += [t for t, message in events_of(player, player.tick(k)) if message == [0xF8]]
            k += 1
        return pulses, player.mapper.tempo.hz

    steady, steady_hz = clocks({})
    stalled, stalled_hz = clocks({17_000: 20, 17_400: 3 * AUDIBLE_CATCH_UP})
    assert len(steady) > 700
    assert stalled == pytest.approx(steady, abs=1e-9) and stalled_hz == pytest.approx(steady_hz, rel=1e-9)


def test_a_swarm_more_than_a_second_behind_gives_the_excess_up():
    player = make()  # 1 ms ticks: at most 1000 owed
    player.tick(0)
    player.tick(5001)
    assert player.lost_ticks == 5000 - 1000 and player.behind_ticks == 1000 - 8


def test_midi_learn_binds_the_next_controller_and_it_moves_the_parameter():
    player = make()
    player.arm_learn("swarm.coupling", 0.0, 1.0)
    player.tick(0, Queue(([0x90, 60, 100], 0.0), ([0xB3, 74, 0], 0.0)))  # the note does not bind; CC 74 on channel 4 does
    assert player.values["learn"] == (automation.Binding(74, "swarm.coupling", 0.0, 1.0, 4),)
    assert list(player.learned) == [player.values["learn"]], "the binding is handed to whoever keeps the state"
    player.tick(1, Queue(*[([0xB3, 74, v], 0.0) for v in (10, 127, 64)]))  # a burst in one tick: the latest wins
    assert player.values["swarm.coupling"] == pytest.approx(64 / 127)
    assert player.swarm.values["swarm.coupling"] == pytest.approx(64 / 127)
    player.tick(2, Queue(([0xB0, 74, 127], 0.0)))  # the same CC on another channel is not this binding
    assert player.values["swarm.coupling"] == pytest.approx(64 / 127)
    assert player.counts.other == 4 and player.counts.flashes == 1


def test_learning_beats_takes_the_next_different_notes_played_as_follow_notes():
    player = make("follow-drummer")
    player.arm_note_learn(2, 4.0)
    player.tick(0, Queue(([0x99, 37, 100], 0.2), ([0x99, 37, 90], 0.6)))  # a rim click twice: one note
    assert player.values["follow.notes"] == (35, 36, 38, 40), "one note heard of two: still learning"
    player.tick(1, Queue(([0x89, 37, 0], 0.0), ([0x99, 39, 110], 0.5)))  # a note-off is no note; a clap is
    assert player.values["follow.notes"] == (37, 39)
    assert list(player.learned_values) == [("follow.notes", (37, 39))], "handed to whoever keeps the state"
    assert player.follower.hear(37, 100, 1.0) and not player.follower.hear(36, 100, 1.1), "the follower counts them"
    player.tick(2, Queue(([0x99, 42, 100], 0.0)))
    assert player.values["follow.notes"] == (37, 39), "learning ended with the second note"


def test_learning_beats_takes_what_was_played_when_its_time_is_up():
    player = make("follow-drummer")
    player.arm_note_learn(3, 0.5)
    half = round(0.5 / player.swarm.dt)
    for k in range(3 * half):  # one note, then nothing for longer than the half second
        player.tick(k, Queue(([0x99, 45, 100], 0.0)) if k == half // 2 else Queue())
        if k == half:
            assert player.values["follow.notes"] == (35, 36, 38, 40), "still listening within the half second"
    assert player.values["follow.notes"] == (45,)


def test_input_beyond_the_per_tick_limit_is_dropped_and_counted():
    player = make("pulse-sine", **{"input.max_per_tick": 4})
    player.tick(0, Queue(*[([0x90, 60, 100], 0.5)] * 10, ([0x80, 60, 0], 0.5)))
    assert player.counts.flashes == 4 and player.counts.dropped == 7 and player.counts.ignored == 0
    player.tick(1, Queue(([0x80, 60, 0], 0.5), ([0xF0, 1, 2, 0xF7], 0.0)))
    assert player.counts.ignored == 2


def test_clock_in_follows_the_incoming_tempo_on_swarm_time():
    player = make("pulse-sine", **{"input.clock_in": True, "swarm.freq_hz": 1.0})
    pulses = 24 * 2  # 120 BPM: a clock every 1000 / 48 ms, fed at the ticks they fall in
    for k in range(1000):
        due = [([0xF8], (i * 1000 / 48) % 1.0) for i in range(pulses) if int(i * 1000 / 48) == k]
        player.tick(k, Queue(*due))
    assert player.values["swarm.freq_hz"] == pytest.approx(2.0, rel=0.01)


def test_automation_ramps_a_parameter_on_swarm_time_offline_too():
    values = presets.resolve("pulse-sine")
    values["automation"] = automation.check_ramps([{"key": "swarm.freq_hz", "from": 2.0, "to": 1.0, "seconds": 0.5}])
    ticking, running = Player(values), Player(values)
    for k in range(250):
        ticking.tick(k)
    running.run(250)
    assert 1.4 < ticking.values["swarm.freq_hz"] < 1.6
    assert running.values["swarm.freq_hz"] == ticking.values["swarm.freq_hz"], "simulate ramps as the daemon does"
    assert running.swarm.state.phase.tolist() == ticking.swarm.state.phase.tolist()


def test_an_idle_tick_allocates_nothing():
    """5,000 idle ticks (hear, step, map): no buffer is made and nothing is kept.

    tracemalloc's peak above the starting point bounds everything alive at any moment in the loop:
    a tick that made an array, a list or a message would push it up by at least that object each
    tick until collected.  What remains is CPython's boxing of a few numbers (ints above 256).
    """
    player = make("pulse-sine", **{"swarm.freq_hz": 0.01, "swarm.n": 1000, "swarm.freq_spread_hz": 0})
    player.swarm.state.phase[:] = 0.1  # far from threshold: nobody flashes during the test
    source = Queue()
    for k in range(300):
        player.tick(k, source)
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for k in range(300, 5300):
            player.tick(k, source)
        end, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert player.swarm.flashes_total == 0
    assert end - start < 1024, f"{end - start} bytes kept after 5,000 idle ticks"
    assert peak - start < 4096, f"{peak - start} bytes alive at once during idle ticks"


def test_a_swapped_preset_plays_from_its_own_start_and_keeps_the_counters():
    player = make()
    player.tick(0, Queue(([0x90, 60, 100], 0.0)))
    player.silence()
    player.swap(build_parts(presets.resolve("ermentrout-800")))
    fresh = Player(presets.resolve("ermentrout-800"))
    for k in range(1, 301):
        count = player.tick(k)
        assert count == fresh.tick(k - 1) and player.events.as_list()[:count] == fresh.events.as_list()[:count]
    assert player.swarm.n == 800 and player.counts.flashes == 1


def sounding_after(events: list[tuple[float, list[int]]]) -> set[tuple[int, int]]:
    """(channel, note) still sounding after ``events``."""
    sounding: set[tuple[int, int]] = set()
    for _, m in events:
        if m[0] & 0xF0 == 0x90 and m[2] > 0:
            sounding.add((m[0] & 15, m[1]))
        elif m[0] & 0xF0 in (0x80, 0x90):
            sounding.discard((m[0] & 15, m[1]))
    return sounding


def test_a_redrawn_swarm_keeps_the_notes_sounding():
    player = make("pulse-sine", **{"swarm.freq_hz": 8, "mapping.note_ms": 5000})
    log = []
    for k in range(400):
        log += events_of(player, player.tick(k))
    sounding = sounding_after(log)
    assert sounding and player.mapper.sounding == len(sounding)
    player.adopt("swarm.n", 50, player.reshaped("swarm.n", 50))
    assert player.swarm.n == 50 and player.values["swarm.n"] == 50 and player.mapper.sounding == len(sounding)
    for k in range(400, 500):
        log += events_of(player, player.tick(k))
    log += events_of(player, player.silence())
    assert not sounding_after(log), "every note the old swarm started still gets its note-off"


@pytest.mark.parametrize("preset", ["entrain", "kuramoto-adaptive"])
def test_offline_input_is_heard_at_its_sub_tick_time(preset):
    values = presets.resolve(preset, ["swarm.n=64"])
    dt = values["clock.tick_ms"] / 1000.0
    beat = [(0.25 + 0.5 * i, [0x99, 36, 120]) for i in range(8)]
    played = play_offline(Player(values), round(4.0 / dt), TimedInput(beat, dt))
    again = Player(values)
    source = Queue()
    replayed = []
    for k in range(round(4.0 / dt)):
        source.items.extend((m, t / dt - k) for t, m in beat if k <= t / dt < k + 1)
        replayed += events_of(again, again.tick(k, source))
    replayed += events_of(again, again.silence())
    assert again.counts.flashes == 8
    assert played == replayed, "a timed input and the same messages heard live give the same events"
