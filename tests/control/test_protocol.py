"""The protocol's lines against a real, playing daemon over a real Unix socket: the hello, replies and
errors, limits, many clients, and any line at all getting exactly one reply."""

from __future__ import annotations

import asyncio
import json
import socket
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firefly_midi import __version__, control
from firefly_midi.control import ControlClient, request
from firefly_midi.errors import FireflyError

from .support import ERROR_CODES, N, Raw, eventually


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
