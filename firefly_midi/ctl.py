"""``firefly-midi ctl``: one request to a running daemon over its control socket, for people and scripts.

Exit codes: 0 ok, 2 an error reply (its message on stderr), 3 no daemon reachable.  The wiring is
``add_ctl_parser(subparsers)`` in the CLI's parser and ``run_ctl(args)`` for ``args.command == "ctl"``.
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
    MIN_POINTS,
    ControlClient,
    ControlError,
    Disconnected,
    NoDaemonError,
    default_socket_path,
    request,
)
from firefly_midi.params import show

EXIT_OK, EXIT_ERROR, EXIT_NO_DAEMON = 0, 2, 3


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

    def sub(name: str, text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=text, description=text, parents=[common])

    sub("status", "the daemon's status: preset, fireflies, order parameter, tempo, counters, lateness, ports")
    sub("get", "print one parameter, or every parameter").add_argument("key", nargs="?", help="a parameter key, e.g. swarm.n")
    setter = sub("set", "set a parameter (checked like a preset value), applied at the next tick")
    setter.add_argument("key", help="a parameter key, e.g. swarm.coupling")
    setter.add_argument("value", help="the value, as on the command line (a JSON array or table for lists and automation)")
    sub("preset", "switch to a preset (name or path) at the next tick").add_argument("name")
    sub("presets", "list the presets the daemon finds")
    sub("save", "save the current parameters as a user preset").add_argument("name")
    sub("pause", "stop stepping the swarm (notes silenced)")
    sub("resume", "step the swarm again")
    sub("reset", "draw the swarm afresh from its parameters")
    sub("forward", "run the swarm ahead, silently, by SECONDS of swarm time").add_argument("seconds", type=float)
    sub("panic", "end every sounding note now")
    sub("stop", "silence every note and make the daemon exit")
    learn = sub("learn", "MIDI learn: the next controller moved on the input will move KEY between LO and HI")
    learn.add_argument("key", help="a numeric parameter key, e.g. swarm.coupling")
    learn.add_argument("lo", nargs="?", help="value at controller 0 (default: the key's lowest)")
    learn.add_argument("hi", nargs="?", help="value at controller 127 (default: the key's highest)")
    sub("unlearn", "forget the controllers bound to KEY").add_argument("key")
    watch = sub("watch", "print telemetry frames (a summary line each; every frame as JSON with --json)")
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
    parser.add_argument("--timeout", type=float, default=default, metavar="S", help="seconds to wait for a reply (default: 5)")


def run_ctl(args: argparse.Namespace) -> int:
    """Carry out a parsed ``ctl`` command; print the result; return the exit code."""
    path = getattr(args, "socket", None) or default_socket_path()
    as_json = bool(getattr(args, "json", False))
    timeout = getattr(args, "timeout", None) or 5.0
    command = args.ctl_command
    try:
        if command == "watch":
            return _watch(path, args, as_json)
        request_args = _ctl_arguments(args)
        result = request(path, command, timeout=timeout, **request_args)
    except NoDaemonError as exc:
        print(f"firefly-midi ctl: {exc.message}", file=sys.stderr)
        return EXIT_NO_DAEMON
    except ControlError as exc:
        print(f"firefly-midi ctl: {exc.message}", file=sys.stderr)
        return EXIT_NO_DAEMON if exc.code in ("timeout", "disconnected", "protocol") else EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    if as_json:
        print(json.dumps(result, indent=None if command != "status" else 2))
    else:
        text = _human(command, args, result)
        if text:
            print(text)
    return EXIT_OK


def _ctl_arguments(args: argparse.Namespace) -> dict[str, Any]:
    command = args.ctl_command
    if command == "get":
        return {"key": args.key} if args.key else {}
    if command == "set":
        value: Any = args.value
        if value.lstrip().startswith(("[", "{")):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        return {"key": args.key, "value": value}
    if command in ("preset", "save"):
        return {"name": args.name}
    if command == "learn":
        return {"key": args.key, **({"lo": args.lo} if args.lo is not None else {}), **({"hi": args.hi} if args.hi is not None else {})}
    if command == "unlearn":
        return {"key": args.key}
    if command == "forward":
        return {"seconds": args.seconds}
    return {}


def _human(command: str, args: argparse.Namespace, result: Any) -> str:
    if command == "status":
        return format_status(result)
    if command == "get":
        if args.key:
            return show(result, 6)
        return "\n".join(f"{key:<26} {show(value, 6)}" for key, value in result.items())
    if command == "set":
        return f"{args.key} = {show(result, 6)}"
    if command == "preset":
        return f"switching to preset {result['preset']}"
    if command == "presets":
        return "\n".join(f"{name:<20} {path}" for name, path in result.items())
    if command == "save":
        return f"saved {result['path']}"
    if command == "forward":
        return f"forwarding {result['seconds']:g} s"
    return _DONE.get(command, "")


# What the commands without a result did, said in words (silence after a command reads as nothing happened).
_DONE = {
    "stop": "stopping: every note ended, the daemon exits",
    "pause": "paused",
    "resume": "playing",
    "reset": "the swarm was drawn afresh",
    "panic": "every note ended",
}


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
    return "\n".join(lines)


def _watch(path: Path, args: argparse.Namespace, as_json: bool) -> int:
    async def main() -> None:
        async with ControlClient(path) as client:
            count = 0
            async for frame in client.subscribe(args.fps, args.points):
                if as_json:
                    print(json.dumps(frame), flush=True)
                else:
                    print(
                        f"t {frame.get('time_s', 0):9.2f} s  r {frame.get('order_parameter', 0):.3f}  "
                        f"tempo {frame.get('tempo_bpm', 0):6.1f} bpm  flashes {len(frame.get('flashes', ())):4d}  "
                        f"notes {frame.get('notes_out', 0)}  dropped frames {frame.get('dropped_frames', 0)}",
                        flush=True,
                    )
                count += 1
                if args.count and count >= args.count:
                    break

    try:
        asyncio.run(main())
    except Disconnected:
        return EXIT_OK  # the daemon stopped: the end of the stream
    return EXIT_OK
