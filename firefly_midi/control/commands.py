"""The commands of the control protocol, declared once: name, arguments, help, result, handler.

``COMMANDS`` is plain data.  The socket server and the OSC server each hold a ``Commands`` that checks a
request against it and calls the daemon; ``ctl`` builds its subcommands from it, osc.py its addresses,
and docs/control.md's tables come from ``commands_markdown()`` (a test compares them).
"""

from __future__ import annotations

import difflib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from firefly_midi import params as P
from firefly_midi import presets
from firefly_midi.control.protocol import (
    DEFAULT_FPS,
    DEFAULT_POINTS,
    MAX_FORWARD_S,
    MAX_FPS,
    MAX_POINTS,
    MIN_FPS,
    MIN_POINTS,
    BadArgument,
    BadRequest,
    brief,
    error_reply,
    ok_reply,
)

log = logging.getLogger("firefly_midi.control")


class Subscriber(Protocol):
    """The connection a request came on, where it can carry telemetry frames (the socket's, not OSC's)."""

    def subscribe(self, fps: float, points: int) -> None: ...

    def unsubscribe(self) -> None: ...


# ------------------------------------------------------------------------------------------ arguments
Kind = Literal["text", "number", "int", "value"]
_KIND_WORDS = {"text": "a non-empty string", "number": "a number", "int": "an integer", "value": "a JSON value or its text"}


@dataclass(frozen=True)
class Arg:
    """One argument: ``kind`` is text (a non-empty string), number, int, or value (any JSON, checked by
    the daemon against the parameter table).  Numbers may be bounded: ``lo``..``hi``, or
    ``lo < x <= hi`` with ``lo_open``.  An optional argument given as null counts as left out."""

    name: str
    kind: Kind
    doc: str = ""
    required: bool = True
    default: Any = None
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False

    def span(self) -> str:
        if self.lo is None or self.hi is None:
            return ""
        if self.lo_open:
            return f"{self.lo:g} < {self.name} <= {self.hi:g}"
        return f"{self.lo:g}..{self.hi:g}"

    def check(self, value: Any) -> Any:
        """The value as the handler takes it; ``BadArgument`` names the argument and what it should be."""
        if self.kind == "value":
            return value
        if self.kind == "text":
            if not isinstance(value, str) or not value:
                raise BadArgument(f"{self.name} must be a non-empty string, got {brief(value)}")
            return value
        number = _number(value) if self.kind == "number" else value
        if isinstance(number, bool) or not isinstance(number, int | float) or (self.kind == "int" and not isinstance(number, int)):
            raise BadArgument(f"{self.name} must be {_KIND_WORDS[self.kind]}, got {brief(value)}")
        if not math.isfinite(number) or not self._within(number):
            raise BadArgument(f"{self.name} must be {_KIND_WORDS[self.kind]} in {self.span()}, got {brief(value)}")
        return number

    def _within(self, x: float) -> bool:
        above = self.lo is None or (x > self.lo if self.lo_open else x >= self.lo)
        return above and (self.hi is None or x <= self.hi)

    def meaning(self) -> str:
        """What it is, ranges included: ``frames per second, a number in 1..60``."""
        what = [self.doc] if self.doc else []
        if self.kind in ("number", "int"):
            what.append(f"{_KIND_WORDS[self.kind]} in {self.span()}" if self.span() else _KIND_WORDS[self.kind])
        return ", ".join(what)

    def describe(self) -> str:
        """For the docs: ``fps`` (optional, default 30): frames per second, a number in 1..60."""
        optional = "" if self.required else " (optional)" if self.default is None else f" (optional, default {self.default})"
        return f"`{self.name}`{optional}" + (f": {self.meaning()}" if self.meaning() else "")


