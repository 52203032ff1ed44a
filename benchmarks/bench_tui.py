"""TUI render cost per telemetry frame: 10⁵ fireflies subsampled to 2048 points, and a 316×316 grid.

For each case a frame line is built the way the daemon builds it (firefly_midi.telemetry), then timed:
decoding the JSON line, ingesting it into the FrameModel, and drawing every picture (phase circle or
grid, raster, the two plots) at a typical and a large terminal size.  A last part runs the whole app
headless against a fake client fed at 30 frames/s and reports the TUI process's CPU share.

Prints a table and writes benchmarks/results/tui.json.  Run: python benchmarks/bench_tui.py
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.style import Style

from firefly_midi.tui.model import FrameModel
from firefly_midi.tui.widgets.grid_view import draw_grid
from firefly_midi.tui.widgets.phase_circle import draw_phase_circle
from firefly_midi.tui.widgets.plot import draw_plot
from firefly_midi.tui.widgets.raster import draw_raster

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe

FPS = 30
# (circle or grid, raster, each plot) widget sizes in cells: a 150×48 terminal, and a 240×70 one.
SIZES = {"150x48": ((86, 26), (86, 14), (56, 12)), "240x70": ((140, 40), (140, 22), (92, 18))}


def snapshot(phase: np.ndarray, points: int, grid: bool) -> dict[str, Any]:
    """The daemon's subsampling (firefly_midi.telemetry.phase_snapshot), with a copy if it is absent."""
    try:
        from firefly_midi.telemetry import phase_snapshot

        return phase_snapshot(phase, points, grid)
    except ImportError:
        n = phase.size
        if grid:
            side = math.isqrt(n)
            stride = max(1, math.ceil(math.sqrt(n / points)))
            picked = phase[: side * side].reshape(side, side)[::stride, ::stride]
            return {"stride": stride, "grid": list(picked.shape), "phase": (picked.ravel() * 65536).astype(int).tolist()}
        stride = max(1, math.ceil(n / points))
        return {"stride": stride, "grid": None, "phase": (phase[::stride] * 65536).astype(int).tolist()}


def frame_line(seq: int, t: float, n: int, points: int, grid: bool, rng: np.random.Generator) -> str:
    """One telemetry frame as the daemon sends it: a JSON line with 4096 flashes (the per-frame cap)."""
    phase = (rng.random(n) * 0.6 + t) % 1.0
    flashes = [[int(i), round(t - f, 4)] for i, f in zip(rng.integers(0, n, 4096), rng.random(4096) / FPS, strict=True)]
    frame = {
        "frame": seq,
        "time_s": t,
        "preset": "bench",
        "paused": False,
        "n": n,
        **snapshot(phase, points, grid),
        "flashes": flashes,
        "order_parameter": 0.4 + 0.3 * math.sin(t),
        "tempo_bpm": 60 + math.sin(t / 3),
        "nominal_tempo_bpm": 60.0,
        "drift_bpm": math.sin(t / 3),
        "notes_out": seq * 10,
        "flashes_in": 0,
        "dropped_in": 0,
        "dropped_frames": 0,
        "lateness_us": {"p50": 10.0, "p99": 50.0, "p99.9": 90.0, "max": 300.0},
        "skipped_ticks": 0,
        "ports": {"state": "open", "ports": ["firefly-midi:out"]},
    }
    return json.dumps(frame)


def best_ms(fn, repeats: int = 30) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1e3


def measure(name: str, n: int, points: int, grid: bool) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    lines = [frame_line(k, k / FPS, n, points, grid, rng) for k in range(1, 2 * FPS)]
    model = FrameModel()
    for line in lines[:-1]:
        model.ingest(json.loads(line))
    last = lines[-1]
    row: dict[str, Any] = {"case": name, "n": n, "points": points, "line_kib": len(last) / 1024}
    decoded = json.loads(last)
    row["shown"] = len(decoded["phase"])
    row["decode_ms"] = best_ms(lambda: json.loads(last))
    row["ingest_ms"] = best_ms(lambda: model.ingest(decoded))
    phases, raster, r, tempo = model.phases(), model.raster(), model.order_parameter(), model.tempo()
    base = Style()
    for size, (picture, strip, plot) in SIZES.items():
        draw = draw_grid if grid else draw_phase_circle
        parts = {
            "picture": best_ms(lambda draw=draw, picture=picture: draw(phases, *picture, base)),
            "raster": best_ms(lambda strip=strip: draw_raster(raster, *strip, base)),
            "plots": best_ms(lambda plot=plot: (draw_plot(r, *plot, base), draw_plot(tempo, *plot, base))),
        }
        row[f"draw_{size}_ms"] = parts
        row[f"total_{size}_ms"] = row["decode_ms"] + row["ingest_ms"] + sum(parts.values())
    return row


