"""The tuner on issue #6's problem: time to converge, evaluations per second, parallel speed-up.

Run: python benchmarks/bench_tune.py [--seeds-tuner 3] [--budget-s 120] [--rewire] [--quick]
Prints tables, writes benchmarks/results/bench_tune.json and the plot docs/tune-convergence.png.

The problem: retune ermentrout-800 (sync ≈ 8 s at 60 BPM) to synchronise in 15 s at 72 BPM by
varying coupling, tempo and neighbours (``--rewire`` adds the rewiring period as a fourth gene),
3 simulation seeds per evaluation.  "Converged" is a best fitness ≤ 1: every target within its
tolerance on average.  Each algorithm runs from several tuner seeds on every core until it
converges or the budget runs out.

Speed-up: one fixed workload (ES, a fixed number of generations, no stop) with jobs = 1 and
jobs = N back to back, in the order 1, N, N, 1, so slow drift of other load on the machine
weighs on both sides alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from firefly_midi import params as P
from firefly_midi import presets
from firefly_midi.simulate import simulate
from firefly_midi.tune.tuner import Tuner, TuneSpec, prepare

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from machine import describe  # noqa: E402

RESULTS = HERE / "results"
PLOT = HERE.parent / "docs" / "tune-convergence.png"
PRESET = "ermentrout-800"
TARGETS = ["sync_time_s=15", "tempo_bpm=72"]
VARY = ["swarm.coupling", "swarm.freq_hz", "swarm.neighbors=2:60"]
REWIRE = "swarm.rewire_s=0.2:5"
SEEDS = 3  # simulation seeds per evaluation
STOP_AT = 1.0
OPTIONS = {"ga": {"population": 16}, "es": {"population": 16, "lr": 0.1}}
COLOURS = {"ga": "tab:blue", "es": "tab:orange"}
CHECKPOINTS = (16, 32, 64, 128, 256, 512, 1024)  # evaluation counts compared across algorithms
SPEEDUP_GENERATIONS = 4  # ES, 16 candidates × 3 seeds a generation: 192 simulations per leg


# ------------------------------------------------------------------------------------------ machine
def machine() -> dict[str, Any]:
    return describe(uname=platform.uname()._asdict())


def load() -> list[float]:
    """The 1/5/15-minute load averages: on a shared 2-core machine, the context every figure needs."""
    return [round(x, 2) for x in os.getloadavg()]


# ------------------------------------------------------------------------------------------ runs
def make_spec(algo: str, seed: int, vary: list[str], out: Path) -> TuneSpec:
    return prepare(PRESET, out / f"{algo}-{seed}.toml", TARGETS, vary, seeds=SEEDS, seed=seed, algo=algo, **OPTIONS[algo])


def warm_up() -> float:
    """Load (or compile) the kernels once, outside every timed run."""
    started = time.perf_counter()
    simulate(presets.resolve(PRESET), 1.0)
    return time.perf_counter() - started


def one_simulation(seconds: float, repeats: int = 5) -> dict[str, float]:
    """The serial cost of one evaluation's unit of work: a whole simulate() call, construction included."""
    values, walls, factors = presets.resolve(PRESET), [], []
    for _ in range(repeats):
        started = time.perf_counter()
        result, _, _ = simulate(values, seconds)
        walls.append(time.perf_counter() - started)
        factors.append(result["realtime_factor"])
    return {"seconds": seconds, "best_ms": min(walls) * 1e3, "median_ms": median(walls) * 1e3, "realtime_factor": max(factors)}


