"""The native JACK client (firefly_midi/jack): exact output frames, input frames and times, a sysex
that never ends, and the proof that its callback is real-time safe.

The clients run in this process on a private server (synchronous unless a test says otherwise);
their callbacks are compiled, so this test's Python never stands between JACK and the callbacks.
Witnesses that do not share our code: ``jack_midi_dump -a`` (stamps what it hears with frame times),
``jack_midiseq`` (plays a loop at exact frame offsets) and a JACK-Client source.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import jack  # JACK-Client (a dependency): a source that writes any bytes, sysex included
import numpy as np
import pytest
from numba import carray

from firefly_midi.jack import layout, process, rtcheck
from firefly_midi.jack.client import NativeJackClient, NotActive

from .conftest import jack_env, private_jackd, stop_jackd, unavailable, wait_for_port

pytestmark = pytest.mark.jack
NOTE_ON = 0x90
DUMP_EVENT = re.compile(r"^\s*(\d+):\s+((?:[0-9a-f]{2} ?)+)")


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


RUNNING: dict[str, subprocess.Popen] = {}  # this file's private jackd processes, by server name


def _server(monkeypatch: pytest.MonkeyPatch, sync: bool) -> Iterator[dict[str, str]]:
    env = jack_env(f"ffm-native-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    RUNNING[env["JACK_DEFAULT_SERVER"]] = private_jackd(env, sync)
    for key in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER"):
        monkeypatch.setenv(key, env[key])  # libjack reads them when a client of this process opens
    yield env
    stop_jackd(RUNNING.pop(env["JACK_DEFAULT_SERVER"]))


@pytest.fixture
def server(monkeypatch):
    """A private synchronous dummy server (64 frames at 48 kHz) for this test alone."""
    yield from _server(monkeypatch, sync=True)


@pytest.fixture
def async_server(monkeypatch):
    yield from _server(monkeypatch, sync=False)


def running(name: str) -> NativeJackClient:
    client = NativeJackClient(name)
    client.__enter__()
    wait_until(lambda: client.counters().cycles > 10, 20, f"{name}'s callback to run")
    return client


def frame_dump(server: dict[str, str], path, prefix: str) -> tuple[subprocess.Popen, str]:
    """``jack_midi_dump -a`` (an independent witness: absolute JACK frames) writing to ``path``,
    and its client's name; a test without it is unavailable."""
    if not shutil.which("jack_midi_dump"):
        unavailable("jack_midi_dump is not installed (Debian: jackd2's example clients)")
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    with open(path, "w") as out:
        # line-buffered: its stdout is a file, which stdio would otherwise flush only at exit
        dump = subprocess.Popen(["stdbuf", "-oL", "jack_midi_dump", "-a", name], env=server, stdout=out, stderr=subprocess.STDOUT)
    return dump, name


def collect(client: NativeJackClient, count: int, timeout: float) -> list[tuple[list[int], int]]:
    received: list[tuple[list[int], int]] = []

    def more() -> bool:
        while (item := client.poll_frame()) is not None:
            received.append(item)
        return len(received) >= count

    wait_until(more, timeout, f"{count} messages (have {len(received)}: {received[-3:]})")
    return received


def schedule_irregular(source: NativeJackClient, sink: NativeJackClient, notes: int) -> list[int]:
    """Connect, then schedule ``notes`` note-ons (note k: key k) at irregular frames; the frames."""
    source.connect(source.out_port, sink.in_port)
    time.sleep(0.1)  # JACK applies a connection at a later cycle
    start = source.clock.now_frame() + 9600  # 200 ms ahead: every one reaches the callback in time
    wanted = [start + k * 997 + (k * k) % 64 for k in range(notes)]
    for k, frame in enumerate(wanted):
        assert source.schedule([NOTE_ON, k % 128, 100], frame)
    return wanted


def play_exact(source: NativeJackClient, sink: NativeJackClient, notes: int = 60) -> tuple[list[int], list[int]]:
    """Schedule ``notes`` note-ons at irregular frames from ``source``; the frames wanted and heard."""
    wanted = schedule_irregular(source, sink, notes)
    heard = collect(sink, notes, timeout=30)
    assert [message for message, _ in heard] == [[NOTE_ON, k % 128, 100] for k in range(notes)]
    return wanted, [frame for _, frame in heard]


