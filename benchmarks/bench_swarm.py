"""Swarm speed, side by side in one run: kernels against the memory floor, numpy and pure Python.

Prints a table and writes benchmarks/results/swarm.json.  Run: python benchmarks/bench_swarm.py
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

from firefly_midi import presets
from firefly_midi.simulate import simulate
from firefly_midi.swarm import Swarm
from firefly_midi.swarm import kernels as K
from firefly_midi.swarm import reference as R

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe


@njit(nogil=True, cache=True)
def floor_update(phase, freq, dt):
    """The memory floor: an in-place float64 phase update reading phase and freq, nothing else."""
    for i in range(phase.size):
        phase[i] += freq[i] * dt


def best_of(fn, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def per_tick(swarm: Swarm, ticks: int) -> float:
    swarm.run(ticks)
    return best_of(lambda: swarm.run(ticks)) / ticks


def numpy_ticks(phase: np.ndarray, freq: np.ndarray, dt: float, eps: float, ticks: int) -> int:
    """Global pulse coupling with the sine PRC in numpy, tick by tick; returns the flashes (the copies
    made per tick are part of what numpy costs)."""
    n, flashes = phase.size, 0
    for _ in range(ticks):
        phase, ids, _ = R.advance(phase, freq, dt)
        fired = np.zeros(n, dtype=bool)
        fired[ids] = True
        new = ids.size
        while new:  # the fireflies a burst pushes over flash in the same tick, and kick the rest in turn
            flashes += new
            kicked = R.pulse_kick(phase, eps * new / (n - 1), K.SINE, False)
            over = (kicked >= 1.0) & ~fired
            phase = np.where(fired, phase, np.where(over, 0.0, kicked))
            fired |= over
            new = int(over.sum())
    return flashes


def python_ticks(phase: np.ndarray, freq: np.ndarray, dt: float, eps: float, ticks: int) -> int:
    """The same as numpy_ticks in plain Python (lists and math.sin)."""
    phases, steps, n, flashes = phase.tolist(), (freq * dt).tolist(), phase.size, 0
    for _ in range(ticks):
        fired = [False] * n
        new = 0
        for i in range(n):
            x = phases[i] + steps[i]
            if x >= 1.0:
                x -= 1.0
                fired[i] = True
                new += 1
            phases[i] = x
        while new:
            flashes += new
            s = eps * new / (n - 1)
            new = 0
            for i in range(n):
                if fired[i]:
                    continue
                x = max(phases[i] - s * math.sin(2 * math.pi * phases[i]), 0.0)
                if x >= 1.0:
                    x, fired[i] = 0.0, True
                    new += 1
                phases[i] = x
    return flashes


def side_by_side(ticks: int = 2000) -> dict[str, float]:
    """The same global pulse model (sine PRC, flashes absorbed, cascades within the tick) as the
    numba engine, as plain numpy and as a plain Python loop: N = 800, each from the same fresh
    (unsynchronised) state over the same ticks, so each does the same work; their flash counts are
    reported beside the times to show it (the engine's sine is a polynomial: counts may differ by a few)."""
    side = {"swarm.n": 800, "swarm.coupling": 0.1, "swarm.prc": "sine", "swarm.topology": "global", "swarm.noise": 0.0}
    fresh = Swarm(side)
    phase0, freq0, dt, eps = fresh.state.phase.copy(), fresh.state.freq.copy(), fresh.dt, side["swarm.coupling"]

    def numba_setup():
        swarm = Swarm(side)  # the same seed: phase0 and freq0
        return lambda: (swarm.run(ticks), swarm.flashes_total)[1]

    setups = {
        "numba": numba_setup,
        "numpy": lambda: lambda: numpy_ticks(phase0.copy(), freq0.copy(), dt, eps, ticks),
        "python": lambda: lambda: python_ticks(phase0.copy(), freq0.copy(), dt, eps, ticks),
    }
    rows, best = {}, {}
    for name, setup in setups.items():
        best[name] = float("inf")
        for _ in range(3):
            run = setup()
            started = time.perf_counter()
            flashes = run()
            best[name] = min(best[name], time.perf_counter() - started)
        rows[f"{name} flashes, side by side (N=800, {ticks} ticks from one start)"] = flashes
    rows["numpy/numba time ratio (N=800, same start, same ticks)"] = best["numpy"] / best["numba"]
    rows["python/numba time ratio (N=800, same start, same ticks)"] = best["python"] / best["numba"]
    return rows


def main() -> None:
    rows = {}
    started = time.perf_counter()
    Swarm({"swarm.n": 10}).run(10)
    rows["first_call_s (import + cached kernels)"] = time.perf_counter() - started

    n = 1_000_000
    phase, freq = np.random.rand(n), np.ones(n)
    floor_update(phase, freq, 1e-9)
    floor = best_of(lambda: floor_update(phase, freq, 1e-9)) / n * 1e9
    synced = Swarm({"swarm.n": n, "swarm.coupling": 0.0, "swarm.freq_dist": "constant"})
    synced.state.phase[:] = 0.5  # no flashes: the common tick of a synchronised swarm
    idle = per_tick(synced, 20) / n * 1e9
    busy = per_tick(Swarm({"swarm.n": n, "swarm.coupling": 0.1}), 20) / n * 1e9
    rows["floor ns/firefly-tick (N=1e6)"] = floor
    rows["pulse global, no flash in tick, ns/firefly-tick"] = idle
    rows["pulse global, flashes every tick, ns/firefly-tick"] = busy
    rows["ratio idle/floor"] = idle / floor

    kuramoto = {"swarm.model": "kuramoto", "swarm.n": 500_000, "swarm.coupling": 1.0}
    kuramoto.update({"swarm.freq_spread_hz": 0.05, "swarm.freq_dist": "gaussian"})
    for threads in (1, 2):  # side by side: the sweep on the calling thread alone, then shared with a helper
        kura = Swarm(kuramoto, threads=threads)
        rows[f"kuramoto global N=5e5 ms/tick, {threads} thread{'s' * (threads > 1)}"] = per_tick(kura, 20) * 1e3
    rows["kuramoto 2 threads: share of chunks the helper ran"] = kura.helped_chunks / (kura.ticks * -(-kura.n // K.CHUNK))

    ticks = 20_000
    erm = Swarm(presets.resolve("ermentrout-800"))
    pulse = Swarm({"swarm.n": 800, "swarm.coupling": 0.1})
    rows["ermentrout-800 realtime factor (1 ms tick)"] = 1e-3 / per_tick(erm, ticks)
    rows["pulse global N=800 realtime factor (1 ms tick)"] = 1e-3 / per_tick(pulse, ticks)
    # The offline path as `simulate` runs it: 30 s from scratch, r sampled every 10 ms.
    simulate(presets.resolve("ermentrout-800"), 1.0)
    wall = min(simulate(presets.resolve("ermentrout-800"), 30.0)[0]["wall_s"] for _ in range(3))
    rows["ermentrout-800 simulate() 30 s realtime factor"] = 30.0 / wall

    rows.update(side_by_side())

    width = max(map(len, rows))
    machine = describe()
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, load {machine['loadavg_at_start']}")
    for key, value in rows.items():
        print(f"{key:<{width}}  {value:10.3f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "swarm.json").write_text(json.dumps({"machine": machine, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
