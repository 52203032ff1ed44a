"""Live tempo from flash counts, and the entrain preset following a steady external pulse."""

import sys

import numpy as np
import pytest

from firefly_midi import presets
from firefly_midi.swarm import Swarm
from firefly_midi.swarm.tempo import LiveTempo


def feed(tempo, counts):
    for c in counts:
        tempo.update(int(c))


@pytest.mark.parametrize("hz", [0.7, 1.0, 1.37, 3.0])
@pytest.mark.parametrize("width_ticks", [1, 40])
def test_synchronised_bursts_give_their_rate_not_a_whole_number_of_bursts(hz, width_ticks):
    n, dt = 50, 0.001
    counts = np.zeros(10_000, dtype=np.int64)
    for start in np.arange(0.2, 10.0, 1 / hz):
        first = round(start / dt)
        np.add.at(counts, first + np.arange(n) * width_ticks // n, 1)
    tempo = LiveTempo(n, dt, window_s=4.0)
    feed(tempo, counts[: round(9.9 / dt)])
    assert tempo.hz == pytest.approx(hz, rel=0.005)


def test_a_spread_swarm_gives_its_mean_rate():
    rng = np.random.default_rng(1)
    n, dt, hz = 300, 0.001, 1.3
    tempo = LiveTempo(n, dt)
    feed(tempo, rng.poisson(n * hz * dt, 8000))
    assert tempo.hz == pytest.approx(hz, rel=0.03)


def test_nominal_until_a_whole_cycle_then_the_elapsed_time():
    tempo = LiveTempo(10, 0.001, nominal_hz=1.5)
    assert tempo.hz == 1.5
    feed(tempo, [10] + [0] * 499)
    assert tempo.hz == 1.5, "one burst alone says nothing of the period"
    feed(tempo, [10] + [0] * 99)
    assert tempo.hz == pytest.approx(2.0)  # two bursts 500 ticks apart, long before the window fills


def test_update_allocates_nothing():
    tempo = LiveTempo(100, 0.001)
    feed(tempo, [3] * 5000)
    before = sys.getallocatedblocks()
    for k in range(10_000):
        tempo.update(k % 7)
        tempo.hz  # noqa: B018
    assert sys.getallocatedblocks() - before < 10


def pulsed_tempo(values, bpm, seconds, strength):
    """Swarm tempo after ``seconds`` of a steady pulse injected at ``bpm`` (None: no pulse)."""
    swarm = Swarm(values)
    tempo = LiveTempo(swarm.n, swarm.dt, 4.0, values["swarm.freq_hz"])
    next_pulse = 0.37 if bpm else np.inf
    for k in range(round(seconds / swarm.dt)):
        if next_pulse < (k + 1) * swarm.dt:
            swarm.inject(next_pulse / swarm.dt - k, strength)
            next_pulse += 60.0 / bpm
        tempo.update(swarm.step())
    return tempo.bpm


@pytest.mark.parametrize("bpm", [60, 90, 120, 137, 180])
@pytest.mark.parametrize("seed", [0, 1])
def test_entrain_preset_follows_a_steady_pulse_within_30_s(bpm, seed):
    values = presets.resolve("entrain", seed=seed)
    assert not values["input.velocity_scaled"]
    assert pulsed_tempo(values, bpm, 30.0, values["input.strength"]) == pytest.approx(bpm, rel=0.02)


def test_entrain_preset_keeps_its_own_tempo_without_a_pulse():
    values = presets.resolve("entrain")
    assert pulsed_tempo(values, None, 30.0, 0.0) == pytest.approx(values["swarm.freq_hz"] * 60, rel=0.05)
