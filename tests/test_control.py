"""The control plane against a real, playing daemon in this process, over a real Unix socket.

The daemon runs portless (JACK_DEFAULT_SERVER names no server, so no MIDI backend opens) with its
real tick thread; the server runs on its own thread, as in ``firefly-midi daemon``.  Clients here are
raw sockets (to send what no client library would), the blocking ``request()``, ``ControlClient`` and
``firefly-midi ctl`` itself.

Every test passes alone and in any order: tests on the shared daemon (``path``) set what they assert
and leave its preset, pause state and bindings alone; a test that switches presets, pauses, resets,
learns or stops gets a daemon of its own (``own``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firefly_midi import __version__, control, presets
from firefly_midi.control import ControlClient, ControlError, SocketBusyError, claim_socket, request
from firefly_midi.ctl import add_ctl_parser, ctl_markdown, run_ctl
from firefly_midi.daemon import Daemon
from firefly_midi.errors import FireflyError
from firefly_midi.ports import PortConfig

N = 4096  # enough fireflies that a frame is ~12 KB and a subscriber that never reads falls behind fast
SPEC_FRAME_FIELDS = {
    "frame",
    "time_s",
    "preset",
    "paused",
    "n",
    "stride",
    "phase",
    "grid",
    "flashes",
    "order_parameter",
    "tempo_bpm",
    "nominal_tempo_bpm",
    "drift_bpm",
    "notes_out",
    "flashes_in",
    "dropped_in",
    "dropped_frames",
    "lateness_us",
    "skipped_ticks",
    "ports",
}
ERROR_CODES = {"bad_json", "unknown_command", "bad_argument", "bad_param", "not_found", "too_large", "internal"}
OWN_N = 256  # a daemon of a test's own: small, so it starts in a moment


@pytest.fixture(scope="module")
def folder():
    """A short folder: a Unix socket path is at most 107 bytes, and pytest's tmp_path can be longer."""
    path = Path(tempfile.mkdtemp(prefix="ffctl-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def portless_daemon(*assignments: str):
    """A playing pulse-sine daemon with no MIDI backend (its ports count what they would send)."""
    saved = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = f"firefly-no-such-server-{os.getpid()}"
    try:
        d = Daemon(presets.resolve("pulse-sine", list(assignments)), "pulse-sine", PortConfig(backend="jack", use_input=False))
        d.start()
        try:
            yield d
        finally:
            d.stop()
    finally:
        if saved is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = saved


@pytest.fixture(scope="module")
def daemon():
    with portless_daemon(f"swarm.n={N}") as d:
        yield d


@pytest.fixture(scope="module")
def server(daemon, folder):
    srv = control.serve(daemon, folder / "control.sock").start()
    yield srv
    srv.close()
    assert not srv.path.exists(), "close() removes the socket"


@pytest.fixture(scope="module")
def path(server):
    return server.path


@pytest.fixture
def own(folder):
    """A daemon and server of this test's own, playing on one channel: (daemon, socket path)."""
    with portless_daemon(f"swarm.n={OWN_N}", "mapping.channels=3") as d:
        srv = control.serve(d, Path(tempfile.mkdtemp(prefix="own-", dir=folder)) / "c.sock").start()
        try:
            yield d, srv.path
        finally:
            srv.close()


class Raw:
    """A bare connection: send any bytes, read lines (the hello is read on connect)."""

    def __init__(self, path: Path, timeout: float = 5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buffer = b""
        self.hello = self.line()

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def ask(self, **request) -> dict:
        self.send(json.dumps(request) + "\n")
        return self.reply()

    def line(self) -> dict:
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(1 << 20)
            assert chunk, "the server closed the connection"
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def reply(self) -> dict:
        """The next line that is not a telemetry frame."""
        while "frame" in (message := self.line()):
            pass
        return message

    def close(self) -> None:
        self.sock.close()


def eventually(check, timeout: float = 2.0):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)
    return result


def ctl(path: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="firefly-midi")
    add_ctl_parser(parser.add_subparsers(dest="command", required=True))
    return run_ctl(parser.parse_args(["ctl", "--socket", str(path), *argv]))


# ------------------------------------------------------------------------------------------- basics
def test_hello_then_status(path):
    raw = Raw(path)
    assert raw.hello == {"hello": "firefly-midi", "protocol": 1, "version": __version__}
    reply = raw.ask(id="s1", cmd="status")
    assert reply["id"] == "s1" and reply["ok"] is True
    status = reply["result"]
    for key in ("preset", "params", "n", "order_parameter", "tempo_bpm", "nominal_tempo_bpm", "notes_out", "flashes_in"):
        assert key in status
    for key in ("dropped_in", "ticks", "skipped_ticks", "lateness_us", "ports", "paused"):
        assert key in status
    assert status["n"] == N and status["preset"] == "pulse-sine"
    assert {"p50", "p99", "max"} <= set(status["lateness_us"])
    raw.close()


def test_socket_is_owner_only(path):
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_default_folder_is_made_owner_only(monkeypatch, daemon, folder):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder / "run"))
    default = control.default_socket_path()
    assert default == folder / "run" / "firefly-midi" / "control.sock"
    srv = control.serve(daemon)  # claimed, not started: still refuses a second claim
    try:
        assert stat.S_IMODE(os.stat(default.parent).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(default).st_mode) == 0o600
    finally:
        srv.close()
    assert not default.exists()