def test_notes_land_at_their_exact_frames(server, tmp_path):
    dump, dump_name = frame_dump(server, tmp_path / "dump.txt", "dump")
    source, sink = running("ffm-src"), running("ffm-sink")
    try:
        wait_for_port(server, f"{dump_name}:input")
        source.connect(source.out_port, f"{dump_name}:input")
        wanted, heard = play_exact(source, sink)
        assert heard == wanted  # our own sink, in 64-bit frames
        assert source.counters().late == 0
        frames: list[int] = []

        def dumped() -> bool:
            lines = (tmp_path / "dump.txt").read_text().splitlines()
            frames[:] = [int(m.group(1)) for line in lines if (m := DUMP_EVENT.match(line))]
            return len(frames) >= len(wanted)

        wait_until(dumped, 10, "jack_midi_dump to print every note")
        # -a counts frames from the dump's own start: compare the spacing, frame for frame
        assert [frame - frames[0] for frame in frames] == [frame - wanted[0] for frame in wanted]
    finally:
        dump.terminate()
        dump.wait(5)
        source.close()
        sink.close()


def test_timed_sends_leave_a_lookahead_later_and_poll_gives_their_time(server):
    """send(time_s) goes out at time_s + lookahead; the receiver's poll() maps the frame back to it
    (each client maps from its own callback's entry times, so within a few ms on a loaded machine)."""
    source, sink = running("ffm-src"), running("ffm-sink")
    try:
        source.connect(source.out_port, sink.in_port)
        time.sleep(0.1)
        due = [time.monotonic() + 0.05 + 0.01 * k for k in range(20)]
        for k, when in enumerate(due):
            assert source.send([0x91, k, 64], when)
        heard: list[tuple[list[int], float]] = []

        def more() -> bool:
            while (item := sink.poll()) is not None:
                heard.append(item)
            return len(heard) >= 20

        wait_until(more, 20, "20 notes")
        arrived = np.array([when for _, when in heard])
        expected = np.array(due) + source.lookahead_ms / 1000
        assert np.all(np.abs(arrived - expected) < 0.010), (arrived - expected) * 1e3
        # steady, except where the frame clock lost time (the dummy driver on a loaded machine): then
        # the mapping follows within 50 ms (clock.ANCHOR_HALF_WINDOWS_PER_S)
        assert np.mean(np.abs(np.diff(arrived) - 0.01) < 0.0005) >= 0.8, np.diff(arrived) * 1e3
    finally:
        source.close()
        sink.close()


def test_input_frames_from_an_independent_sequencer(server):
    """jack_midiseq plays a 100 ms loop with notes 2400 frames apart: the frames we read are exact,
    and poll() dates each message when it happened (before we read it, not long before)."""
    if not shutil.which("jack_midiseq"):
        unavailable("jack_midiseq is not installed (Debian: jackd2's example clients)")
    name = f"seq-{uuid.uuid4().hex[:6]}"
    sequencer = subprocess.Popen(["jack_midiseq", name, "4800", "0", "60", "1200", "2400", "62", "1200"], env=server)
    sink = running("ffm-sink")
    try:
        wait_for_port(server, f"{name}:out")
        sink.connect(f"{name}:out", sink.in_port)
        times, frames = [], []

        def more() -> bool:
            while (item := sink.poll_frame()) is not None:
                message, frame = item
                if message[0] == NOTE_ON:
                    frames.append(frame)
                    times.append((sink.clock.time_at(frame), time.monotonic()))
            return len(frames) >= 12

        wait_until(more, 20, "12 note-ons from jack_midiseq")
        assert set(np.diff(frames)) == {2400}
        for happened, read in times:
            assert -0.005 < read - happened < 0.5
        assert sink.counters().lost_in == 0
    finally:
        sequencer.terminate()
        sequencer.wait(5)
        sink.close()


def test_an_unterminated_sysex_does_not_deafen_the_input(server):
    events = [
        b"\xf0\x7e\x7f\x09\x01",  # a sysex that never ends
        b"\x90\x3c\x64",  # heard: the status byte ends the sysex
        b"\xf0\x01\x02\x03",  # another, split over two events ...
        b"\x04\x05\xf7",  # ... and ended properly
        b"\xf0\x01\xf8\x02",  # a clock tick inside a sysex still passes
        b"\x80\x3c\x00",
    ]
    pending: queue.Queue[bytes] = queue.Queue()
    source = jack.Client(f"ffm-sysex-{uuid.uuid4().hex[:6]}", no_start_server=True)
    port = source.midi_outports.register("out")

    @source.set_process_callback
    def _(frames):
        port.clear_buffer()
        if not pending.empty():
            port.write_midi_event(0, pending.get_nowait())

    sink = running("ffm-sink")
    try:
        source.activate()
        source.connect(port, sink.in_port)
        time.sleep(0.1)
        for event in events:
            pending.put(event)
        heard = [message for message, _ in collect(sink, 3, timeout=20)]
        assert heard == [[0x90, 0x3C, 0x64], [0xF8], [0x80, 0x3C, 0x00]]
        counters = sink.counters()
        assert (counters.sysex_dropped, counters.sysex_unterminated) == (3, 2)
    finally:
        source.deactivate()
        source.close()
        sink.close()