def converge(algo: str, seed: int, vary: list[str], jobs: int, budget_s: float, out: Path) -> dict[str, Any]:
    """One tuning run until a best ≤ STOP_AT or the budget; the generation cap is never the limit."""
    spec = make_spec(algo, seed, vary, out)
    before, cpu = load(), time.process_time()
    result = Tuner(spec, jobs=jobs).run(generations=10**6, budget_s=budget_s, stop_at=STOP_AT)
    cpu = time.process_time() - cpu
    return {
        "algo": algo,
        "seed": seed,
        "genes": len(vary),
        "converged": result.best.fitness <= STOP_AT,
        "fitness": result.best.fitness,
        "metrics": result.best.metrics,
        "best": {g.key: P.plain(result.values[g.key]) for g in spec.space.genes},
        "generations": result.generations,
        "evaluations": result.evaluations,
        "simulations": result.simulations,
        "infeasible": result.infeasible,
        "wall_s": result.wall_s,
        "evaluations_per_s": result.evaluations / result.wall_s,
        "simulations_per_s": result.simulations / result.wall_s,
        "cpu_s": cpu,
        "cores_obtained": cpu / result.wall_s,
        "history": result.history,
        "load_before": before,
        "load_after": load(),
    }


def best_at(run: dict[str, Any], counts: tuple[int, ...]) -> list[float | None]:
    """Best fitness after each count of evaluations.

    A run that stopped because it converged keeps its best for later counts (it could only have
    improved); a run cut by the budget is unknown beyond its last generation (None).
    """
    out: list[float | None] = []
    for count in counts:
        seen = [f for e, f in run["history"] if e <= count]
        beyond = count > run["evaluations"] and not run["converged"]
        out.append(None if not seen or beyond else min(seen))
    return out


def speedup(jobs: int, vary: list[str], generations: int, out: Path) -> dict[str, Any]:
    """The same ES workload serially and on every core, alternating 1, N, N, 1."""
    legs = []
    for j in (1, jobs, jobs, 1):
        spec = make_spec("es", 0, vary, out / f"speedup-{len(legs)}")
        spec.output.parent.mkdir(exist_ok=True)
        before, cpu = load(), time.process_time()
        result = Tuner(spec, jobs=j).run(generations=generations)
        cpu = time.process_time() - cpu
        legs.append(
            {
                "jobs": j,
                "wall_s": result.wall_s,
                "evaluations": result.evaluations,
                "simulations": result.simulations,
                "evaluations_per_s": result.evaluations / result.wall_s,
                "simulations_per_s": result.simulations / result.wall_s,
                "fitness": result.best.fitness,
                # CPU seconds of all threads over wall time: how many cores other load left us.
                "cores_obtained": cpu / result.wall_s,
                "cpu_ms_per_simulation": cpu / result.simulations * 1e3,
                "load_before": before,
            }
        )
        leg = legs[-1]
        rates = f"{leg['simulations_per_s']:.1f} sim/s, {leg['cores_obtained']:.2f} cores"
        print(f"  speed-up leg jobs={j}: {leg['wall_s']:.2f} s, {rates}", flush=True)
    return summarise_speedup(legs, jobs)


def summarise_speedup(legs: list[dict[str, Any]], jobs: int) -> dict[str, Any]:
    def rate(j: int, key: str) -> float:
        walls = [leg["wall_s"] for leg in legs if leg["jobs"] == j]
        return legs[0][key] * len(walls) / sum(walls)  # the same work each leg: total work / total time

    def mean(j: int, key: str) -> float:
        return sum(leg[key] for leg in legs if leg["jobs"] == j) / sum(1 for leg in legs if leg["jobs"] == j)

    serial, parallel = rate(1, "evaluations"), rate(jobs, "evaluations")
    return {
        "legs": legs,
        "jobs": jobs,
        "serial_evaluations_per_s": serial,
        "parallel_evaluations_per_s": parallel,
        "serial_simulations_per_s": rate(1, "simulations"),
        "parallel_simulations_per_s": rate(jobs, "simulations"),
        "speedup": parallel / serial,
        "serial_cores_obtained": mean(1, "cores_obtained"),
        "parallel_cores_obtained": mean(jobs, "cores_obtained"),
        "serial_cpu_ms_per_simulation": mean(1, "cpu_ms_per_simulation"),
        "parallel_cpu_ms_per_simulation": mean(jobs, "cpu_ms_per_simulation"),
        # A seed must give the same result on any number of threads: a cheap determinism check.
        "same_result_every_leg": len({leg["fitness"] for leg in legs}) == 1,
    }