def test_get_set_round_trip_is_visible_in_status(path, daemon):
    assert request(path, "set", key="swarm.coupling", value=0.25) == 0.25
    assert request(path, "set", key="swarm.coupling", value="0.2") == 0.2  # text, as on the command line
    eventually(lambda: request(path, "get", key="swarm.coupling") == 0.2)  # applied at the next tick
    eventually(lambda: request(path, "status")["params"]["swarm.coupling"] == 0.2)
    everything = request(path, "get")
    assert everything["swarm.n"] == N and everything["swarm.coupling"] == 0.2
    assert request(path, "set", key="mapping.channels", value=[1, 2]) == [1, 2]
    assert request(path, "set", key="mapping.channels", value="1") == [1]


@pytest.mark.parametrize(
    ("request_", "code", "words"),
    [
        ({"cmd": "set", "key": "swarm.coupling", "value": "lots"}, "bad_param", ["swarm.coupling", "0..100"]),
        ({"cmd": "set", "key": "swarm.coupling", "value": 1e9}, "bad_param", ["swarm.coupling", "0..100"]),
        ({"cmd": "set", "key": "swarm.couplin", "value": 1}, "bad_param", ["did you mean swarm.coupling"]),
        ({"cmd": "get", "key": "swarm.nn"}, "bad_param", ["did you mean swarm.n"]),
        ({"cmd": "stauts"}, "unknown_command", ["did you mean 'status'"]),
        ({"cmd": ["status"]}, "unknown_command", ["commands: status"]),
        ({"id": 1}, "bad_argument", ['"cmd"']),
        ({"cmd": "set", "key": "swarm.coupling"}, "bad_argument", ["'value'"]),
        ({"cmd": "set", "key": 3, "value": 1}, "bad_argument", ["key must be a non-empty string"]),
        ({"cmd": "get", "key": ""}, "bad_argument", ["key must be a non-empty string"]),
        ({"cmd": "subscribe", "points": 100.5}, "bad_argument", ["points must be an integer"]),
        ({"cmd": "status", "verbose": True}, "bad_argument", ["'verbose'"]),
        ({"cmd": "forward", "seconds": 0}, "bad_argument", ["0 < seconds <= 600"]),
        ({"cmd": "forward", "seconds": 601}, "bad_argument", ["0 < seconds <= 600"]),
        ({"cmd": "forward", "seconds": "soon"}, "bad_argument", ["number"]),
        ({"cmd": "forward", "seconds": True}, "bad_argument", ["number"]),
        ({"cmd": "subscribe", "fps": 0}, "bad_argument", ["1..60"]),
        ({"cmd": "subscribe", "points": 10}, "bad_argument", ["16..65536"]),
        ({"cmd": "preset", "name": "no-such-preset"}, "not_found", ["no-such-preset", "pulse-sine"]),
        ({"cmd": "preset", "name": ""}, "bad_argument", ["name"]),
        ({"cmd": "save", "name": "../escape"}, "bad_param", ["preset name"]),
    ],
)
def test_errors_are_clear_replies(path, request_, code, words):
    raw = Raw(path)
    reply = raw.ask(id=7, **request_) if "id" not in request_ else raw.ask(**request_)
    assert reply["ok"] is False and reply["id"] in (7, 1)
    assert reply["error"]["code"] == code, reply
    for word in words:
        assert word in reply["error"]["message"], reply
    assert raw.ask(id=8, cmd="get", key="swarm.n") == {"id": 8, "ok": True, "result": N}  # still usable
    raw.close()


def test_malformed_json_gets_bad_json_and_the_connection_goes_on(path):
    raw = Raw(path)
    for line in (b"{not json\n", b"[1, 2]\n", b"\n", b"\xff\xfe\n", b'"status"\n'):
        raw.send(line)
        reply = raw.reply()
        assert reply["ok"] is False and reply["error"]["code"] == "bad_json" and reply["id"] is None
    assert raw.ask(id="after", cmd="get", key="swarm.n")["result"] == N
    raw.close()


