"""``firefly-midi ctl``: one request to a running daemon over its control socket, for people and scripts.

Its subcommands are the protocol's commands (firefly_midi.control.commands.COMMANDS), plus ``watch``
for telemetry.  Exit codes: 0 ok, 2 an error reply (its message on stderr), 3 no daemon reachable.
The wiring is ``add_ctl_parser(subparsers)`` in the CLI's parser and ``run_ctl(args)``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from firefly_midi.control import (
    COMMANDS,
    MIN_POINTS,
    PROGRAM,
    Arg,
    Command,
    ControlClient,
    ControlError,
    Disconnected,
    NoDaemonError,
    NoReply,
    default_socket_path,
    request,
)
from firefly_midi.params import show
from firefly_midi.tui.model import NATIVE_COUNTERS

EXIT_OK, EXIT_ERROR, EXIT_NO_DAEMON = 0, 2, 3
DEFAULT_TIMEOUT_S = 5.0
WATCH = "print telemetry frames (a summary line each; every frame as JSON with --json)"


def _value(text: str) -> Any:
    """A value as typed: a JSON array or table is sent as JSON, anything else as text the daemon checks."""
    if text.lstrip().startswith(("[", "{")):
        with contextlib.suppress(ValueError):
            return json.loads(text)
    return text


_ARG_TYPES = {"text": str, "number": float, "int": int, "value": _value}


def add_ctl_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``firefly-midi ctl ...``: one request to a running daemon; exits 0, 2 (error reply) or 3 (no daemon)."""
    ctl = subparsers.add_parser(
        "ctl",
        help="control a running daemon over its socket (exit 0 ok, 2 error reply, 3 no daemon)",
        description="Send one request to a running firefly-midi daemon (protocol: docs/control.md).",
    )
    _add_ctl_common(ctl, argparse.SUPPRESS)
    commands = ctl.add_subparsers(dest="ctl_command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    _add_ctl_common(common, argparse.SUPPRESS)
    for command in COMMANDS.values():
        if command.ctl:
            text = command.help.replace("`", "")
            sub = commands.add_parser(command.name, help=text, description=text, parents=[common])
            for arg in command.args:
                sub.add_argument(
                    "arg_" + arg.name,
                    metavar=arg.name.upper(),
                    nargs=None if arg.required else "?",
                    type=_ARG_TYPES[arg.kind],
                    help=arg.meaning().replace("`", ""),
                )
    watch = commands.add_parser("watch", help=WATCH, description=WATCH, parents=[common])
    watch.add_argument("--fps", type=float, default=5.0, help="frames per second (1..60, default: %(default)s)")
    watch.add_argument("--points", type=int, default=MIN_POINTS, help="phases per frame (16..65536, default: %(default)s)")
    watch.add_argument("--count", type=int, default=0, metavar="N", help="stop after N frames (default: until interrupted)")
    ctl.set_defaults(command="ctl")
    return ctl


def _add_ctl_common(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--socket",
        type=Path,
        default=default,
        metavar="PATH",
        help="the daemon's socket (default: $XDG_RUNTIME_DIR/firefly-midi/control.sock)",
    )
    parser.add_argument("--json", action="store_true", default=default, help="print the result as JSON, for scripts")
    parser.add_argument(
        "--timeout", type=float, default=default, metavar="S", help=f"seconds to wait for a reply (default: {DEFAULT_TIMEOUT_S:g})"
    )


def ctl_markdown() -> str:
    """The table of ``ctl``'s commands in docs/control.md."""
    rows = ["| command | what it does |", "|---|---|"]
    for command in COMMANDS.values():
        if command.ctl:
            usage = " ".join([command.name, *(_usage(arg) for arg in command.args)])
            rows.append(f"| `{usage}` | {command.help} |")
    rows.append(f"| `watch [--fps F] [--points P] [--count N]` | {WATCH} |")
    return "\n".join(rows)


def _usage(arg: Arg) -> str:
    return arg.name.upper() if arg.required else f"[{arg.name.upper()}]"


def run_ctl(args: argparse.Namespace) -> int:
    """Carry out a parsed ``ctl`` command; print the result; return the exit code."""
    path = getattr(args, "socket", None) or default_socket_path()
    as_json = bool(getattr(args, "json", False))
    timeout = getattr(args, "timeout", None) or DEFAULT_TIMEOUT_S
    try:
        if args.ctl_command == "watch":
            return _watch(path, args, as_json, timeout)
        command = COMMANDS[args.ctl_command]
        arguments = {arg.name: value for arg in command.args if (value := getattr(args, "arg_" + arg.name)) is not None}
        result = request(path, command.name, timeout=timeout, **arguments)
    except NoDaemonError as exc:
        print(f"{PROGRAM} ctl: {exc.message}", file=sys.stderr)
        return EXIT_NO_DAEMON
    except ControlError as exc:
        print(f"{PROGRAM} ctl: {exc.message}", file=sys.stderr)
        return EXIT_NO_DAEMON if exc.code in ("timeout", "disconnected", "protocol") else EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    if as_json:
        print(json.dumps(result, indent=2 if command.name == "status" else None))
    elif text := _human(command, arguments, result):
        print(text)
    return EXIT_OK


def _human(command: Command, arguments: dict[str, Any], result: Any) -> str:
    """The result for people: the big ones laid out here, the rest by the command's ``said``."""
    if command.name == "status":
        return format_status(result)
    if command.name == "get" and "key" not in arguments:
        return "\n".join(f"{key:<26} {show(value, 6)}" for key, value in result.items())
    if command.name == "presets":
        return "\n".join(f"{name:<20} {path}" for name, path in result.items())
    shown = result if isinstance(result, dict) else show(result, 6)
    return command.said.format(**arguments, result=shown) if command.said else str(shown)


def format_status(s: dict[str, Any]) -> str:
    """A short, readable summary of a status dict (``ctl status``)."""

    def num(key: str, fmt: str = ".1f") -> str:
        value = s.get(key)
        return format(value, fmt) if isinstance(value, int | float) and not isinstance(value, bool) else "-"

    late = s.get("lateness_us") or {}
    late_text = "  ".join(f"{k} {v:.0f}" for k, v in late.items() if isinstance(v, int | float)) or "-"
    ports = s.get("ports") or {}
    port_names = ports.get("ports") if isinstance(ports, dict) else None
    port_text = ", ".join(map(str, port_names)) if isinstance(port_names, list | tuple) and port_names else "none"
    if isinstance(ports, dict):
        port_text = f"{ports.get('state', '?')} ({ports.get('backend') or 'no backend'}): {port_text}"
        if ports.get("problem"):
            port_text += f" - {ports['problem']}"
    drift = ""
    if isinstance(s.get("tempo_bpm"), int | float) and isinstance(s.get("nominal_tempo_bpm"), int | float):
        drift = f", drift {s['tempo_bpm'] - s['nominal_tempo_bpm']:+.1f}"
    lines = [
        f"preset     {s.get('preset') or '(custom)'}  {'paused' if s.get('paused') else 'playing'}",
        f"swarm      {s.get('n', '-')} fireflies ({s.get('model', '?')}), order r = {num('order_parameter', '.3f')}, "
        f"time {num('time_s')} s",
        f"tempo      {num('tempo_bpm')} bpm (nominal {num('nominal_tempo_bpm')}{drift})",
        f"notes      {s.get('notes_out', '-')} out; flashes in {s.get('flashes_in', '-')}, dropped in {s.get('dropped_in', '-')}",
        f"clock      {s.get('ticks', '-')} ticks, {s.get('skipped_ticks', '-')} skipped; lateness µs: {late_text}",
        f"ports      {port_text}",
    ]
    native = ports.get("native") if isinstance(ports, dict) else None
    if isinstance(native, dict):  # the native JACK backend's counters (docs/jack-native.md)
        counts = ", ".join(f"{key.replace('_', ' ')} {native.get(key, '-')}" for key in NATIVE_COUNTERS)
        lines.append(f"jack       {counts}")
    if s.get("engine") == "numpy":  # a fresh install's first minute (docs/startup.md)
        kernels = s.get("kernels") or {}
        lines.append(f"engine     numpy while the kernels compile ({kernels.get('state', '?')}, {kernels.get('seconds', 0):.0f} s so far)")
    return "\n".join(lines)


def format_frame(frame: dict[str, Any]) -> str:
    """One telemetry frame as a summary line (``ctl watch``)."""
    return (
        f"t {frame.get('time_s', 0):9.2f} s  r {frame.get('order_parameter', 0):.3f}  "
        f"tempo {frame.get('tempo_bpm', 0):6.1f} bpm  flashes {len(frame.get('flashes', ())):4d}  "
        f"notes {frame.get('notes_out', 0)}  dropped frames {frame.get('dropped_frames', 0)}"
    )


def _watch(path: Path, args: argparse.Namespace, as_json: bool, timeout: float) -> int:
    async def main() -> None:
        client = await ControlClient(path).connect(timeout)
        try:
            frames = client.subscribe(args.fps, args.points)
            await asyncio.wait_for(frames, timeout)  # the daemon's yes (or its refusal of the fps or points)
            count = 0
            async for frame in frames:
                print(json.dumps(frame) if as_json else format_frame(frame), flush=True)
                count += 1
                if args.count and count >= args.count:
                    break
        finally:
            await client.close()

    try:
        asyncio.run(main())
    except Disconnected:
        return EXIT_OK  # the daemon stopped: the end of the stream
    except TimeoutError:
        raise NoReply(f"the firefly-midi daemon on {path} did not answer within {timeout:g} s") from None
    return EXIT_OK
