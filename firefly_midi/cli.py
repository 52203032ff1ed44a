"""Command line: argument parsing only; every command is a call into a module."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from firefly_midi import __version__, presets
from firefly_midi.params import PARAMS, ParamError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="firefly-midi", description="A swarm of fireflies that plays MIDI.")
    parser.add_argument("--version", action="version", version=f"firefly-midi {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    sim = commands.add_parser("simulate", help="run the swarm headless, as fast as possible, and report its metrics")
    sim.add_argument("--preset", default=presets.DEFAULT_PRESET, help="preset name or path (default: %(default)s)")
    sim.add_argument(
        "--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE", help="override a parameter (repeatable)"
    )
    sim.add_argument("--seconds", type=float, default=30.0, help="swarm time to simulate (default: %(default)s)")
    sim.add_argument("--seed", type=int, default=None, help="random seed (default: the preset's)")
    sim.add_argument("--json", action="store_true", help="print one JSON object")
    sim.add_argument("--raster", type=Path, metavar="FILE.png", help="draw the flash raster and r(t)")

    commands.add_parser("presets", help="list the presets found")
    commands.add_parser("params", help="list every parameter with its range and default")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"simulate": _simulate, "presets": _presets, "params": _params}[args.command](args)
    except (ParamError, FileNotFoundError) as exc:
        print(f"firefly-midi: {exc}", file=sys.stderr)
        return 2


def _simulate(args: argparse.Namespace) -> int:
    from firefly_midi.simulate import draw_raster, simulate

    if not args.seconds > 0:
        raise ParamError(f"--seconds must be positive, got {args.seconds}")
    values = presets.resolve(args.preset, args.assignments, args.seed)
    result, swarm, recorder = simulate(values, args.seconds, raster=args.raster is not None)
    result["preset"] = args.preset
    if args.raster:
        draw_raster(args.raster, recorder, swarm.dt, f"{args.preset}: {swarm.n} fireflies, {values['swarm.model']}")
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>16}  {_show(value)}")
    return 0


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _presets(_: argparse.Namespace) -> int:
    for name, path in presets.available().items():
        print(f"{name:<20} {path}")
    return 0


def _params(_: argparse.Namespace) -> int:
    for p in PARAMS.values():
        unit = f" [{p.unit}]" if p.unit else ""
        print(f"{p.key:<26} {p.allowed():<48} default {p.default!r}{unit}\n{'':<26} {p.doc}")
    return 0