def test_ten_megabyte_line_is_too_large_and_nothing_stalls(path, daemon):
    raw = Raw(path, timeout=10.0)
    ticks = daemon.clock.ticks
    huge = b'{"cmd": "set", "key": "swarm.coupling", "value": "' + b"9" * (10 * 1024 * 1024) + b'"}\n'
    sender = threading.Thread(target=raw.send, args=(huge + b'{"id": 2, "cmd": "get", "key": "swarm.n"}\n',))
    sender.start()
    other = request(path, "get", key="swarm.n")  # another client is served meanwhile
    sender.join(10)
    assert other == N
    first = raw.reply()
    assert first["ok"] is False and first["error"]["code"] == "too_large"
    assert raw.reply() == {"id": 2, "ok": True, "result": N}  # the rest of the huge line was discarded
    eventually(lambda: daemon.clock.ticks > ticks + 50)
    assert request(path, "get", key="swarm.coupling") != 9.0
    raw.close()


def test_line_at_the_limit_is_read_one_byte_over_is_not(path):
    raw = Raw(path)
    request_ = b'{"id": 3, "cmd": "status", "pad": "'
    fill = control.LINE_LIMIT - len(request_) - 2
    raw.send(request_ + b"x" * fill + b'"}\n')
    assert raw.reply()["error"]["code"] == "bad_argument"  # read and parsed: only the unknown argument is wrong
    raw.send(request_ + b"x" * (fill + 1) + b'"}\n')
    assert raw.reply()["error"]["code"] == "too_large"
    assert raw.ask(id=4, cmd="get", key="swarm.n")["result"] == N
    raw.close()


def test_many_requests_in_one_write_get_replies_in_order(path):
    raw = Raw(path)
    raw.send("".join(json.dumps({"id": i, "cmd": "get", "key": "swarm.n"}) + "\n" for i in range(200)))
    assert [raw.reply()["id"] for _ in range(200)] == list(range(200))
    raw.close()


def test_fifty_clients_at_once(path, server, daemon):
    async def main():
        clients = [await ControlClient(path).connect() for _ in range(50)]
        try:
            results = await asyncio.gather(*(c.request("get", key="swarm.n") for c in clients))
            statuses = await asyncio.gather(*(c.request("status") for c in clients))
            made, sent = server.frames_made, server.frames_sent
            frames = await asyncio.gather(*(first_frames(c, 10) for c in clients))
            return results, statuses, frames, server.frames_made - made, server.frames_sent - sent
        finally:
            await asyncio.gather(*(c.close() for c in clients))

    async def first_frames(client, count):
        got = []
        async for frame in client.subscribe(fps=30, points=256):
            got.append(frame)
            if len(got) == count:
                return got

    ticks = daemon.clock.ticks
    results, statuses, frames, made, sent = asyncio.run(asyncio.wait_for(main(), 20))
    assert results == [N] * 50
    assert all(s["n"] == N for s in statuses)
    assert all(len(f) == 10 for f in frames)
    assert sent >= 500 and made <= sent / 5, f"{made} snapshots for {sent} frames: subscribers at one rate share them"
    assert daemon.clock.ticks > ticks


def test_disconnects_are_quiet(path, server, caplog):
    before = set(server._connections)
    for _ in range(20):
        raw = Raw(path)
        raw.send(b'{"id": 1, "cmd": "subscribe"}\n{"id": 2, "cmd": "status"}\n{"id": 3, "cmd"')  # and hang up mid-line
        raw.sock.shutdown(socket.SHUT_RDWR)
        raw.close()
    eventually(lambda: set(server._connections) <= before)
    assert request(path, "get", key="swarm.n") == N
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


# ------------------------------------------------------------------------------------------ commands
def status(path: Path) -> dict:
    return request(path, "status")


def unsent(path: Path) -> int:
    """MIDI messages the portless daemon played: its ports count them."""
    return status(path)["ports"]["unsent"]


def first_frame(path: Path, points: int = OWN_N) -> dict:
    async def main():
        async with ControlClient(path) as client:
            async for frame in client.subscribe(fps=60, points=points):
                return frame

    return asyncio.run(asyncio.wait_for(main(), 10))


def paused(path: Path) -> None:
    assert request(path, "pause") == {}
    eventually(lambda: status(path)["paused"])


def test_save_then_load_the_saved_preset(own):
    _, path = own
    request(path, "set", key="swarm.coupling", value=0.2)
    eventually(lambda: request(path, "get", key="swarm.coupling") == 0.2)
    saved = request(path, "save", name="ctl-saved")
    assert Path(saved["path"]) == presets.user_dir() / "ctl-saved.toml" and Path(saved["path"]).is_file()
    assert request(path, "presets")["ctl-saved"] == saved["path"]
    request(path, "set", key="swarm.coupling", value=0.3)
    eventually(lambda: request(path, "get", key="swarm.coupling") == 0.3)
    assert request(path, "preset", name="ctl-saved") == {"preset": "ctl-saved"}
    now = eventually(lambda: (s := status(path))["preset"] == "ctl-saved" and s)
    assert now["n"] == OWN_N and now["params"]["swarm.coupling"] == 0.2


