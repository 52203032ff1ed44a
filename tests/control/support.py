"""Helpers of the control-plane tests: a portless daemon, a raw client, waits on conditions, `ctl` in-process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import time
from pathlib import Path

from firefly_midi import presets
from firefly_midi.control import ControlClient, request
from firefly_midi.ctl import add_ctl_parser, run_ctl
from firefly_midi.daemon import Daemon
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


def new_connection(server, before: set):
    """The server's side of the one connection made since ``before`` was taken."""
    return eventually(lambda: len(new := set(server._connections) - before) == 1 and new.pop())
