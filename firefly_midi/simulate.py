"""Headless runs of the swarm, as fast as the CPU allows: metrics and a raster picture."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from firefly_midi.swarm import Swarm
from firefly_midi.swarm.metrics import Recorder


def simulate(values: dict[str, Any], seconds: float, raster: bool = False) -> tuple[dict[str, Any], Swarm, Recorder]:
    """Run the swarm for ``seconds`` of swarm time; return the metrics, the swarm and its recording."""
    swarm = Swarm(values)
    ticks = max(1, round(seconds / swarm.dt))
    recorder = Recorder.for_run(ticks, swarm.n, swarm.dt, raster=raster)
    started = time.perf_counter()
    swarm.run(ticks, recorder)
    wall = time.perf_counter() - started
    result = {
        **recorder.summary(swarm.dt, swarm.state.phase),
        "n": swarm.n,
        "ticks": ticks,
        "seconds": ticks * swarm.dt,
        "wall_s": wall,
        "realtime_factor": ticks * swarm.dt / wall if wall > 0 else None,
        "model": swarm.values["swarm.model"],
        "seed": swarm.values["swarm.seed"],
    }
    return result, swarm, recorder


def draw_raster(path: Path, recorder: Recorder, tick_s: float, title: str) -> None:
    """Flash raster (firefly id against time, one dot a flash) above the order parameter r(t)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, ids = recorder.raster()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.scatter(t, ids, s=0.5, c="#1f5fbf", marker=".", linewidths=0)
    top.set_ylabel("firefly id")
    top.set_title(title)
    rows = recorder.used // recorder.sample_every
    bottom.plot(recorder.sample_times(tick_s), recorder.samples[:rows, 0], color="#c0392b", linewidth=1)
    bottom.set_ylim(0, 1.05)
    bottom.set_ylabel("r(t)")
    bottom.set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