def test_pause_holds_the_swarm_forward_runs_it_ahead_resume_plays_on(own):
    _, path = own
    paused(path)
    held = status(path)
    later = eventually(lambda: (s := status(path))["ticks"] > held["ticks"] + 10 and s)
    assert later["time_s"] == held["time_s"], "the clock ticks, the swarm does not step"
    assert request(path, "forward", seconds=10) == {"seconds": 10}
    eventually(lambda: status(path)["time_s"] >= held["time_s"] + 10)
    assert request(path, "resume") == {}
    ahead = eventually(lambda: not (s := status(path))["paused"] and s)
    eventually(lambda: status(path)["time_s"] > ahead["time_s"])


def test_panic_sends_all_notes_off_on_every_channel_used(own):
    _, path = own
    eventually(lambda: status(path)["notes_out"] > 0, timeout=10)  # channel 3, its only one, has played
    paused(path)  # nothing sounds now, and nothing new will: the count holds still
    before = unsent(path)
    assert request(path, "panic") == {}
    eventually(lambda: unsent(path) > before)
    ticks = status(path)["ticks"]
    eventually(lambda: status(path)["ticks"] > ticks + 10)
    assert unsent(path) == before + 1, "no note to end: one All Notes Off, on channel 3"


def test_reset_draws_the_same_start_again(own):
    _, path = own
    paused(path)
    request(path, "forward", seconds=10)
    eventually(lambda: status(path)["time_s"] >= 10)
    moved = first_frame(path)["phase"]
    assert request(path, "reset") == {}
    eventually(lambda: status(path)["time_s"] == 0)
    start = first_frame(path)["phase"]
    request(path, "forward", seconds=5)
    eventually(lambda: status(path)["time_s"] >= 5)
    request(path, "reset")
    eventually(lambda: status(path)["time_s"] == 0)
    assert first_frame(path)["phase"] == start != moved


def test_stop_asks_the_daemon_to_exit(own):
    daemon, path = own
    assert request(path, "stop") == {}
    assert daemon.stopped.is_set()  # run_forever would now silence everything and return 0


# ----------------------------------------------------------------------------------------- telemetry
def test_subscribe_delivers_frames_with_the_spec_fields(path):
    async def main():
        async with ControlClient(path) as client:
            frames, times = [], []
            async for frame in client.subscribe(fps=30, points=1024):
                frames.append(frame)
                times.append(time.monotonic())
                if len(frames) == 46:
                    break
            # replies still arrive while frames flow on the same connection
            assert await client.request("get", key="swarm.n") == N
            return frames, times

    frames, times = asyncio.run(asyncio.wait_for(main(), 10))
    rate = (frames[-1]["frame"] - frames[1]["frame"]) / (times[-1] - times[1])
    assert rate >= 29.5, f"{rate:.1f} frames/s"
    for frame in frames:
        assert set(frame) >= SPEC_FRAME_FIELDS, SPEC_FRAME_FIELDS - set(frame)
        assert frame["n"] == N and frame["stride"] == 4 and len(frame["phase"]) == N // 4 and frame["grid"] is None
        assert all(0 <= p <= 65535 for p in frame["phase"])
        assert frame["dropped_frames"] == 0
    flashes = [f for frame in frames for f in frame["flashes"]]
    assert len(flashes) > N  # 1.5 s of fireflies flashing at 1.33 Hz: every flash, none lost
    assert all(0 <= i < N and t >= 0 for i, t in flashes)
    assert [f["frame"] for f in frames] == list(range(frames[0]["frame"], frames[0]["frame"] + len(frames)))


def new_connection(server, before: set):
    """The server's side of the one connection made since ``before`` was taken."""
    return eventually(lambda: len(new := set(server._connections) - before) == 1 and new.pop())


def test_a_subscriber_that_never_reads_holds_up_no_one(path, server, daemon):
    before = set(server._connections)
    stuck = Raw(path)
    stuck_conn = new_connection(server, before)
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.send(json.dumps({"id": 1, "cmd": "subscribe", "fps": 60, "points": 65536}) + "\n")
    dropped_before = server.frames_dropped
    ticks = daemon.clock.ticks

    async def main():
        async with ControlClient(path) as client:
            received, times = [], []
            async for frame in client.subscribe(fps=30, points=2048):
                received.append(frame["frame"])
                times.append(time.monotonic())
                if len(received) == 61:
                    return received, times

    started = time.monotonic()
    received, times = asyncio.run(asyncio.wait_for(main(), 10))
    elapsed = time.monotonic() - started
    rate = (received[-1] - received[1]) / (times[-1] - times[1])
    assert rate >= 29.5, f"{rate:.1f} frames/s for the reading subscriber"
    assert server.frames_dropped > dropped_before, "the stuck subscriber's frames were dropped"
    assert daemon.clock.ticks - ticks >= 0.7 * elapsed / daemon.clock.tick_s  # the daemon kept ticking
    assert stuck_conn.dropped
    assert stuck_conn.writer.transport.get_write_buffer_size() <= control.FRAME_BACKLOG + 64 * 1024
    assert request(path, "get", key="swarm.n") == N
    stuck.close()


