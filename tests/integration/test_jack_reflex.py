"""The reflex (issue 16): notes the native callback plays in the very cycle an input note arrives.

On a private synchronous dummy server (64 frames at 48 kHz): first the client's mechanism alone (a
table armed by hand, claimed by one note-on, played at the input's frame plus its offset, exactly
once, and not at all once the tick has taken it back), then a daemon on ``--backend jack-native``
whose swarm answers a strong input: replies leave in the input's own cycle, no note-on doubles, and
every note-on gets its note-off.  Frames are read by our own sink and by ``jack_midi_dump -a``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from numba import cfunc

from firefly_midi import params as P
from firefly_midi import presets
from firefly_midi.daemon import Daemon
from firefly_midi.jack import binding, layout, process, rtcheck
from firefly_midi.jack import reflex as native
from firefly_midi.ports import PortConfig

from .conftest import wait_for_port
from .test_jack_native import DUMP_EVENT, _server, collect, frame_dump, running, wait_until

pytestmark = pytest.mark.jack
NOTE_ON, NOTE_OFF = 0x90, 0x80
PERIOD = 64


@pytest.fixture
def server(monkeypatch):
    """A private synchronous dummy server (64 frames at 48 kHz) for this test alone."""
    yield from _server(monkeypatch, sync=True)


def arm_one(client, gen: int, note: int, offset: int, lowest_velocity: int = 1) -> None:
    entry = np.array([layout.pack_message([NOTE_ON | 2, note, 99])], dtype=np.int64)
    assert native.arm(client.state, gen, 0, 0xFFFF, offset, entry, np.array([lowest_velocity]), np.array([0]), np.array([127]), 1)


@pytest.mark.timeout(120)
def test_an_armed_table_plays_once_in_the_inputs_cycle(server):
    source, player, sink = running("ffm-rsrc"), running("ffm-reflex"), running("ffm-rsink")
    try:
        source.connect(source.out_port, player.in_port)
        player.connect(player.out_port, sink.in_port)
        time.sleep(0.1)  # JACK applies a connection at a later cycle
        # armed, a note-on below the table's lowest velocity plays nothing
        arm_one(player, 1, 70, offset=5, lowest_velocity=50)
        source.schedule([NOTE_ON, 60, 40], source.clock.now_frame() + 2400)
        collect(player, 1, timeout=20)
        assert native.take_back(player.state) == native.NOT_CLAIMED
        # armed again (as the tick does after its poll): the next note-on claims it, the one after finds nothing
        arm_one(player, 2, 70, offset=5, lowest_velocity=50)
        start = (source.clock.now_frame() + 4800) // PERIOD * PERIOD  # a cycle's first frame: input + 5 stays in its cycle
        inputs = [start + 40, start + 1000 + 3]
        source.schedule([NOTE_ON, 61, 100], inputs[0])
        source.schedule([NOTE_ON, 62, 100], inputs[1])
        heard = collect(player, 2, timeout=20)
        assert heard == [([NOTE_ON, 61, 100], inputs[0]), ([NOTE_ON, 62, 100], inputs[1])]
        replies = collect(sink, 1, timeout=5)
        time.sleep(0.2)
        while (more := sink.poll_frame()) is not None:
            replies.append(more)
        assert replies == [([NOTE_ON | 2, 70, 99], inputs[0] + 5)]  # its frame + the offset, once
        assert (inputs[0] + 5) // PERIOD == inputs[0] // PERIOD  # (inside the same cycle here)
        assert native.take_back(player.state) == 1  # the played mask: the tick learns what left
        assert player.counters().late == 0
        # taken back before any input: the callback plays nothing, and says so
        arm_one(player, 3, 71, offset=0)
        assert native.take_back(player.state) == native.NOT_CLAIMED
        source.schedule([NOTE_ON, 63, 100], source.clock.now_frame() + 2400)
        collect(player, 1, timeout=20)
        time.sleep(0.1)
        assert sink.poll_frame() is None
        assert int(player.state[layout.REFLEXES]) == 1 and int(player.state[layout.REFLEX_NOTES]) == 1
    finally:
        for client in (source, player, sink):
            client.close()


def strong_input_values() -> dict:
    """A swarm that an input note sets flashing at once: strong input, short notes, few voices."""
    values = presets.resolve("pulse-sine")
    values.update({"input.strength": 20.0, "input.velocity_scaled": False, "mapping.note_ms": 30.0, "mapping.voices": 4})
    for key, value in values.items():
        values[key] = P.check(key, value)
    return values


def note_events(messages: list[tuple[list[int], int]]) -> list[tuple[int, str, int]]:
    """(frame, "on"/"off", note) of the note messages, a note-on of velocity 0 being an off."""
    out = []
    for message, frame in messages:
        kind = message[0] & 0xF0
        if kind in (NOTE_ON, NOTE_OFF) and len(message) == 3:
            out.append((frame, "on" if kind == NOTE_ON and message[2] else "off", message[1]))
    return out


@pytest.mark.timeout(240)
def test_a_daemon_answers_in_the_inputs_cycle_once_with_its_note_offs(server, tmp_path, compiled_kernels):
    dump, dump_name = frame_dump(server, tmp_path / "dump.txt", "rdump")
    source, sink = running("ffm-dsrc"), running("ffm-dsink")
    config = PortConfig(backend="jack-native", client="ffm-day", connect_out=sink.in_port, connect_in=source.out_port)
    daemon = Daemon(strong_input_values(), ports=config, engine="compiled")
    try:
        daemon.start()  # connected as its ports open: the sink hears every note it plays
        wait_for_port(server, f"{dump_name}:input")
        source.connect(source.out_port, f"{dump_name}:input")
        source.connect("ffm-day:out", f"{dump_name}:input")
        time.sleep(0.5)
        inputs, frame = [], source.clock.now_frame() + 4800
        for k in range(40):  # 0.2-0.5 s apart: the swarm's phases meet them anywhere in its cycle
            frame += 9600 + (k * 7919) % 14400
            inputs.append(frame)
            source.schedule([NOTE_ON, 60, 100], frame)
        wait_until(lambda: source.clock.now_frame() > inputs[-1] + 9600, 60, "the input to be played")
        counters = daemon.ports.midi.client.counters()
        shown = daemon.status()["ports"]["native"]["reflex"]  # what ctl status and the TUI show
        daemon.stop()  # every note-off, then All Notes Off
        time.sleep(0.2)
        heard = collect(sink, 0, timeout=1)
        assert daemon.ticks.reflex.played > 0, "no reflex was played: the swarm never answered at once"
        assert 0 < shown <= daemon.ticks.reflex.played
        events = note_events(heard)
        ons = [(frame, note) for frame, kind, note in events if kind == "on"]
        same_cycle = [f for f, _ in ons if any(f // PERIOD == i // PERIOD and f >= i for i in inputs)]
        assert len(same_cycle) >= daemon.ticks.reflex.played  # each reflex note left in its input's cycle
        sounding: dict[int, int] = {}
        for frame, kind, note in sorted(events, key=lambda e: e[0]):
            if kind == "on":
                assert note not in sounding, (
                    f"note {note} started again at {frame} while sounding; {sorted(events)} inputs {inputs} {counters}"
                )
                sounding[note] = frame
            else:
                sounding.pop(note, None)
        assert not sounding, f"notes left sounding: {sounding}"
        assert len(ons) == daemon.mapper.notes_out  # nothing doubled, nothing lost

        # jack_midi_dump (frames from its own start) hears the same gaps from each input to the replies
        # within a period of it
        def gaps(ons: list[int], ins: list[int]) -> list[int]:
            return sorted(f - i for f in ons for i in ins if 0 <= f - i < PERIOD)

        ours = gaps([f for f, _ in ons], inputs)
        lines = (tmp_path / "dump.txt").read_text().splitlines()
        dumped = [(int(m.group(1)), m.group(2).split()) for line in lines if (m := DUMP_EVENT.match(line))]
        dumped_inputs = [f for f, data in dumped if data == ["90", "3c", "64"]]
        replies = [f for f, data in dumped if data[0] == "90" and data[2] != "00" and data != ["90", "3c", "64"]]
        theirs = gaps(replies, dumped_inputs)
        assert ours and ours == theirs
    finally:
        if not daemon.stopped.is_set():
            daemon.stop()
        dump.terminate()
        dump.wait(5)
        source.close()
        sink.close()


@pytest.mark.timeout(300)
def test_the_ir_check_covers_the_reflex():
    """The callback's claim is in its body (a compare-and-swap, an instruction, not a call), and
    the body stays within libjack and LLVM intrinsics, with no error return."""
    binding.load_libjack()
    ir = cfunc(process.PROCESS_SIGNATURE, cache=False, error_model="numpy")(process._process).inspect_llvm()
    assert "cmpxchg" in rtcheck.body_ir(ir)
    verdict = rtcheck.inspect(ir)
    assert verdict.safe, verdict.offenders
