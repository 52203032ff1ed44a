"""Headless runs of the player, as fast as the CPU allows (no notes): metrics, damage and recovery, a raster picture."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from firefly_midi.player import Player
from firefly_midi.swarm import Swarm
from firefly_midi.swarm.damage import Damage, select
from firefly_midi.swarm.metrics import Recorder, decimate, recovery_time

SYNCED = 0.5  # below this r before a damage there is no synchrony to recover
BEFORE_S = 1.0  # r_before: mean r over this long before the damage
SERIES_BEFORE_S = 2.0  # the reported series starts this long before the damage
SERIES_POINTS = 400


def simulate(
    values: dict[str, Any],
    seconds: float,
    raster: bool = False,
    damage: Sequence[Damage] = (),
    threads: int = 1,
    engine: str = "compiled",
) -> tuple[dict[str, Any], Swarm, Recorder]:
    """Run the swarm for ``seconds`` of swarm time, damaged as ``damage`` says; return the metrics, the swarm and its recording.

    ``threads``: see ``Swarm``; the tuner keeps 1, as it runs candidates side by side.  ``engine``:
    "numpy" runs at once where numba would first compile the kernels (``Swarm``).
    """
    player = Player(values, threads=threads, engine=engine)
    swarm = player.swarm
    ticks = max(1, round(seconds / swarm.dt))
    recorder = Recorder.for_run(ticks, swarm.n, swarm.dt, raster=raster)
    events = sorted(damage, key=lambda d: d.at_s)
    if any(not 0 <= d.at_s < seconds for d in events):
        raise ValueError(f"every damage must come within the run (0 ≤ at_s < {seconds} s)")
    hits = [select(d, swarm.n, swarm.values["swarm.seed"]) for d in events]
    started = time.perf_counter()
    _run_with_damage(player, recorder, ticks, _timeline(events, hits, swarm.dt, ticks))
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
    if events:
        reports = _damage_reports(events, hits, recorder, swarm.dt, ticks)
        result["recovery_time_s"] = reports[0]["recovery_time_s"]
        result["damage"] = reports
    return result, swarm, recorder


def _timeline(events: list[Damage], hits: list[np.ndarray], dt: float, ticks: int) -> list[tuple[int, np.ndarray, str]]:
    """(tick, ids, Swarm.damage kind) of every damage and revival within the run, in time order."""
    steps = [(round(d.revive_s / dt), ids, "revive") for d, ids in zip(events, hits, strict=True) if d.revive_s is not None]
    steps += [(round(d.at_s / dt), ids, d.kind) for d, ids in zip(events, hits, strict=True)]
    # Stable sort, revivals listed first: a damage in the tick of a revival has the last word.
    return sorted((step for step in steps if step[0] <= ticks), key=lambda step: step[0])


def _run_with_damage(player: Player, recorder: Recorder, ticks: int, timeline: list[tuple[int, np.ndarray, str]]) -> None:
    """The player's offline run, stretch by stretch between damages, all into the same recorder."""
    swarm = player.swarm
    for tick, ids, kind in timeline:
        player.run(tick - swarm.ticks, recorder)
        swarm.damage(ids, kind)
    player.run(ticks - swarm.ticks, recorder)


def _damage_reports(events: list[Damage], hits: list[np.ndarray], recorder: Recorder, dt: float, ticks: int) -> list[dict[str, Any]]:
    """Each damage's report, measured up to the next damage (or the end of the run)."""
    times, r = recorder.sample_times(dt), recorder.samples[: recorder.rows(), 0]
    # Times on the tick grid, as the damage was applied: the sample taken at that tick is the last one before it.
    starts = [round(d.at_s / dt) * dt for d in events]
    ends = [*starts[1:], ticks * dt]
    revivals = [None if d.revive_s is None else round(d.revive_s / dt) * dt for d in events]
    return [
        _damage_report(d, ids.size, (start, revival, end), times[times <= end], r[times <= end])
        for d, ids, start, revival, end in zip(events, hits, starts, revivals, ends, strict=True)
    ]


def _damage_report(d: Damage, hit: int, span: tuple[float, float | None, float], times: np.ndarray, r: np.ndarray) -> dict[str, Any]:
    """``span``: (damage, revival or None, next damage or end of run) times; ``times``, ``r``: the samples up to that end."""
    t_hit, t_revive, t_end = span
    before = (times > t_hit - BEFORE_S) & (times <= t_hit)
    after = times > t_hit
    shown = times > t_hit - SERIES_BEFORE_S
    r_before = float(r[before].mean()) if before.any() else None
    return {
        "at_s": d.at_s,
        "kind": d.kind,
        "amount": d.amount,
        "region": list(d.region) if d.region else None,
        "for_s": d.for_s,
        "fireflies": hit,
        "r_before": None if r_before is None else round(r_before, 4),  # as many digits as the series
        "r_min_after": round(float(r[after].min()), 4) if after.any() else None,
        **_recovery(t_hit if t_revive is None else t_revive, t_end, times, r, r_before),
        "series": {
            "t": [round(float(t), 3) for t in decimate(times[shown], SERIES_POINTS)],
            "r": [round(float(x), 4) for x in decimate(r[shown], SERIES_POINTS)],
        },
    }


def _recovery(t_from: float, t_end: float, times: np.ndarray, r: np.ndarray, r_before: float | None) -> dict[str, Any]:
    """recovery_time_s counted from ``t_from``, with a note when there is no recovery to measure."""
    if r_before is None or r_before < SYNCED:
        return {"recovery_time_s": None, "note": f"the swarm was not synchronised before the damage (r_before < {SYNCED})"}
    if t_from >= t_end:
        return {"recovery_time_s": None, "note": "no time to recover: the next damage or the end of the run comes first"}
    seconds = recovery_time(times, r, t_from, r_before)
    return {"recovery_time_s": None if seconds is None else round(seconds, 3)}  # samples are 10 ms apart: no more digits


def draw_raster(path: Path, recorder: Recorder, tick_s: float, title: str, marks: Sequence[float] = ()) -> None:
    """Flash raster (firefly id against time, one dot a flash) above the order parameter r(t); a line at each of ``marks`` (s)."""
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
    for t_mark in marks:  # damage times
        for axes in (top, bottom):
            axes.axvline(t_mark, color="#555555", linewidth=0.8, linestyle="--")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