def test_a_client_that_never_reads_its_replies_is_no_longer_read(path, server):
    before = set(server._connections)
    flood = Raw(path)
    conn = new_connection(server, before)
    flood.sock.setblocking(False)
    line = b'{"cmd": "status"}\n' * 1000
    sent, deadline = 0, time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            sent += flood.sock.send(line)
        except BlockingIOError:
            time.sleep(0.05)
            try:
                sent += flood.sock.send(line)
            except BlockingIOError:
                break  # the server stopped reading it: backpressure, not memory
    else:
        pytest.fail("the server read a flood of requests whose replies nobody read, without end")
    assert conn.writer.transport.get_write_buffer_size() <= control.FRAME_BACKLOG + 64 * 1024
    assert request(path, "get", key="swarm.n") == N  # everyone else is served
    flood.close()


def test_unsubscribe_stops_frames(path):
    raw = Raw(path)
    assert raw.ask(id=1, cmd="subscribe", fps=60, points=16)["ok"]
    assert "frame" in raw.line()
    assert raw.ask(id=2, cmd="unsubscribe") == {"id": 2, "ok": True, "result": {}}
    raw.send('{"id": 3, "cmd": "get", "key": "swarm.n"}\n')
    time.sleep(0.1)
    assert raw.ask(id=4, cmd="get", key="swarm.n")["id"] == 3  # nothing but the replies: no frame came in between
    assert raw.reply()["id"] == 4
    raw.close()


def test_subscribing_again_changes_points_and_rate_on_the_same_feed(path):
    raw = Raw(path)
    assert raw.ask(id=1, cmd="subscribe", fps=30, points=16)["ok"]
    first = [raw.line() for _ in range(3)]
    assert all(len(f["phase"]) == 16 and f["stride"] == N // 16 for f in first)
    raw.send('{"id": 2, "cmd": "subscribe", "fps": 60, "points": 256}\n')
    last = first[-1]["frame"]
    while "frame" in (message := raw.line()):  # frames of the old rate may come before the reply
        last = message["frame"]
    assert message == {"id": 2, "ok": True, "result": {}}
    started = time.monotonic()
    after = [raw.line() for _ in range(30)]
    elapsed = time.monotonic() - started
    assert all(len(f["phase"]) == 256 and f["stride"] == N // 256 for f in after)
    assert [f["frame"] for f in after] == list(range(last + 1, last + 31)), "one feed, numbered on"
    assert elapsed < 0.9, f"30 frames in {elapsed:.2f} s: the new rate, 60 fps"
    raw.close()


# --------------------------------------------------------------------------------- random lines
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_requests = st.fixed_dictionaries(
    {"cmd": st.sampled_from(["status", "get", "set", "presets", "unsubscribe", "save", "subscribe", "no-such"]) | st.text(max_size=8)},
    optional={"id": _json, "key": st.text(max_size=20) | _json, "value": _json, "name": _json, "fps": _json, "points": _json},
)
_lines = st.one_of(
    st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"")),
    st.text(max_size=300).map(lambda s: s.replace("\n", "").encode()),
    _json.map(lambda v: json.dumps(v).encode()),
    _requests.map(lambda r: json.dumps(r).encode()),
)


@pytest.fixture
def conversation(path):
    raw = Raw(path)
    yield raw
    raw.close()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(line=_lines)
def test_any_line_gets_exactly_one_reply(conversation, line):
    conversation.send(line + b"\n" + b'{"id": "sync", "cmd": "unsubscribe"}\n')
    reply = conversation.reply()
    assert set(reply) == {"id", "ok", "result"} if reply["ok"] else set(reply) == {"id", "ok", "error"}
    if not reply["ok"]:
        assert reply["error"]["code"] in ERROR_CODES and reply["error"]["message"]
        assert reply["error"]["code"] != "internal", reply
    assert conversation.reply() == {"id": "sync", "ok": True, "result": {}}  # exactly one: the next is ours


