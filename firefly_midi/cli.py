"""Command line: argument parsing only; every command is a call into a module."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from firefly_midi import __version__, presets
from firefly_midi import cli_actions as actions
from firefly_midi.control import ControlError
from firefly_midi.ctl import EXIT_ERROR, EXIT_NO_DAEMON, EXIT_OK, add_ctl_parser, run_ctl
from firefly_midi.params import ParamError
from firefly_midi.ports import BACKENDS
from firefly_midi.tune.fitness import METRICS as TUNE_METRICS
from firefly_midi.tune.spec import ALGORITHMS as TUNE_ALGORITHMS

# One meaning per code across every command (ctl's own three included); docs/control.md lists them too.
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a program Ctrl-C ended
EXIT_OUTPUT_CLOSED = 141  # 128 + SIGPIPE, as a shell reports a program its reader left (`| head`)
EXIT_CODES = f"""exit status, the same for every command:
  {EXIT_OK:<4} done
  {EXIT_FAILED:<4} failed while running: a daemon could not start, stopped on an error, or found another on its socket
  {EXIT_ERROR:<4} refused: a bad option, parameter, preset or file; for ctl, a request the daemon refused
  {EXIT_NO_DAEMON:<4} ctl: no daemon answered on the control socket, or none replied within --timeout
  {EXIT_INTERRUPTED:<4} interrupted (Ctrl-C); tune has written the best preset so far
  {EXIT_OUTPUT_CLOSED:<4} the output was closed before it was all written (piped into head): ends quietly"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="firefly-midi",
        description="A swarm of fireflies that plays MIDI.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"firefly-midi {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    sim = commands.add_parser(
        "simulate",
        help="run the swarm headless, as fast as possible, and report its metrics",
        description="Run the swarm headless and report: sync_time_s (seconds until r stays ≥ 0.95), order_parameter "
        "(synchrony r over the last second, 1 = all in phase), tempo_bpm and mean_freq_hz (the mean flash rate), gap_cv "
        "(unevenness of the phases around the circle, 0 = evenly spread), emission_window (share of the period holding "
        "95% of the flashes), and with --damage recovery_time_s. Definitions: docs/models.md.",
    )
    _add_preset_args(sim)
    sim.add_argument("--seconds", type=float, default=30.0, help="swarm time to simulate (default: %(default)s)")
    sim.add_argument("--seed", type=int, default=None, help="random seed (default: the preset's)")
    sim.add_argument("--json", action="store_true", help="print one JSON object")
    sim.add_argument("--raster", type=Path, metavar="FILE.png", help="draw the flash raster and r(t)")
    sim.add_argument(
        "--threads",
        type=int,
        default=2,
        metavar="N",
        help="threads for a global Kuramoto swarm over 8192 fireflies, at most the CPUs there are; same results whatever N "
        "(default: %(default)s)",
    )
    sim.add_argument(
        "--damage",
        action="append",
        default=[],
        metavar="AT_S:KIND:AMOUNT[@ROW,COL][:FOR_S]",
        help="at AT_S seconds scramble or silence AMOUNT of the swarm (a fraction or N%%), at random or in a disc centred at ROW,COL "
        "(0..1 across the grid), silenced for FOR_S seconds if given; report recovery_time_s (repeatable). "
        "E.g. 15:scramble:0.5, 15:silence:30%%@0.5,0.5:5",
    )

    daemon = commands.add_parser("daemon", help="play the swarm on virtual MIDI ports, in the foreground, until SIGINT/SIGTERM")
    _add_preset_args(daemon, default=None)
    daemon.add_argument("--fresh", action="store_true", help="start from the preset, not from the state kept by the last run")
    daemon.add_argument("--backend", choices=BACKENDS, default="auto", help="MIDI backend (auto: ALSA on Linux, then JACK)")
    daemon.add_argument("--client-name", default="firefly-midi", help="MIDI client name (default: %(default)s)")
    daemon.add_argument("--out-port", default="out", help="name of the output port (default: %(default)s)")
    daemon.add_argument("--in-port", default="in", help="name of the input port (default: %(default)s)")
    daemon.add_argument("--connect-out", metavar="NAME", help="connect to the existing input port matching NAME instead of a virtual port")
    daemon.add_argument("--connect-in", metavar="NAME", help="connect to the existing output port matching NAME instead of a virtual port")
    daemon.add_argument("--no-input", action="store_true", help="open no input port")
    daemon.add_argument("--seed", type=int, default=None, help="random seed (default: the preset's)")
    daemon.add_argument(
        "--record", type=Path, metavar="FILE", help="keep the session (start values, every incoming message, commands) for render --replay"
    )
    daemon.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    daemon.add_argument("--status-every", type=float, default=0.0, metavar="S", help="log a status line every S seconds (0: never)")
    daemon.add_argument(
        "--socket", type=Path, default=None, metavar="PATH", help="control socket (default: $XDG_RUNTIME_DIR/firefly-midi/control.sock)"
    )
    daemon.add_argument("--osc-port", type=int, default=0, metavar="PORT", help="also take OSC commands on this UDP port (0: off)")
    daemon.add_argument("--osc-host", default="127.0.0.1", help="address the OSC listener binds (default: %(default)s, this machine only)")

    tui = commands.add_parser("tui", help="watch and play a running daemon in the terminal")
    tui.add_argument("--socket", type=Path, default=None, metavar="PATH", help="the daemon's control socket")

    run = commands.add_parser("run", help="start the daemon in the background if none runs, then open the terminal UI")
    _add_preset_args(run, default=None)
    run.add_argument("--backend", choices=BACKENDS, default="auto", help="MIDI backend for a daemon started here")
    run.add_argument("--socket", type=Path, default=None, metavar="PATH", help="the daemon's control socket")
    run.add_argument("--stop-on-quit", action="store_true", help="stop the daemon when the UI quits (default: it keeps playing)")

    add_ctl_parser(commands)

    ren = commands.add_parser("render", help="run the swarm offline and write what it plays to a MIDI file")
    _add_preset_args(ren, default=None, unset=f"{presets.DEFAULT_PRESET}; with --replay, the recorded values")
    ren.add_argument("--seed", type=int, default=None, help="random seed (default: the preset's)")
    ren.add_argument("--seconds", type=float, default=60.0, help="swarm time to render (default: %(default)s)")
    ren.add_argument("--input", type=Path, metavar="IN.mid", help="note messages from this file are flashes the swarm sees")
    ren.add_argument(
        "--replay",
        type=Path,
        metavar="FILE",
        help="play a daemon --record session again, exactly (with --preset or --set: that preset over the same input)",
    )
    ren.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.mid")
    ren.add_argument("--json", action="store_true", help="print the summary as one JSON object")

    _add_tune_parser(commands)

    commands.add_parser("presets", help="list the presets found")
    par = commands.add_parser("params", help="list every parameter with its range and default")
    par.add_argument("--markdown", action="store_true", help="as the Markdown table of docs/presets.md")
    return parser


def _add_tune_parser(commands: argparse._SubParsersAction) -> None:
    tune = commands.add_parser(
        "tune",
        help="evolve a preset's parameters toward targets (sync time, tempo, ...) and write the best preset",
        description="Search a preset's parameters with CMA-ES, a microbial GA or separable natural evolution strategies (SNES), "
        "simulating every candidate headless on several seeds and checking the best on hold-out seeds it never searched. "
        "Fitness: the mean over the seeds of the weighted RMS error in tolerances (0 = exact, 1 = one tolerance off). "
        "Metrics: " + ", ".join(TUNE_METRICS) + ".",
    )
    _add_preset_args(tune)
    tune.add_argument(
        "--target",
        action="append",
        required=True,
        metavar="METRIC=VALUE[:TOL[:WEIGHT]]",
        help="a metric to reach, within TOL (default per metric: docs/tune.md), weighed by WEIGHT (repeatable)",
    )
    tune.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="KEY[=LO:HI|=a,b,c]",
        help="a parameter to search, over a range or some choices (default: the coupling; the tempo if a target asks for one; "
        "swarm.neighbors on ring and random topologies)",
    )
    tune.add_argument(
        "--algo",
        choices=TUNE_ALGORITHMS,
        default=TUNE_ALGORITHMS[0],
        help="CMA-ES, microbial GA or evolution strategies (default: %(default)s, docs/tune.md)",
    )
    tune.add_argument(
        "--population",
        type=int,
        default=None,
        help="candidates a generation (default: 16 for ga and es; 4 + 3 ln(keys) for cmaes)",
    )
    tune.add_argument("--generations", type=int, default=None, help="stop after this many generations (default: no cap)")
    tune.add_argument(
        "--budget-s",
        type=float,
        default=None,
        metavar="S",
        help="search until every target holds on the hold-out seeds or S seconds are spent "
        "(with neither this nor --generations: at most 600 s, or 30 generations without a better best)",
    )
    tune.add_argument("--stop-at", type=float, default=None, metavar="F", help="also done once the best fitness is at most F, held out too")
    tune.add_argument("--seeds", type=int, default=3, help="simulation seeds each candidate is averaged over (default: %(default)s)")
    tune.add_argument("--holdout", type=int, default=5, help="unsearched seeds the best are checked on (default: %(default)s)")
    tune.add_argument("--seed", type=int, default=0, help="the tuner's own seed: same seed, same result (default: %(default)s)")
    tune.add_argument("--jobs", type=int, default=None, help="parallel simulations (default: every core)")
    tune.add_argument("--seconds", type=float, default=None, help="swarm time per simulation (default: enough for the targets, ≥ 30)")
    tune.add_argument(
        "--damage", action="append", default=[], metavar="AT_S:KIND:AMOUNT[@ROW,COL][:FOR_S]", help="damage every run, as simulate does"
    )
    tune.add_argument("--sigma", type=float, default=None, help="ES, CMA-ES: (first) step, in shares of a range (default: 0.1, 0.2)")
    tune.add_argument("--lr", type=float, default=1.0, help="ES: the mean's learning rate, in units of σ (default: %(default)s)")
    tune.add_argument("--lr-decay", type=float, default=1.0, help="ES: learning rate factor per generation (default: %(default)s)")
    tune.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd", help="ES: the mean's step rule (default: %(default)s)")
    tune.add_argument("--mutation", type=float, default=0.1, help="GA: mutation size, in shares of a range (default: %(default)s)")
    tune.add_argument(
        "--no-anchor", dest="anchor", action="store_false", help="start at the preset's frequencies, not scaled onto a target tempo"
    )
    tune.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.toml", help="the tuned preset")
    tune.add_argument("--checkpoint", type=Path, default=None, help="resume file (default: OUT.checkpoint.json)")
    tune.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start over")
    tune.add_argument("--json", action="store_true", help="print the achieved metrics and the best parameters as JSON")


