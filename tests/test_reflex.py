"""The reflex's planner (firefly_midi/reflex.py) without a server: the table it arms is what the
next step plays for an input note-on, and what the callback played is registered, not doubled."""

from __future__ import annotations

import numpy as np
import pytest

from firefly_midi import params as P
from firefly_midi import presets
from firefly_midi.jack import layout, rings
from firefly_midi.jack import reflex as native
from firefly_midi.mapping import NOTE_ON
from firefly_midi.player import Player
from firefly_midi.reflex import Reflex


class FakePorts:
    """A native client's state array, as ``Ports.reflex_state`` gives it (no callback runs)."""

    def __init__(self) -> None:
        self.state = rings.new_state()
        self.state[layout.BASE] = self.state.ctypes.data

    def reflex_state(self) -> np.ndarray:
        return self.state


def strong_player(**extra) -> Player:
    values = presets.resolve("pulse-sine")
    values.update({"input.strength": 3.0, "mapping.note_ms": 30.0, "mapping.voices": 8, **extra})
    return Player({k: P.check(k, v) for k, v in values.items()})


def armed_velocities(reflex: Reflex, ports: FakePorts, count: int) -> dict[int, int]:
    """Voice -> the lowest input velocity the armed table plays it for."""
    table = native.table_of(reflex.gen)
    assert ports.state[layout.REFLEX_ARMED] == reflex.gen and ports.state[table + layout.REFLEX_COUNT] == count
    return {int(reflex.voices[j]): int(reflex.velocities[j]) for j in range(count) if reflex.velocities[j] <= 127}


def voices_started(player: Player, k: int, velocity: int) -> set[int]:
    """The voices whose note-on the step with one input note-on of ``velocity`` (at its start) plays."""

    class One:
        def __init__(self) -> None:
            self.items = [([NOTE_ON, 60, velocity], 0.0)]

        def poll(self):
            return self.items.pop() if self.items else None

    count = player.tick(k, One())
    lay, events = player.mapper.layout, player.events
    notes = {(int(events.status[i]) & 0x0F, int(events.data1[i])) for i in range(count) if events.status[i] & 0xF0 == NOTE_ON}
    return {v for v in range(lay.voices) if (int(lay.channel[v]), int(lay.note[v])) in notes}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("velocity", [40, 127])
def test_the_armed_table_is_what_the_next_step_plays_for_an_input(velocity):
    reflex, ports = Reflex(), FakePorts()
    reflex.warm_up()
    checked = 0
    for trial in range(400):
        player = strong_player(**{"swarm.seed": trial % 7})
        for k in range(300 + 37 * trial):
            player.tick(k)
        k += 1
        reflex.take_back(player)
        if not reflex.arm(ports, player):
            continue
        count = int(ports.state[native.table_of(reflex.gen) + layout.REFLEX_COUNT])
        armed = {v for v, lowest in armed_velocities(reflex, ports, count).items() if lowest <= velocity}
        started = voices_started(player, k, velocity)
        assert armed <= started, f"armed {armed} but the step started {started}"
        checked += 1
        if checked >= 10:
            break
    assert checked >= 3


@pytest.mark.timeout(300)
def test_what_the_callback_played_is_registered_and_not_played_again():
    reflex, ports = Reflex(), FakePorts()
    reflex.warm_up()
    player = strong_player(**{"input.velocity_scaled": False})
    k = 0
    while not reflex.arm(ports, player):
        reflex.take_back(player)
        player.tick(k)
        k += 1
        assert k < 20_000, "the reflex was never armed"
    count = int(ports.state[native.table_of(reflex.gen) + layout.REFLEX_COUNT])
    armed = set(armed_velocities(reflex, ports, count))
    # the callback's claim, as it does it: the played mask, then the generation made negative
    st, gen = ports.state, reflex.gen
    st[native.table_of(gen) + layout.REFLEX_MASK] = (1 << count) - 1
    st[layout.REFLEX_ARMED] = -gen
    st[layout.REFLEX_DONE] = gen
    notes_before = player.mapper.notes_out
    assert reflex.take_back(player) == count
    assert player.mapper.notes_out == notes_before + count and player.mapper.sounding >= count
    started = voices_started(player, k, 127)
    assert not (started & armed), "a voice the callback played started again in the step"
    offs = set()
    for k2 in range(k + 1, k + 200):  # every reflex note gets its note-off from the mapper
        n = player.tick(k2)
        ev = player.events
        offs |= {(int(ev.status[i]) & 0x0F, int(ev.data1[i])) for i in range(n) if ev.status[i] & 0xF0 == 0x80}
    lay = player.mapper.layout
    assert {(int(lay.channel[v]), int(lay.note[v])) for v in armed} <= offs


class RecordingPorts(FakePorts):
    """FakePorts that keep what the tick sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[list[int]] = []

    def send(self, message, time_s) -> None:
        self.sent.append(list(message))

    def poll(self):
        return None

    def end_stray_sysex(self, now_s: float) -> None:
        pass


@pytest.mark.timeout(300)
def test_a_silence_after_the_callback_played_ends_those_notes_too():
    """A daemon stops with the reflex armed and an input arrives while its ports drain: the callback
    plays, no tick follows, and the stop's silence must still send those notes' note-offs."""
    from firefly_midi.clock import Clock
    from firefly_midi.tick_loop import TickLoop

    ports, player = RecordingPorts(), strong_player(**{"input.velocity_scaled": False})
    clock = Clock(player.swarm.dt, lambda k: None)  # never started: the loop is driven by hand
    ticks = TickLoop(player, ports, clock)
    ticks.reflex.warm_up()
    k = 0
    while not ticks.reflex.arm(ports, player):
        ticks.tick(k)
        k += 1
        assert k < 20_000, "the reflex was never armed"
    count = int(ports.state[native.table_of(ticks.reflex.gen) + layout.REFLEX_COUNT])
    lay = player.mapper.layout
    armed = {(int(lay.channel[v]), int(lay.note[v])) for v in armed_velocities(ticks.reflex, ports, count)}
    st, gen = ports.state, ticks.reflex.gen  # the callback's claim, after the clock stopped
    st[native.table_of(gen) + layout.REFLEX_MASK] = (1 << count) - 1
    st[layout.REFLEX_ARMED] = -gen
    st[layout.REFLEX_DONE] = gen
    ports.sent.clear()
    ticks.silence()
    offs = {(m[0] & 0x0F, m[1]) for m in ports.sent if m[0] & 0xF0 == 0x80 or (m[0] & 0xF0 == NOTE_ON and m[2] == 0)}
    assert armed and armed <= offs
    assert st[layout.REFLEX_ARMED] == 0  # and nothing is left armed for a later input
    assert ticks.errors == 0