# ----------------------------------------------------------------------------------- the socket file
def test_a_second_daemon_on_the_same_socket_is_refused(path):
    with pytest.raises(SocketBusyError) as caught:
        claim_socket(path)
    assert str(caught.value).startswith(f"another firefly-midi daemon is running on {path} (pid {os.getpid()})")
    assert isinstance(caught.value, RuntimeError) and isinstance(caught.value, ControlError)
    assert request(path, "get", key="swarm.n") == N  # the live one is untouched


def test_a_stale_socket_of_a_killed_process_is_replaced(folder, daemon):
    stale = folder / "stale.sock"
    code = f"import os, socket; s = socket.socket(socket.AF_UNIX); s.bind({str(stale)!r}); s.listen(); os.kill(os.getpid(), 9)"
    subprocess.run([sys.executable, "-c", code], check=False, timeout=30)
    assert stale.exists()
    srv = control.serve(daemon, stale).start()
    try:
        assert request(stale, "get", key="swarm.n") == N
    finally:
        srv.close()
    assert not stale.exists()


def test_a_plain_leftover_file_is_replaced_but_not_a_file_with_data(folder, daemon):
    left = folder / "left.sock"
    left.touch()
    srv = control.serve(daemon, left).start()
    try:
        assert request(left, "get", key="swarm.n") == N
    finally:
        srv.close()
    precious = folder / "precious.sock"
    precious.write_text("keep me")
    with pytest.raises(ControlError, match="is not a control socket"):
        claim_socket(precious)
    assert precious.read_text() == "keep me"


def test_close_removes_only_its_own_socket(folder, daemon):
    mine = folder / "mine.sock"
    srv = control.serve(daemon, mine).start()
    mine.unlink()
    replacement = socket.socket(socket.AF_UNIX)
    replacement.bind(str(mine))  # someone else's now
    srv.close()
    assert mine.exists()
    replacement.close()


def test_a_path_too_long_for_a_unix_socket_is_a_clear_error(folder):
    with pytest.raises(ControlError, match="too long"):
        claim_socket(folder / ("x" * 120) / "control.sock")


# ---------------------------------------------------------------------------------------------- ctl
def test_ctl_exit_codes(path, folder, capsys):
    assert ctl(path, "set", "swarm.coupling", "0.2") == 0
    assert capsys.readouterr().out.strip() == "swarm.coupling = 0.2"
    assert ctl(path, "get", "swarm.n") == 0
    assert capsys.readouterr().out.strip() == str(N)

    assert ctl(path, "set", "swarm.coupling", "1000") == 2
    captured = capsys.readouterr()
    assert "swarm.coupling must be a number in 0..100" in captured.err and not captured.out
    assert ctl(path, "preset", "no-such-preset") == 2
    assert "no preset named 'no-such-preset'" in capsys.readouterr().err

    nowhere = folder / "nobody-here.sock"
    assert ctl(nowhere, "status") == 3
    assert f"no firefly-midi daemon on {nowhere}" in capsys.readouterr().err


def test_the_no_daemon_hint_names_the_command_not_a_guessed_path(folder, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(folder / "venv" / "bin" / "firefly-midi"), "ctl", "status"])
    monkeypatch.chdir(folder)
    assert ctl(folder / "nobody-here.sock", "status") == 3
    err = capsys.readouterr().err
    assert err.startswith("firefly-midi ctl: no firefly-midi daemon on ") and err.rstrip().endswith("start one with `firefly-midi run`")
    assert "venv" not in err


def test_ctl_presets_save_and_preset(own, capsys):
    _, path = own
    assert ctl(path, "presets") == 0
    listed = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines())
    assert listed == request(path, "presets") and "pulse-sine" in listed
    assert ctl(path, "save", "ctl-kept") == 0
    assert capsys.readouterr().out.strip() == f"saved {presets.user_dir() / 'ctl-kept.toml'}"
    assert ctl(path, "--json", "presets") == 0
    assert json.loads(capsys.readouterr().out)["ctl-kept"] == str(presets.user_dir() / "ctl-kept.toml")
    assert ctl(path, "preset", "ctl-kept") == 0
    assert capsys.readouterr().out.strip() == "switching to preset ctl-kept"
    eventually(lambda: status(path)["preset"] == "ctl-kept")
    assert ctl(path, "save", "../escape") == 2
    assert "preset name" in capsys.readouterr().err


