"""What each command-line command does (``cli.py`` parses; each function here takes its arguments).

The offline commands (simulate, render, tune) start on the numpy engine when the kernels are not
compiled yet and it covers the preset; the daemon and the UI are started here, the work is theirs.
"""

from __future__ import annotations

import argparse
import json
import sys

from firefly_midi import presets
from firefly_midi.control import ControlError, serve
from firefly_midi.params import PARAMS, ParamError, check_consistency, params_markdown, parse_assignment, show
from firefly_midi.ports import PortConfig


def _engine_for(values: dict, numpy_ok: bool = True) -> str:
    """numpy when the kernels would compile first (a fresh install) and it can run ``values``: it
    starts at once and runs a shipped preset's minute of swarm time in seconds (simulate, render).
    Else the compiled kernels, saying so when they compile first (tune: its threads need them)."""
    from firefly_midi.lifecycle import kernels_cached
    from firefly_midi.swarm import plain

    if kernels_cached(values):
        return "compiled"
    if numpy_ok and not plain.uncovered(values):
        print("the kernels are not compiled yet: running on the numpy engine (`firefly-midi daemon` compiles them)", file=sys.stderr)
        return "numpy"
    print("compiling the swarm's kernels first (once: about a minute)...", file=sys.stderr, flush=True)
    return "compiled"


def simulate(args: argparse.Namespace) -> int:
    from firefly_midi.simulate import draw_raster, simulate
    from firefly_midi.swarm import damage

    if not args.seconds > 0:
        raise ParamError(f"--seconds must be positive, got {args.seconds}")
    damages = [damage.parse(text) for text in args.damage]
    for hit in damages:
        if hit.at_s >= args.seconds:
            raise ParamError(f"--damage at {hit.at_s:g} s comes after the run ends (--seconds {args.seconds:g})", "--damage")
    if args.threads < 1:
        raise ParamError(f"--threads must be 1 or more, got {args.threads}", "--threads")
    values = presets.resolve(args.preset, args.assignments, args.seed)
    engine = _engine_for(values)
    result, swarm, recorder = simulate(
        values, args.seconds, raster=args.raster is not None, damage=damages, threads=args.threads, engine=engine
    )
    result["preset"] = args.preset
    if args.raster:
        title = f"{args.preset}: {swarm.n} fireflies, {values['swarm.model']}"
        draw_raster(args.raster, recorder, swarm.dt, title, marks=[hit.at_s for hit in damages])
    if "damage" in result and not args.json:  # the r series is for programs; a terminal gets the numbers
        result["damage"] = [{key: value for key, value in event.items() if key != "series"} for event in result["damage"]]
    _report(result, args.json)
    return 0


def render(args: argparse.Namespace) -> int:
    from firefly_midi.render import write_render

    if not args.seconds > 0:
        raise ParamError(f"--seconds must be positive, got {args.seconds}")
    if args.input is not None and not args.input.is_file():
        raise FileNotFoundError(f"no MIDI file {args.input}")
    if args.replay is not None:
        from firefly_midi.render import write_replay

        own = args.preset is not None or args.assignments or args.seed is not None
        values = presets.resolve(args.preset, args.assignments, args.seed) if own else None
        _report(write_replay(args.replay, args.output, values), args.json)
        return 0
    values = presets.resolve(args.preset, args.assignments, args.seed)
    summary = write_render(values, args.seconds, args.output, args.input, _engine_for(values))
    _report(summary, args.json)
    return 0


def tune(args: argparse.Namespace) -> int:
    from firefly_midi.tune.progress import ProgressBar
    from firefly_midi.tune.spec import prepare
    from firefly_midi.tune.stopping import StopRule
    from firefly_midi.tune.tuner import Tuner

    names = ("algo", "population", "seeds", "holdout", "seed", "sigma", "lr", "lr_decay", "optimizer", "mutation", "anchor")
    options = {name: getattr(args, name) for name in names}
    spec = prepare(args.preset, args.output, args.target, args.vary, args.assignments, args.damage, args.seconds, **options)
    checkpoint = args.checkpoint or args.output.with_suffix(".checkpoint.json")
    _engine_for(presets.resolve(args.preset, args.assignments), numpy_ok=False)
    tuner = Tuner(spec, jobs=args.jobs, checkpoint=checkpoint, restart=args.restart)
    if tuner.resumed_from:
        print(f"firefly-midi: resuming from {checkpoint} at generation {tuner.resumed_from}", file=sys.stderr)
    rule = StopRule.of(args.budget_s, args.generations, args.stop_at)
    print(f"firefly-midi: tune {spec.algo}: {rule.describe()}", file=sys.stderr)
    bar = ProgressBar(tuner, rule.generations)
    try:
        result = tuner.run(rule=rule, progress=bar)
    finally:
        bar.close()
    if result.interrupted:
        print(
            f"firefly-midi: interrupted; the best preset so far is in {args.output}; run the same command again to go on from {checkpoint}",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(result.as_json(spec)))
        return 130 if result.interrupted else 0
    for line in result.verdict(spec):
        print(line)
    holdout = result.holdout.fitness if result.holdout else None
    summary = {"fitness": result.fitness, "holdout_fitness": holdout, **result.as_json(spec)["best"]}
    summary |= {"evaluations": result.evaluations, "wall_s": round(result.wall_s, 1), "output": str(args.output)}
    _report(summary, False)
    return 130 if result.interrupted else 0