def test_floods_are_counted_never_blocking(server):
    """Full rings refuse and count: the TX ring and the pending table hold 2,048 events between them,
    and an RX ring nobody reads keeps the first 1,024 messages and counts the rest."""
    source, sink = running("ffm-src"), running("ffm-sink")
    try:
        far = source.clock.now_frame() + 48_000 * 600  # ten minutes ahead: none becomes due
        accepted = sum(source.schedule([NOTE_ON, 1, 1], far + k) for k in range(3000))
        assert layout.TX_CAPACITY <= accepted <= layout.TX_CAPACITY + layout.PENDING_CAPACITY
        assert source.counters().tx_full == 3000 - accepted
        wait_until(lambda: source.counters().pending == layout.PENDING_CAPACITY, 10, "the pending table to fill")
        source.close()

        source = running("ffm-src2")
        source.connect(source.out_port, sink.in_port)
        time.sleep(0.1)
        soon = source.clock.now_frame() + 4_800
        for k in range(1500):  # 30 frames apart: under a second of notes, nothing polled meanwhile
            note = [NOTE_ON, k % 128, 1]
            wait_until(lambda note=note, k=k: source.schedule(note, soon + 30 * k), 10, "room on the TX ring")
        wait_until(lambda: sink.counters().received + sink.counters().rx_overflow >= 1500, 20, "1500 notes to arrive")
        assert (sink.counters().received, sink.counters().rx_overflow) == (layout.RX_CAPACITY, 1500 - layout.RX_CAPACITY)
        assert len(collect(sink, layout.RX_CAPACITY, timeout=5)) == layout.RX_CAPACITY
    finally:
        source.close()
        sink.close()


def test_server_loss_is_seen_and_the_client_closes(server):
    client = running("ffm-lost")
    try:
        stop_jackd(RUNNING[server["JACK_DEFAULT_SERVER"]])
        wait_until(lambda: client.shut_down, 20, "JACK's shutdown callback")
        assert not client.active
        with pytest.raises(NotActive):
            client.send([NOTE_ON, 60, 100])
    finally:
        client.close()


@pytest.mark.async_jack
def test_exact_offsets_on_an_asynchronous_server(async_server):
    """Asynchronous jack2 hands a client the buffer its source wrote in an earlier cycle when either
    missed one (conftest.start_jackd): the receiver then stamps it whole cycles late, or twice; and a
    cycle the source itself missed sends its events late.  What the native output controls still
    holds: every note arrives, at its own offset within the cycle unless counted late."""
    source, sink = running("ffm-src"), running("ffm-sink")
    try:
        wanted = schedule_irregular(source, sink, 30)
        first: dict[int, int] = {}

        def all_heard() -> bool:
            while (item := sink.poll_frame()) is not None:
                first.setdefault(item[0][1], item[1])
            return len(first) == len(wanted)

        wait_until(all_heard, 30, "every note")
        cycles_late = [(first[k] - frame) / 64 for k, frame in enumerate(wanted)]
        assert all(0 <= late <= 16 for late in cycles_late), str(cycles_late)
        # a cycle the source missed makes its events late: sent at the next cycle's start, and counted
        assert sum(not late.is_integer() for late in cycles_late) <= source.counters().late, str(cycles_late)
        assert cycles_late.count(0) >= len(wanted) * 0.8, str(cycles_late)
    finally:
        source.close()
        sink.close()


def test_the_real_callback_is_real_time_safe():
    verdict = rtcheck.check(process._process, process.PROCESS_SIGNATURE)
    assert verdict.safe, verdict
    assert "jack_midi_event_reserve" in verdict.calls and verdict.returns == ("ret i32 0",)
    for function, signature in ((process._xrun, process.XRUN_SIGNATURE), (process._shutdown, process.SHUTDOWN_SIGNATURE)):
        assert rtcheck.check(function, signature).safe


def _allocates(nframes, arg):
    st = carray(arg, (8,), np.int64)
    scratch = np.zeros(nframes, dtype=np.int64)  # the allocator, on the real-time thread
    st[0] = scratch.sum()
    return 0


def _can_fail(nframes, arg):
    st = carray(arg, (8,), np.int64)
    if nframes == 0:
        raise ValueError("no frames")  # an error return: numba's wrapper would take the GIL
    st[0] = nframes
    return 0


@pytest.mark.parametrize("unsafe", [_allocates, _can_fail])
def test_the_check_catches_an_unsafe_callback(unsafe):
    verdict = rtcheck.check(unsafe, process.PROCESS_SIGNATURE)
    assert not verdict.safe
    if unsafe is _allocates:
        assert any(name.startswith("NRT_") for name in verdict.offenders), verdict
    else:
        assert any(name.startswith("ret i32") for name in verdict.offenders), verdict