def test_ctl_pause_panic_reset_resume(own, capsys):
    _, path = own
    eventually(lambda: status(path)["notes_out"] > 0, timeout=10)
    assert ctl(path, "pause") == 0
    assert capsys.readouterr().out.strip() == "paused"
    eventually(lambda: status(path)["paused"])
    before = unsent(path)
    assert ctl(path, "panic") == 0
    assert capsys.readouterr().out.strip() == "every note ended"
    eventually(lambda: unsent(path) == before + 1)  # All Notes Off on channel 3
    assert ctl(path, "forward", "5") == 0
    assert capsys.readouterr().out.strip() == "forwarding 5 s"
    eventually(lambda: status(path)["time_s"] >= 5)
    assert ctl(path, "reset") == 0
    assert capsys.readouterr().out.strip() == "the swarm was drawn afresh"
    eventually(lambda: status(path)["time_s"] == 0)
    assert ctl(path, "resume") == 0
    assert capsys.readouterr().out.strip() == "playing"
    eventually(lambda: not status(path)["paused"] and status(path)["time_s"] > 0)


def test_ctl_learn_and_unlearn(own, capsys):
    _, path = own
    assert ctl(path, "learn", "swarm.coupling", "0", "0.5") == 0
    assert capsys.readouterr().out.strip() == "move a controller on the input to bind it to swarm.coupling (0.0..0.5)"
    assert ctl(path, "learn", "swarm.model") == 2
    assert "swarm.model" in capsys.readouterr().err
    binding = {"cc": 74, "channel": 0, "key": "swarm.coupling", "lo": 0.0, "hi": 0.5}
    assert ctl(path, "set", "learn", json.dumps([binding])) == 0
    capsys.readouterr()
    eventually(lambda: request(path, "get", key="learn") == [binding])
    assert ctl(path, "unlearn", "swarm.coupling") == 0
    assert capsys.readouterr().out.strip() == "forgot 1 controller(s) bound to swarm.coupling"
    eventually(lambda: request(path, "get", key="learn") == [])
    assert ctl(path, "--json", "unlearn", "swarm.coupling") == 0
    assert json.loads(capsys.readouterr().out) == {"removed": 0}


def test_ctl_timeout_bounds_the_wait_for_a_silent_daemon(daemon, folder, capsys):
    silent = control.serve(daemon, folder / "silent.sock")  # claimed, not started: it accepts, nobody replies
    try:
        for argv in (("--timeout", "0.5", "status"), ("watch", "--timeout", "0.5", "--count", "1")):
            started = time.monotonic()
            assert ctl(silent.path, *argv) == 3
            assert time.monotonic() - started < 3.0
            err = capsys.readouterr().err
            assert f"firefly-midi daemon on {silent.path}" in err and ("0.5 s" in err or "did not greet" in err)
    finally:
        silent.close()