async def app_cpu_share(n: int, points: int, grid: bool, seconds: float = 4.0) -> dict[str, Any]:
    """The whole app, headless, fed FPS frames/s: CPU seconds per wall second, frames drawn."""
    from firefly_midi.tui.app import FireflyApp

    rng = np.random.default_rng(2)
    lines = [frame_line(k, k / FPS, n, points, grid, rng) for k in range(1, FPS + 1)]

    class Feed:
        async def connect(self) -> None: ...
        async def close(self) -> None: ...

        async def request(self, cmd: str, **args: Any) -> Any:
            return {}

        async def subscribe(self, fps: int, points: int):
            loop = asyncio.get_running_loop()
            start = loop.time()
            k = 0
            while True:
                k += 1
                await asyncio.sleep(max(0.0, start + k / FPS - loop.time()))
                item = json.loads(lines[k % len(lines)])  # decoding is part of the client's cost
                item["time_s"] = k / FPS
                yield item

    drawn = 0

    class Counting(FireflyApp):
        def on_frame_arrived(self, message) -> None:
            nonlocal drawn
            drawn += 1
            super().on_frame_arrived(message)

    app = Counting(Feed)
    async with app.run_test(size=(150, 48)) as pilot:
        await pilot.pause(1.0)
        frames0, drawn0 = app.model.frames, drawn
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        return {
            "frames_received": app.model.frames - frames0,
            "frames_drawn": drawn - drawn0,
            "cpu_share": cpu / wall,
            "wall_s": wall,
        }


def main() -> None:
    cases = [
        measure("swarm 1e5 → 2048 points", 100_000, 2048, grid=False),
        measure("grid 316×316 → 2048 points", 316 * 316, 2048, grid=True),
        measure("grid 316×316 → 65536 points", 316 * 316, 65536, grid=True),
    ]
    print(f"{'case':30} {'shown':>6} {'KiB':>6} {'decode':>7} {'ingest':>7} {'draw 150×48':>12} {'draw 240×70':>12} {'total 150×48':>13}")
    for c in cases:
        draw_small = sum(c["draw_150x48_ms"].values())
        draw_large = sum(c["draw_240x70_ms"].values())
        print(
            f"{c['case']:30} {c['shown']:>6} {c['line_kib']:>6.0f} {c['decode_ms']:>6.2f}m {c['ingest_ms']:>6.2f}m "
            f"{draw_small:>11.2f}m {draw_large:>11.2f}m {c['total_150x48_ms']:>12.2f}m"
        )
    print("(m = ms per frame, median; draw = picture + raster + both plots; at 30 fps the budget is 33 ms)")
    live = {
        "swarm 1e5 → 2048 points": asyncio.run(app_cpu_share(100_000, 2048, grid=False)),
        "grid 316×316 → 2048 points": asyncio.run(app_cpu_share(316 * 316, 2048, grid=True)),
    }
    for name, result in live.items():
        print(
            f"app at {FPS} fps, {name}: {result['frames_received']} frames received, {result['frames_drawn']} drawn "
            f"in {result['wall_s']:.1f} s, CPU share {100 * result['cpu_share']:.0f}%"
        )
    out = Path(__file__).parent / "results" / "tui.json"
    out.parent.mkdir(exist_ok=True)
    machine = describe()
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, load {machine['loadavg_at_start']}")
    out.write_text(json.dumps({"machine": machine, "fps": FPS, "sizes": SIZES, "cases": cases, "app": live}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
