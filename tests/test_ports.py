"""The ports without a MIDI server: the backend interface, the null and recording backends, the
supervisor's bookkeeping, and the JACK input's heartbeat logic on stand-in rtmidi objects.

The real ports are tested against a private JACK server (tests/integration).  Here an rtmidi
``MidiIn`` is stood in for by a queue (its ``get_message()`` pops (message, delta) pairs) and the
sysex guard by a list of what it sent, to check the bookkeeping on any sequence.
"""

from __future__ import annotations

import json
import math
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firefly_midi.errors import FireflyError
from firefly_midi.ports import (
    END_OF_SYSEX,
    DeafCounts,
    JackRtMidiBackend,
    NullBackend,
    PortClosed,
    PortConfig,
    PortError,
    Ports,
    PortState,
    RecordingBackend,
    ServerGone,
)
from firefly_midi.ports.jack_rtmidi import DEAF_AFTER, SYSEX_SILENCE_S, InputOpener


class Queue:
    def __init__(self, items: list[tuple[list[int], float]] = ()):
        self.items = list(items)

    def get_message(self) -> tuple[list[int], float] | None:
        return self.items.pop(0) if self.items else None


class Guard:
    def __init__(self):
        self.sent: list[list[int]] = []

    def send_message(self, message: list[int]) -> None:
        self.sent.append(list(message))


def jack_backend(items=(), guard: bool = True) -> JackRtMidiBackend:
    config = PortConfig()
    opener = InputOpener(config, None, [], DeafCounts())
    return JackRtMidiBackend(config, out=Guard(), inp=Queue(items), guard=Guard() if guard else None, opener=opener)


def reading(items: list[tuple[list[int], float]], guard: bool) -> tuple[JackRtMidiBackend, list[tuple[list[int], float]]]:
    backend = jack_backend(items, guard)
    got = []
    while (item := backend.poll()) is not None:
        got.append(item)
    return backend, got


# ----------------------------------------------------------------------------- the JACK input's guard
def test_the_guards_end_of_sysex_is_passed_over_and_its_time_kept():
    items = [([0xF7], 0.004), ([0x90, 60, 100], 0.001), ([0xF7], 0.010), ([0xF7], 0.010), ([0x80, 60, 0], 0.002)]
    backend, got = reading(items, guard=True)
    assert [m for m, _ in got] == [[0x90, 60, 100], [0x80, 60, 0]]
    assert math.isclose(got[0][1], 0.005) and math.isclose(got[1][1], 0.022)
    assert backend.received == 2


def test_without_a_guard_a_lone_end_of_sysex_is_input_like_any_other():
    backend, got = reading([([0xF7], 0.004), ([0x90, 60, 100], 0.001)], guard=False)
    assert got == [([0xF7], 0.004), ([0x90, 60, 100], 0.001)] and backend.received == 2


messages = st.one_of(
    st.just(END_OF_SYSEX),
    st.lists(st.integers(0, 255), min_size=1, max_size=4).filter(lambda m: m != END_OF_SYSEX),
)


@given(st.lists(st.tuples(messages, st.floats(0.0, 1.0)), max_size=40))
def test_every_other_message_comes_through_in_order_and_no_time_is_lost(items):
    backend, got = reading(items, guard=True)
    others = [(m, d) for m, d in items if m != END_OF_SYSEX]
    assert [m for m, _ in got] == [m for m, _ in others]
    assert backend.received == len(others)
    # every delta before the last real message reaches the reader; only trailing guard ones wait
    last = max((i for i, (m, _) in enumerate(items) if m != END_OF_SYSEX), default=-1)
    assert math.isclose(sum(d for _, d in got), sum(d for _, d in items[: last + 1]), abs_tol=1e-9)