# ------------------------------------------------------------------------------------------ report
def summary_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for algo in OPTIONS:
        mine = [r for r in runs if r["algo"] == algo]
        done = [r for r in mine if r["converged"]]
        for r in mine:
            metrics = ", ".join(f"{k} {v:.3g}" if v is not None else f"{k} -" for k, v in r["metrics"].items())
            rows.append(
                [
                    f"{algo} seed {r['seed']}",
                    "yes" if r["converged"] else "no",
                    f"{r['wall_s']:.1f}",
                    str(r["evaluations"]),
                    str(r["simulations"]),
                    f"{r['evaluations_per_s']:.2f}",
                    f"{r['cores_obtained']:.2f}",
                    f"{r['fitness']:.3f}",
                    metrics,
                ]
            )
        walls = [r["wall_s"] for r in done]
        rows.append([f"{algo} median", f"{len(done)}/{len(mine)}", f"{median(walls):.1f}" if walls else "-", *[""] * 6])
    return rows


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        print("  ".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True)))


def comparison_rows(runs: list[dict[str, Any]], counts: tuple[int, ...]) -> list[list[str]]:
    rows = []
    for algo in OPTIONS:
        columns = list(zip(*(r["best_at"] for r in runs if r["algo"] == algo), strict=True))
        cells = [fmt_median(col) for col in columns]
        rows.append([algo, *cells])
    return rows


