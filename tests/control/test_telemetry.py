"""Telemetry frames on the control socket: the spec's fields at the asked rate, slow readers that hold
up no one, unsubscribing and subscribing again, and a lagging client that keeps every flash."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from firefly_midi import control
from firefly_midi.control import ControlClient, request

from .support import SPEC_FRAME_FIELDS, N, Raw, new_connection


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