def test_a_silent_input_gets_one_end_of_sysex_per_half_second_and_is_deaf_after_four_unanswered():
    backend = jack_backend()
    guard = backend.guard
    ticks = [i * 0.01 for i in range(int((DEAF_AFTER + 2) * SYSEX_SILENCE_S / 0.01) + 2)]
    for now in ticks:
        backend.heartbeat(now)
    assert guard.sent == [END_OF_SYSEX] * DEAF_AFTER, "one 0xF7 per half second of silence, DEAF_AFTER at most"
    assert backend.input_is_deaf()


def test_an_answered_heartbeat_keeps_the_input_hearing():
    backend = jack_backend()
    answered = 0
    for i in range(600):  # 6 s of ticks; every 0xF7 comes back through the input at once
        now = i * 0.01
        backend.heartbeat(now)
        if len(backend.guard.sent) > answered:
            answered = len(backend.guard.sent)
            backend.inp.items.append((END_OF_SYSEX, 0.0))
        assert backend.poll() is None  # echoes are passed over
        assert not backend.input_is_deaf(), f"deaf at {now:.2f} s although every 0xF7 came back"
    assert answered >= 10


def test_a_stalled_server_restarts_the_heartbeat():
    backend = jack_backend()
    for i in range(300):
        backend.heartbeat(i * 0.01)
    assert backend.input_is_deaf()
    backend.restart_heartbeat()
    assert not backend.input_is_deaf()


# ---------------------------------------------------------------------------- null and recording
def test_the_null_backend_counts_what_it_is_sent_and_hears_nothing():
    null = NullBackend()
    for note in range(5):
        null.send([0x90, note, 100])
    assert null.sent == 5 and null.poll() is None and null.received == 0


def test_the_recording_backend_keeps_messages_with_their_times_and_plays_queued_input():
    clock = iter([10.0, 11.0])
    recording = RecordingBackend(clock=lambda: next(clock))
    message = [0x90, 60, 100]
    recording.send(message)
    message[2] = 0  # the tick reuses its list: what was sent must not change with it
    recording.send([0x80, 60, 0], time_s=12.5)
    recording.send([0xB0, 123, 0])
    assert recording.sent_log == [(10.0, [0x90, 60, 100]), (12.5, [0x80, 60, 0]), (11.0, [0xB0, 123, 0])]
    recording.feed([0x90, 64, 90], 0.002)
    assert recording.poll() == ([0x90, 64, 90], 0.002) and recording.poll() is None
    assert (recording.sent, recording.received) == (3, 1)


def test_a_closed_backend_refuses_to_send_and_hears_nothing():
    recording = RecordingBackend()
    recording.feed([0x90, 60, 100])
    recording.close()
    with pytest.raises(PortClosed) as info:
        recording.send([0x90, 60, 100])
    assert isinstance(info.value, ValueError) and isinstance(info.value, FireflyError)
    assert recording.poll() is None


def test_port_errors_are_os_errors_and_a_lost_server_a_connection_error():
    assert issubclass(PortError, FireflyError) and issubclass(PortError, OSError)
    assert issubclass(ServerGone, PortError) and issubclass(ServerGone, ConnectionError)


# ------------------------------------------------------------------------------------ supervisor
def test_ports_with_a_given_backend_open_on_it_and_count_through_it():
    recording = RecordingBackend()
    ports = Ports(PortConfig(), backend=recording)
    ports.open()
    assert ports.state == PortState.OPEN == "open" and ports.backend == "recording"
    ports.send([0xB0, 123, 0])  # what the daemon sends first: see the test below
    ports.send([0x90, 60, 100], time_s=1.5)
    recording.feed([0x80, 61, 0], 0.01)
    assert ports.poll() == ([0x80, 61, 0], 0.01) and ports.poll() is None
    status = json.loads(json.dumps(ports.status()))
    assert status["state"] == "open" and status["sent"] == 2 and status["received"] == 1
    assert status["ports"] == ["recording:out", "recording:in"]
    assert recording.sent_log[1] == (1.5, [0x90, 60, 100])
    ports.close()
    assert ports.state == "closed" and recording.closed
    ports.send([0x90, 60, 100])  # after close the null backend takes it: counted, never raised
    assert ports.unsent == 1


