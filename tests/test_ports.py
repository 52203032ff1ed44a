"""Ports.poll: what the tick reads from an input, with the sysex guard's own 0xF7s passed over.

The real ports are tested against a private JACK server (tests/integration); here the input is a
queue standing in for an rtmidi ``MidiIn`` (its ``get_message()`` pops (message, delta) pairs), to
check the bookkeeping on any sequence.
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from firefly_midi.ports import END_OF_SYSEX, PortConfig, Ports


class Queue:
    def __init__(self, items: list[tuple[list[int], float]]):
        self.items = list(items)

    def get_message(self) -> tuple[list[int], float] | None:
        return self.items.pop(0) if self.items else None


def reading(items: list[tuple[list[int], float]], guard: bool) -> tuple[Ports, list[tuple[list[int], float]]]:
    ports = Ports(PortConfig())
    ports.inp, ports.guard = Queue(items), (object() if guard else None)
    got = []
    while (item := ports.poll()) is not None:
        got.append(item)
    return ports, got


def test_the_guards_end_of_sysex_is_passed_over_and_its_time_kept():
    items = [([0xF7], 0.004), ([0x90, 60, 100], 0.001), ([0xF7], 0.010), ([0xF7], 0.010), ([0x80, 60, 0], 0.002)]
    ports, got = reading(items, guard=True)
    assert [m for m, _ in got] == [[0x90, 60, 100], [0x80, 60, 0]]
    assert math.isclose(got[0][1], 0.005) and math.isclose(got[1][1], 0.022)
    assert ports.received == 2


def test_without_a_guard_a_lone_end_of_sysex_is_input_like_any_other():
    ports, got = reading([([0xF7], 0.004), ([0x90, 60, 100], 0.001)], guard=False)
    assert got == [([0xF7], 0.004), ([0x90, 60, 100], 0.001)] and ports.received == 2


messages = st.one_of(
    st.just(END_OF_SYSEX),
    st.lists(st.integers(0, 255), min_size=1, max_size=4).filter(lambda m: m != END_OF_SYSEX),
)


@given(st.lists(st.tuples(messages, st.floats(0.0, 1.0)), max_size=40))
def test_every_other_message_comes_through_in_order_and_no_time_is_lost(items):
    ports, got = reading(items, guard=True)
    others = [(m, d) for m, d in items if m != END_OF_SYSEX]
    assert [m for m, _ in got] == [m for m, _ in others]
    assert ports.received == len(others)
    # every delta before the last real message reaches the reader; only trailing guard ones wait
    last = max((i for i, (m, _) in enumerate(items) if m != END_OF_SYSEX), default=-1)
    assert math.isclose(sum(d for _, d in got), sum(d for _, d in items[: last + 1]), abs_tol=1e-9)