def _number(value: Any) -> Any:
    """A number from JSON or from its text (``"10"``, as OSC and scripts send it); anything else as it is."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


# ------------------------------------------------------------------------------------------- commands
@dataclass(frozen=True)
class Command:
    """One command.  ``handler(daemon, connection, **arguments)`` returns the result; it runs on the
    server's thread, so it only calls the daemon's thread-safe methods.  ``help`` says what it does
    (ctl's help, the docs), ``result`` what the reply carries (the docs); ``ctl`` and ``osc`` say
    whether ``firefly-midi ctl`` and OSC offer it; ``said`` is ctl's line on success, formatted with
    the arguments and ``result``."""

    name: str
    handler: Callable[..., Any]
    help: str = ""
    result: str = ""
    args: tuple[Arg, ...] = ()
    ctl: bool = True
    osc: bool = True
    said: str = ""


def _preset(daemon: Any, _: Subscriber | None, name: str) -> dict[str, str]:
    daemon.load_preset(name)
    return {"preset": name}


def _forward(daemon: Any, _: Subscriber | None, seconds: float) -> dict[str, float]:
    try:
        daemon.forward(seconds)
    except ValueError as exc:
        raise BadArgument(str(exc)) from None
    return {"seconds": seconds}


def _stop(daemon: Any, _: Subscriber | None) -> dict[str, Any]:
    log.info("stop requested by a control client")
    daemon.request_stop()
    return {}


def _subscribe(_: Any, connection: Subscriber | None, fps: float = DEFAULT_FPS, points: int = DEFAULT_POINTS) -> dict[str, Any]:
    if connection is None:
        raise BadArgument("subscribe works on the control socket only")
    connection.subscribe(fps, points)
    return {}


def _unsubscribe(_: Any, connection: Subscriber | None) -> dict[str, Any]:
    if connection is not None:
        connection.unsubscribe()
    return {}


def _done(method: str) -> Callable[..., dict[str, Any]]:
    """A handler that calls the daemon's ``method`` with no argument and replies ``{}``."""

    def handler(daemon: Any, _: Subscriber | None) -> dict[str, Any]:
        getattr(daemon, method)()
        return {}

    return handler


_KEY = Arg("key", "text", "a parameter key, e.g. swarm.coupling")
_COMMANDS = (
    Command(
        "status",
        lambda d, _: d.status(),
        help="the daemon's status: preset, fireflies, order parameter, tempo, counters, lateness, ports",
        result="the status object (below)",
        osc=False,
    ),
    Command(
        "get",
        lambda d, _, key=None: d.get(key),
        help="read one parameter, or every parameter",
        result="the value of `key`; without `key`, `{key: value}` of every parameter",
        args=(Arg("key", "text", "a parameter key", required=False),),
    ),
    Command(
        "set",
        lambda d, _, key, value: d.set(key, value),
        help="set a parameter (checked like a preset value); applied at the next tick",
        result='the value as checked and converted (`"0.2"` → `0.2`, `"C4"` → `60`)',
        args=(_KEY, Arg("value", "value", "as on the command line (`0.2`, `C4`, `1,2,3`), or JSON")),
        said="{key} = {result}",
    ),
    Command(
        "preset",
        _preset,
        help="switch to a preset at the next tick; the old preset's notes are ended first",
        result='`{"preset": name}`',
        args=(Arg("name", "text", "a preset name, or a path to a `.toml` file"),),
        said="switching to preset {result[preset]}",
    ),
    Command(
        "presets",
        lambda d, _: {name: str(path) for name, path in presets.available().items()},
        help="list the presets the daemon finds (user presets shadow shipped ones)",
        result="`{name: path}`",
        osc=False,
    ),
    Command(
        "save",
        lambda d, _, name: {"path": str(d.save_preset(name))},
        help="save the current parameters as a user preset",
        result='`{"path": "..."}`',
        args=(Arg("name", "text", "letters, digits, `-`, `_`, `.` (up to 64)"),),
        said="saved {result[path]}",
    ),
    Command("pause", _done("pause"), help="stop stepping the swarm; sounding notes are ended", result="`{}`", said="paused"),
    Command("resume", _done("resume"), help="step the swarm again", result="`{}`", said="playing"),
    Command(
        "reset",
        _done("reset"),
        help="draw the swarm afresh from its parameters (same seed: the same start)",
        result="`{}`",
        said="the swarm was drawn afresh",
    ),
    Command(
        "forward",
        _forward,
        help="run the swarm ahead by `seconds` of swarm time, silently, as fast as it goes, at the next tick",
        result='`{"seconds": s}`',
        args=(Arg("seconds", "number", lo=0, hi=MAX_FORWARD_S, lo_open=True),),
        said="forwarding {result[seconds]:g} s",
    ),
    Command(
        "panic",
        _done("panic"),
        help="end every sounding note now: note-offs, then All Notes Off on every channel used",
        result="`{}`",
        said="every note ended",
    ),
    Command(
        "stop",
        _stop,
        help="end every note and make the daemon exit with status 0 (the reply is sent first)",
        result="`{}`",
        said="stopping: every note ended, the daemon exits",
    ),
    Command(
        "subscribe",
        _subscribe,
        help="send telemetry frames on this connection (below); subscribing again changes `fps` and `points`",
        result="`{}`, then frames",
        args=(
            Arg("fps", "number", "frames per second", required=False, default=DEFAULT_FPS, lo=MIN_FPS, hi=MAX_FPS),
            Arg("points", "int", "phases per frame", required=False, default=DEFAULT_POINTS, lo=MIN_POINTS, hi=MAX_POINTS),
        ),
        ctl=False,  # `ctl watch` subscribes
        osc=False,  # telemetry needs the socket
    ),
    Command("unsubscribe", _unsubscribe, help="stop the frames; none follows the reply", result="`{}`", ctl=False, osc=False),
    Command(
        "learn",
        lambda d, _, key, lo=None, hi=None: d.learn(key, lo, hi),
        help="MIDI learn: the next control change on the input is bound to `key` and moves it from `lo` (at 0) to `hi` "
        "(at 127); bindings are the `learn` parameter, kept with the state and saved in presets",
        result='`{"key", "lo", "hi"}`',
        args=(
            Arg("key", "text", "a numeric parameter key"),
            Arg("lo", "value", "the value at controller 0 (the key's lowest)", required=False),
            Arg("hi", "value", "the value at controller 127 (the key's highest)", required=False),
        ),
        said="move a controller on the input to bind it to {result[key]} ({result[lo]}..{result[hi]})",
    ),
    Command(
        "learnbeats",
        lambda d, _, count=2, seconds=4.0: d.learn_beats(count, seconds),
        help="learn which notes are beats (`follow.notes`): the next `count` different notes played on the input, or "
        "those played within `seconds` of the first, kept like a `set`",
        result='`{"count", "seconds"}`',
        args=(
            Arg("count", "int", "how many different notes", required=False, default=2, lo=1, hi=16),
            Arg("seconds", "number", "how long after the first note to listen", required=False, default=4.0, lo=0, hi=60, lo_open=True),
        ),
        said="play {result[count]} different drums on the input: they will be the beats",
    ),
    Command(
        "unlearn",
        lambda d, _, key: {"removed": d.unlearn(key)},
        help="forget the controllers bound to `key`",
        result='`{"removed": n}`',
        args=(_KEY,),
        said="forgot {result[removed]} controller(s) bound to {key}",
    ),
)
COMMANDS: dict[str, Command] = {command.name: command for command in _COMMANDS}


# ------------------------------------------------------------------------------------------ dispatch
class Commands:
    """The protocol's commands over one daemon: a request dict in, a reply dict out, never a raise.

    The socket server and the OSC server each hold one, so both check and answer alike.
    """

    def __init__(self, daemon: Any):
        self.daemon = daemon

    def execute(self, request: dict[str, Any], connection: Subscriber | None = None) -> dict[str, Any]:
        rid = request.get("id")
        try:
            command, args = parse(request)
            return ok_reply(rid, command.handler(self.daemon, connection, **args))
        except P.ParamError as exc:
            return error_reply(rid, "bad_param", str(exc))
        except FileNotFoundError as exc:
            return error_reply(rid, "not_found", str(exc))
        except BadRequest as exc:
            return error_reply(rid, exc.code, exc.message)
        except Exception as exc:
            name = request.get("cmd")
            log.exception("control command %s failed", name)
            return error_reply(rid, "internal", f"{name} failed: {type(exc).__name__}: {exc}")


def parse(request: dict[str, Any]) -> tuple[Command, dict[str, Any]]:
    """The command a request names and its checked arguments (optional ones left out are not given)."""
    name = request.get("cmd")
    if name is None:
        raise BadArgument('a request needs "cmd": one of ' + ", ".join(COMMANDS))
    command = COMMANDS.get(name) if isinstance(name, str) else None
    if command is None:
        near = difflib.get_close_matches(str(name), COMMANDS, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise BadRequest("unknown_command", f"unknown command {brief(name)}{hint} (commands: {', '.join(COMMANDS)})")
    given = {k: v for k, v in request.items() if k not in ("id", "cmd")}
    known = {arg.name: arg for arg in command.args}
    for key in given:
        if key not in known:
            raise BadArgument(f"{command.name} takes no argument {brief(key)} (arguments: {', '.join(known) or 'none'})")
    args = {}
    for arg in command.args:
        value = given.get(arg.name)
        if value is None and not arg.required:
            continue
        if arg.name not in given:
            raise BadArgument(f"{command.name} needs the argument {arg.name!r}")
        args[arg.name] = arg.check(value)
    return command, args


def commands_markdown() -> str:
    """The Commands table of docs/control.md."""
    rows = ["| `cmd` | arguments | what it does | result |", "|---|---|---|---|"]
    for c in _COMMANDS:
        args = "; ".join(arg.describe() for arg in c.args) or "—"
        rows.append(f"| `{c.name}` | {args} | {c.help[0].upper() + c.help[1:]} | {c.result} |")
    return "\n".join(rows)