def test_after_opening_note_ons_wait_for_all_notes_off_and_all_else_goes_out():
    recording = RecordingBackend()
    ports = Ports(PortConfig(), backend=recording)
    ports.open()
    for message in ([0x90, 60, 100], [0x80, 60, 0], [0x90, 61, 0], [0xF8], [0xB1, 7, 100], [0xB1, 123, 0], [0x90, 62, 100]):
        ports.send(message)
    assert recording.messages == [[0x80, 60, 0], [0x90, 61, 0], [0xF8], [0xB1, 7, 100], [0xB1, 123, 0], [0x90, 62, 100]]
    assert ports.held == 1 and ports.status()["held"] == 1


def test_ports_that_lose_their_backend_play_on_into_the_null_one():
    recording = RecordingBackend()
    ports = Ports(PortConfig(), backend=recording)
    ports.open()
    ports.mark_lost()
    ports.send([0x90, 60, 100])
    assert ports.state == PortState.LOST and ports.losses == 1 and ports.unsent == 1 and ports.sent == 0
    assert not recording.sent_log and not recording.closed, "a lost server's ports are never touched again"
    assert ports.names() == [] and ports.poll() is None and not ports.input_is_deaf()


def test_the_state_equals_its_old_strings():
    assert [str(s) for s in PortState] == ["closed", "open", "none", "lost"]
    assert all(s == s.value for s in PortState)


def test_a_daemon_driven_through_the_recording_backend_plays_and_hears():
    from firefly_midi import presets
    from firefly_midi.daemon import Daemon

    values = presets.resolve("pulse-sine", ["swarm.freq_hz=8"])
    daemon = Daemon(values, "pulse-sine")
    recording = RecordingBackend()
    daemon.ports = Ports(PortConfig(), backend=recording)
    daemon.start()
    try:
        assert wait_for(lambda: any(m[0] & 0xF0 == 0x90 for m in recording.messages)), "no note played"
        for _ in range(5):
            recording.feed([0x90, 60, 110])
        assert wait_for(lambda: daemon.player.counts.flashes == 5), f"heard {daemon.player.counts.flashes} of 5 notes"
    finally:
        daemon.stop()
    first_note = next(i for i, m in enumerate(recording.messages) if m[0] & 0xF0 == 0x90 and m[2] > 0)
    assert [0xB0, 123, 0] in recording.messages[:first_note], "All Notes Off before the first note"
    assert recording.messages[-1][:2] == [0xB0 | recording.messages[-1][0] & 15, 123], "All Notes Off on stop"
    assert daemon.ports.status()["received"] == 5


def wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


# ------------------------------------------------------------------------------ the native JACK backend
class MovingClock:
    """A frame<->time mapping that re-anchors: each frame_at answers from the next mapping."""

    def __init__(self, frames: list[int]):
        self.frames = iter(frames)

    def frame_at(self, time_s: float) -> int:
        return next(self.frames)


class ScheduleRecorder:
    active = True

    def __init__(self, frames: list[int]):
        self.clock = MovingClock(frames)
        self.scheduled: list[tuple[list[int], int]] = []

    def schedule(self, message, frame: int) -> bool:
        self.scheduled.append((list(message), frame))
        return True


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=40))
def test_the_native_backend_never_gives_an_event_a_frame_before_the_one_sent_before_it(frames):
    """The mapping moves back by whole cycles after an xrun; the callback writes in frame order, so
    a later event mapped to an earlier frame would overtake (a note-on its note-off): the floor."""
    from firefly_midi.ports import NativeJackBackend

    client = ScheduleRecorder(frames)
    backend = NativeJackBackend(PortConfig(backend="jack-native"), client)
    for i in range(len(frames)):
        backend.send([0x90, i % 128, 100], 1.0 + i)
    given_frames = [frame for _, frame in client.scheduled]
    assert given_frames == [max(frames[: i + 1]) for i in range(len(frames))]