def _add_preset_args(parser: argparse.ArgumentParser, default: str | None = presets.DEFAULT_PRESET, unset: str = "") -> None:
    """``unset``: what no --preset means, when ``default`` is None (else: the last run's, as the daemon does)."""
    help_text = (
        "preset name or path (default: %(default)s)"
        if default
        else (f"preset name or path (default: {unset or 'what the last run was playing, else ' + presets.DEFAULT_PRESET})")
    )
    parser.add_argument("--preset", default=default, help=help_text)
    parser.add_argument(
        "--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE", help="override a parameter (repeatable)"
    )


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit status (EXIT_CODES)."""
    try:
        try:
            return _dispatch(build_parser().parse_args(argv))
        finally:
            sys.stdout.flush()  # so that a closed pipe shows here, not as a traceback at interpreter exit
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _drop_stdout()
        return EXIT_OUTPUT_CLOSED


def _dispatch(args: argparse.Namespace) -> int:
    commands = {
        "simulate": actions.simulate,
        "daemon": actions.daemon,
        "render": actions.render,
        "tune": actions.tune,
        "tui": actions.tui,
        "run": actions.run,
        "ctl": run_ctl,
        "presets": actions.list_presets,
        "params": actions.list_params,
    }
    try:
        return commands[args.command](args)
    except (ParamError, FileNotFoundError) as exc:
        print(f"firefly-midi: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ControlError as exc:  # run: the daemon it started exited, or never answered
        print(f"firefly-midi: {exc.message}", file=sys.stderr)
        return EXIT_FAILED


def _drop_stdout() -> None:
    """Point stdout at the null device: the interpreter flushes it on the way out, and what is left in
    its buffer would raise BrokenPipeError again there (the recipe of the `signal` module's docs)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no file behind sys.stdout (a test's capture): nothing to flush
        pass