def test_ctl_status_json_and_human(path, capsys):
    assert ctl(path, "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["n"] == N and {"order_parameter", "tempo_bpm", "lateness_us", "ports", "ticks"} <= set(status)
    assert ctl(path, "--json", "get", "swarm.n") == 0
    assert json.loads(capsys.readouterr().out) == N
    assert ctl(path, "status") == 0
    human = capsys.readouterr().out
    assert "fireflies" in human and "bpm" in human and "lateness" in human
    assert len(human.splitlines()) <= 8


def test_ctl_watch_prints_frames(path, capsys):
    assert ctl(path, "watch", "--fps", "60", "--count", "3", "--json") == 0
    frames = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(frames) == 3 and all(set(f) >= SPEC_FRAME_FIELDS for f in frames)


def test_ctl_watch_prints_a_summary_line_a_frame(path, capsys):
    assert ctl(path, "watch", "--fps", "60", "--count", "4") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    summary = re.compile(r"t +\d+\.\d\d s  r [01]\.\d{3}  tempo +\d+\.\d bpm  flashes +\d+  notes \d+  dropped frames \d+")
    assert all(summary.fullmatch(line) for line in lines), lines
    times = [float(line.split()[1]) for line in lines]
    assert times == sorted(times)


def test_ctl_is_wired_into_the_command_line(path, capsys):
    from firefly_midi import cli

    assert cli.main(["ctl", "--socket", str(path), "get", "swarm.n"]) == 0
    assert capsys.readouterr().out.strip() == str(N)
    assert cli.main(["ctl", "--socket", str(path), "set", "swarm.n", "0"]) == 2


def test_a_lagging_client_drops_frames_but_keeps_their_flashes():
    client = ControlClient("/nonexistent", backlog=2)
    for seq in range(1, 6):
        client._push_frame({"frame": seq, "flashes": [[seq, seq / 10]], "flashes_lost": 0})
    assert client.frames_dropped == 3
    queued = list(client._frames)
    assert [f["frame"] for f in queued] == [4, 5]
    assert queued[0]["flashes"] == [[i, i / 10] for i in range(1, 5)] and queued[1]["flashes"] == [[5, 0.5]]
    big = [[0, 0.0]] * control.MAX_FLASHES_PER_FRAME
    for seq in range(6, 9):
        client._push_frame({"frame": seq, "flashes": list(big), "flashes_lost": 1})
    head = client._frames[0]
    assert len(head["flashes"]) == control.MAX_FLASHES_PER_FRAME and head["flashes_lost"] > control.MAX_FLASHES_PER_FRAME


# ---------------------------------------------------------------------------------------------- OSC
def test_osc_mirrors_the_commands(path, daemon):
    from pythonosc.osc_message import OscMessage
    from pythonosc.osc_message_builder import build_msg

    from firefly_midi.osc import serve_osc

    with serve_osc(daemon, port=0) as osc:
        assert osc.address[0] == "127.0.0.1"
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(2.0)

        def send(address, *values):
            peer.sendto(build_msg(address, list(values)).dgram, osc.address)

        def answer():
            message = OscMessage(peer.recv(65536))
            return message.address, list(message.params)

        send("/firefly/set", "swarm.coupling", 0.3)
        eventually(lambda: request(path, "get", key="swarm.coupling") == pytest.approx(0.3))
        send("/firefly/param/swarm/coupling", 0.2)
        eventually(lambda: request(path, "get", key="swarm.coupling") == pytest.approx(0.2))
        send("/firefly/get", "swarm.n")
        assert answer() == ("/firefly/value", ["swarm.n", N])
        send("/firefly/set", "swarm.coupling", 1000.0)
        address, (code, message) = answer()
        assert address == "/firefly/error" and code == "bad_param" and "swarm.coupling" in message
        send("/firefly/pasue")
        address, (code, message) = answer()
        assert code == "unknown_command" and "pause" in message
        send("/firefly/forward")
        assert answer()[1][0] == "bad_argument"
        send("/firefly/learn", "swarm.model")  # every command OSC offers is an address: learn too
        address, (code, message) = answer()
        assert address == "/firefly/error" and code == "bad_param" and "swarm.model" in message
        send("/firefly/status")
        assert answer()[1][0] == "unknown_command", "status does not fit an OSC message: the socket only"
        peer.sendto(b"not OSC at all", osc.address)
        send("/firefly/get", "swarm.n")
        assert answer() == ("/firefly/value", ["swarm.n", N])  # the garbage was ignored
        peer.close()


def test_a_daemon_still_starting_is_waited_for_not_doubled(daemon, folder, capsys):
    """Its first start compiles for a minute: the socket accepts and nobody answers yet (a launcher
    that took that for an error crashed `firefly-midi run` on every fresh install)."""
    path = folder / "starting.sock"
    srv = control.serve(daemon, path)  # claimed, not started: connections wait, nobody replies
    starter = threading.Timer(3.0, srv.start)  # after the launcher's first probe (2 s) went unanswered
    starter.start()
    try:
        assert control.start_daemon_in_background(path, ["--never-used"], wait_s=30) is False
        assert control.request(path, "status")["preset"]
    finally:
        starter.cancel()  # a failed assert above must not leave the timer's thread behind
        starter.join(10)
        srv.close()
    assert "is starting" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- one spec
def test_the_tables_in_docs_are_the_command_spec():
    from firefly_midi.osc import osc_markdown

    docs = (Path(__file__).parent.parent / "docs" / "control.md").read_text()
    for name, table in (("commands", control.commands_markdown()), ("ctl", ctl_markdown()), ("OSC", osc_markdown())):
        assert table in docs, f"docs/control.md's {name} table differs from the spec; it should read:\n{table}"


def test_ctl_and_osc_offer_the_commands_of_the_spec():
    from firefly_midi.osc import OSC_COMMANDS

    parser = argparse.ArgumentParser(prog="firefly-midi")
    ctl_parser = add_ctl_parser(parser.add_subparsers(dest="command"))
    subcommands = next(a for a in ctl_parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(subcommands) == {c.name for c in control.COMMANDS.values() if c.ctl} | {"watch"}
    assert set(OSC_COMMANDS) == {f"/firefly/{c.name}" for c in control.COMMANDS.values() if c.osc}
    assert {"subscribe", "unsubscribe"}.isdisjoint(subcommands) and "/firefly/subscribe" not in OSC_COMMANDS


def test_errors_are_firefly_errors_and_the_built_ins_they_mean(path, folder):
    with pytest.raises(control.BadRequest) as refused:
        request(path, "set", key="swarm.coupling", value="lots")
    assert refused.value.code == "bad_param"
    assert isinstance(refused.value, ValueError) and isinstance(refused.value, FireflyError)
    with pytest.raises(ConnectionError) as nobody:
        request(folder / "nobody-here.sock", "status")
    assert isinstance(nobody.value, control.NoDaemonError) and isinstance(nobody.value, FireflyError)
    assert issubclass(control.NoReply, TimeoutError) and issubclass(control.Disconnected, ConnectionError)
    assert issubclass(control.BadArgument, ValueError) and issubclass(control.ControlError, FireflyError)
