"""The control protocol's wire (docs/control.md, version 1): its limits, its errors, and its lines.

A message is one line of compact, strict JSON.  Errors travel as ``{"code", "message"}``; on this
side each is a ``ControlError`` whose subclasses also derive from the built-in they mean, so a
caller may catch ``ConnectionError`` or ``ValueError`` without knowing this module.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from firefly_midi import params as P
from firefly_midi.errors import FireflyError
from firefly_midi.telemetry import MAX_FLASHES_PER_FRAME

__all__ = [
    "MAX_FLASHES_PER_FRAME",
    "PROGRAM",
    "PROTOCOL",
    "BadArgument",
    "BadRequest",
    "ControlError",
    "Disconnected",
    "NoDaemonError",
    "NoReply",
    "SocketBusyError",
    "decode",
    "encode",
    "error_reply",
    "ok_reply",
    "result_of",
]

PROTOCOL = 1
PROGRAM = "firefly-midi"  # the command as the user types it: hints name it, never a path guessed from sys.argv
LINE_LIMIT = 64 * 1024  # bytes in one request line, not counting its newline
CLIENT_LINE_LIMIT = 16 * 1024 * 1024  # a frame of 65,536 phases and 4,096 flashes is well under this
FRAME_BACKLOG = 256 * 1024  # a subscriber with more than this unsent gets the next frame dropped
READ_CHUNK = 64 * 1024
DEFAULT_FPS, MIN_FPS, MAX_FPS = 30, 1, 60
DEFAULT_POINTS, MIN_POINTS, MAX_POINTS = 2048, 16, 65536
MAX_FORWARD_S = 600.0  # seconds of swarm time one ``forward`` may run ahead


def command_name() -> str:
    """The program's name for hints (``firefly-midi``): what the user typed, whatever path ran it."""
    return PROGRAM


# ---------------------------------------------------------------------------------------------- errors
class ControlError(FireflyError, RuntimeError):
    """An error reply (``code``, ``message``), or a control-plane failure on this side."""

    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


class BadRequest(ControlError, ValueError):
    """The daemon refused a request as wrong (codes in ``REQUEST_FAULTS``): fix the request, not the daemon."""


class BadArgument(BadRequest):
    """An argument is missing, of the wrong type, out of range, or not one the command takes."""

    def __init__(self, message: str):
        super().__init__("bad_argument", message)


class NoReply(ControlError, TimeoutError):
    """The daemon accepted the connection and did not answer in time (busy starting, or hung)."""

    def __init__(self, message: str):
        super().__init__("timeout", message)


class SocketBusyError(ControlError):
    """Another daemon is listening on the socket path: this one must not start."""

    def __init__(self, path: os.PathLike[str], pid: int | None, ours: bool = True):
        who = "another firefly-midi daemon is running" if ours else "another process is listening"
        pid_text = f" (pid {pid})" if pid else ""
        super().__init__("busy", f"{who} on {path}{pid_text}; stop it first, or give this one another --socket")
        self.path, self.pid = path, pid


class NoDaemonError(ControlError, ConnectionError):
    """Nothing answers on the socket path."""

    def __init__(self, path: os.PathLike[str], detail: str = ""):
        extra = f" ({detail})" if detail else ""
        super().__init__("no_daemon", f"no firefly-midi daemon on {path}{extra}; start one with `{PROGRAM} run`")
        self.path = path


class Disconnected(ControlError, ConnectionError):
    """The daemon closed the connection (it stopped, or dropped this client)."""

    def __init__(self, detail: str = "the daemon closed the connection"):
        super().__init__("disconnected", detail)


# The codes of error replies that blame the request (the rest: "internal", a bug in the daemon).
REQUEST_FAULTS = frozenset({"bad_json", "unknown_command", "bad_argument", "bad_param", "not_found", "too_large"})
ERROR_CODES = REQUEST_FAULTS | {"internal"}


def brief(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: a request's junk quoted in a reply stays short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------------------------ the lines
def _plain(obj: Any) -> Any:
    """What ``json`` cannot encode, made plain: parameter values as ``params.plain`` makes them, paths as
    text, numpy as lists, sets sorted; anything else as its text, so a reply never fails to encode."""
    flat = P.plain(obj)
    if flat is not obj:
        return flat
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=str)
    return str(obj)


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities as null (strict JSON has neither)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if obj is None or isinstance(obj, str | int | bool):
        return obj
    return _finite(_plain(obj))


def encode(obj: Any) -> bytes:
    """One protocol line: compact, strict JSON (no NaN), UTF-8, ending in a newline."""
    try:
        text = json.dumps(obj, default=_plain, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        text = json.dumps(_finite(obj), default=_plain, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8") + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """A request line (without its newline) as a dict; ``BadRequest("bad_json")`` says what is wrong."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("bad_json", f"the line is not UTF-8 (byte {exc.start})") from None
    try:
        request = json.loads(text)
    except RecursionError:
        raise BadRequest("bad_json", "the line nests too deeply") from None
    except ValueError as exc:
        raise BadRequest("bad_json", f"the line is not JSON: {exc}" if text.strip() else "the line is empty") from None
    if not isinstance(request, dict):
        raise BadRequest("bad_json", f"a request is a JSON object, got {type(request).__name__}")
    return request


def ok_reply(rid: Any, result: Any) -> dict[str, Any]:
    return {"id": rid, "ok": True, "result": result}


def error_reply(rid: Any, code: str, message: str) -> dict[str, Any]:
    return {"id": rid, "ok": False, "error": {"code": code, "message": message}}


def result_of(reply: dict[str, Any]) -> Any:
    """A reply's result; an error reply raises ``BadRequest`` (the request's fault) or ``ControlError``."""
    if reply.get("ok"):
        return reply.get("result")
    error = reply.get("error") or {}
    code, message = str(error.get("code", "internal")), str(error.get("message", reply))
    raise (BadRequest if code in REQUEST_FAULTS else ControlError)(code, message)