def fmt_median(values: tuple[float | None, ...]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    return f"{median(known):.2f}" + ("" if len(known) == len(values) else f" ({len(known)}/{len(values)})")


def plot(report: dict[str, Any], path: Path) -> None:
    """Best fitness against evaluations, one line per run; a dot where a run converged, a cross where its budget ran out."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for algo in OPTIONS:
        for i, r in enumerate(r for r in report["runs"] if r["algo"] == algo):
            evals, best = zip(*r["history"], strict=True)
            label = f"{algo.upper()} (population 16)" if i == 0 else None
            ax.step(evals, best, where="post", color=COLOURS[algo], alpha=0.8, label=label)
            ax.plot(evals[-1], best[-1], "o" if r["converged"] else "x", color=COLOURS[algo])
    ax.axhline(STOP_AT, color="grey", linestyle="--", linewidth=1, label="1 = every target within tolerance")
    ax.set_yscale("log")
    # Plain numbers on the log axis: the interesting range (0.5..5) holds no power of ten but 1.
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"evaluations (each {SEEDS} seeds × {report['seconds_per_simulation']:g} s simulated)")
    ax.set_ylabel("best fitness so far (tolerances off)")
    title = f"{report['preset']} → sync 15 s, 72 BPM: {len(report['vary'])} parameters, {report['jobs']} jobs"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------------------------------ main
def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds-tuner", type=int, default=3, help="tuner seeds per algorithm (default 3)")
    ap.add_argument("--budget-s", type=float, default=120.0, help="wall time per tuning run (default 120)")
    ap.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), help="parallel simulations (default: every core)")
    ap.add_argument("--rewire", action="store_true", help=f"vary {REWIRE} too (4 parameters)")
    ap.add_argument("--no-speedup", action="store_true", help="skip the serial vs parallel comparison")
    ap.add_argument("--speedup-generations", type=int, default=SPEEDUP_GENERATIONS, help="ES generations per speed-up leg")
    ap.add_argument("--json", type=Path, help="where the results go (default benchmarks/results/bench_tune[-rewire][-quick].json)")
    ap.add_argument("--plot", type=Path, help="the convergence plot (default: docs/tune-convergence.png, or results/)")
    ap.add_argument("--replot", type=Path, metavar="JSON", help="only redraw the plot from an earlier run's JSON")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 tuner seed, budget 20 s, 1 speed-up generation")
    args = ap.parse_args()
    if args.quick:
        args.seeds_tuner, args.budget_s, args.speedup_generations = 1, 20.0, 1
    if args.plot is None:  # only the full 3-parameter run replaces the committed plot
        suffix = ("-rewire" if args.rewire else "") + ("-quick" if args.quick else "")
        args.plot = RESULTS / f"tune-convergence{suffix}.png" if suffix else PLOT
    return args


def main() -> None:
    args = parse_args()
    if args.replot:
        plot(json.loads(args.replot.read_text()), args.plot)
        return
    report = measure(args, [*VARY, REWIRE] if args.rewire else list(VARY))
    show(report)
    if report["runs"]:  # --seeds-tuner 0 measures the speed-up alone
        plot(report, args.plot)
    name = "bench_tune" + ("-rewire" if args.rewire else "") + ("-quick" if args.quick else "") + ".json"
    path = args.json or RESULTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}" + (f" and {args.plot}" if report["runs"] else ""))


def measure(args: argparse.Namespace, vary: list[str]) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": machine(), "load_start": load(), "preset": PRESET, "targets": TARGETS, "vary": vary}
    report["warm_up_s"] = warm_up()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:  # the tuned presets are not kept
        out = Path(tmp)
        report["seconds_per_simulation"] = seconds = make_spec("ga", 0, vary, out).seconds
        report["one_simulation"] = one_simulation(seconds)
        print(f"one simulation: {report['one_simulation']}", flush=True)
        if not args.no_speedup:
            report["speedup"] = speedup(args.jobs, vary, args.speedup_generations, out)
        for algo in OPTIONS:
            for seed in range(args.seeds_tuner):
                r = converge(algo, seed, vary, args.jobs, args.budget_s, out)
                print(f"  {algo} seed {seed}: fitness {r['fitness']:.3f} after {r['evaluations']} evals, {r['wall_s']:.1f} s", flush=True)
                runs.append({**r, "best_at": best_at(r, CHECKPOINTS)})
    report.update(runs=runs, compared_at_evaluations=list(CHECKPOINTS), load_end=load(), budget_s=args.budget_s, jobs=args.jobs)
    return report


def show(report: dict[str, Any]) -> None:
    m, sim = report["machine"], report["one_simulation"]
    print(f"\nmachine: {m['cpu']}, {m['cores']} cores, python {m['python']}; load {report['load_start']} → {report['load_end']}")
    print(f"one simulation ({sim['seconds']:g} s of swarm): {sim['best_ms']:.1f} ms best, realtime ×{sim['realtime_factor']:.0f}")
    if "speedup" in report:
        s = report["speedup"]
        print(
            f"evaluations/s: {s['serial_evaluations_per_s']:.2f} (1 job) → {s['parallel_evaluations_per_s']:.2f} ({s['jobs']} jobs); "
            f"simulations/s {s['serial_simulations_per_s']:.1f} → {s['parallel_simulations_per_s']:.1f}; speed-up ×{s['speedup']:.2f}"
        )
        print(
            f"cores obtained: {s['serial_cores_obtained']:.2f} → {s['parallel_cores_obtained']:.2f}; CPU per simulation "
            f"{s['serial_cpu_ms_per_simulation']:.1f} → {s['parallel_cpu_ms_per_simulation']:.1f} ms"
        )
    if not report["runs"]:
        return
    print()
    header = ["run", "converged", "wall s", "evals", "sims", "evals/s", "cores", "fitness", "metrics (mean over seeds)"]
    print_table(header, summary_rows(report["runs"]))
    print("\nmedian best fitness after n evaluations (k/n: only k runs known that far)")
    print_table(["algo", *map(str, report["compared_at_evaluations"])], comparison_rows(report["runs"], CHECKPOINTS))


if __name__ == "__main__":
    main()