def _report(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>16}  {show(value)}")


def daemon(args: argparse.Namespace) -> int:
    import logging

    from firefly_midi.daemon import Daemon

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s firefly-midi %(levelname)s %(message)s")
    preset, values = _start_values(args)
    config = PortConfig(
        backend=args.backend,
        client=args.client_name,
        out_name=args.out_port,
        in_name=args.in_port,
        connect_out=args.connect_out,
        connect_in=args.connect_in,
        use_input=not args.no_input,
        clock_in=values["input.clock_in"],
    )
    daemon = Daemon(values, preset, config)
    if args.record is not None:
        daemon.record(args.record)
    try:
        control = serve(daemon, args.socket)  # a second daemon stops here, before it writes or opens anything
    except ControlError as exc:
        print(f"firefly-midi: {exc}", file=sys.stderr)
        return 1
    daemon.state_path = presets.state_file()
    daemon.connections = presets.load_connections(daemon.state_path)  # the routing outlives a preset change
    daemon.save_state()
    if args.status_every > 0:
        daemon.log_status_every(args.status_every)
    osc = None
    if args.osc_port:
        from firefly_midi.osc import serve_osc

        osc = serve_osc(daemon, host=args.osc_host, port=args.osc_port)
        osc.start()
    try:
        return daemon.run_forever(control)
    finally:
        if osc is not None:
            osc.close()


def _start_values(args: argparse.Namespace) -> tuple[str, dict]:
    """The preset asked for; else the state the last run kept (if it is still good); else the default."""
    import logging

    if args.preset is None and not args.fresh and presets.state_file().is_file():
        try:
            preset, values = presets.load_state(presets.state_file())
        except (ParamError, FileNotFoundError, OSError) as exc:
            kept = presets.state_file().with_suffix(".toml.unusable")
            presets.state_file().replace(kept)  # set aside, not overwritten: nothing the user made is lost
            logging.getLogger("firefly_midi").warning("not resuming the kept state (%s; kept as %s)", exc, kept)
        else:
            for text in args.assignments:
                key, value = parse_assignment(text)
                values[key] = value
            if args.seed is not None:
                values["swarm.seed"] = args.seed
            check_consistency(values)
            logging.getLogger("firefly_midi").info("resuming %s with the changes kept from the last run", preset)
            return preset, values
    preset = args.preset or presets.DEFAULT_PRESET
    return preset, presets.resolve(preset, args.assignments, args.seed)


def tui(args: argparse.Namespace) -> int:
    from firefly_midi.tui.app import run_tui

    return run_tui(args.socket)


def run(args: argparse.Namespace) -> int:
    """The product: make sure a daemon plays (started in the background if needed), then the UI."""
    from firefly_midi.control import default_socket_path, start_daemon_in_background
    from firefly_midi.tui.app import run_tui

    socket_path = args.socket or default_socket_path()
    extra = [a for pair in (("--backend", args.backend),) for a in pair]
    if args.preset:
        extra += ["--preset", args.preset]
    for text in args.assignments:
        extra += ["--set", text]
    start_daemon_in_background(socket_path, extra)
    return run_tui(socket_path, stop_daemon_on_quit=args.stop_on_quit)


def list_presets(_: argparse.Namespace) -> int:
    for name, path in presets.available().items():
        print(f"{name:<20} {path}")
    return 0


def list_params(args: argparse.Namespace) -> int:
    if args.markdown:
        print(params_markdown())
        return 0
    for p in PARAMS.values():
        unit = f" [{p.unit}]" if p.unit else ""
        print(f"{p.key:<26} {p.allowed():<48} default {p.default!r}{unit}\n{'':<26} {p.doc}")
    return 0
