"""Swarm speed, side by side in one run: kernels against the memory floor, numpy and pure Python.

Prints a table and writes benchmarks/results/swarm.json.  Run: python benchmarks/bench_swarm.py
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
from numba import njit

from firefly_midi import presets
from firefly_midi.simulate import simulate
from firefly_midi.swarm import Swarm
from firefly_midi.swarm import kernels as K
from firefly_midi.swarm import reference as R


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

    # Side by side: the same global pulse model as plain numpy and as a plain Python loop, N=800.
    p0, f0 = np.random.rand(800), np.ones(800)

    def numpy_tick() -> None:
        new, ids, _ = R.advance(p0, f0, 1e-3)
        p0[:] = R.pulse_kick(new, 0.1 * ids.size / 799, 2, False) if ids.size else new

    def python_tick() -> None:
        phases = p0.tolist()
        crossed = 0
        for i, x in enumerate(phases):
            x += 1e-3
            if x >= 1.0:
                x -= 1.0
                crossed += 1
            phases[i] = x
        if crossed:
            s = 0.1 * crossed / 799
            phases = [max(x - s * np.sin(2 * np.pi * x), 0.0) for x in phases]
        p0[:] = phases

    numba_s = per_tick(pulse, 2000)
    rows["numpy/numba time ratio (N=800)"] = best_of(lambda: [numpy_tick() for _ in range(200)]) / 200 / numba_s
    rows["python/numba time ratio (N=800)"] = best_of(lambda: [python_tick() for _ in range(50)], 3) / 50 / numba_s

    width = max(map(len, rows))
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    for key, value in rows.items():
        print(f"{key:<{width}}  {value:10.3f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "swarm.json").write_text(json.dumps({"machine": platform.uname()._asdict(), "results": rows}, indent=2))


if __name__ == "__main__":
    main()
