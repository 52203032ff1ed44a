"""Numba kernels: one small function per model step, over flat arrays and scalars, by concept.

Every kernel is ``nogil`` (the daemon's tick thread runs it while the UI thread keeps the GIL) and
``cache`` (so the first call in a new process loads machine code instead of compiling).  Kernels
never allocate: the engine owns every buffer and passes it in.  ``reference.py`` holds a plain-numpy
twin of each, and the tests compare the two on random states.

Conventions: phase ``phase[i]`` is in cycles, in [0, 1); a firefly flashes when it reaches 1.
Frequencies are in Hz.  A silenced firefly has phase NaN, so every comparison with it is false and it
never flashes, receives or counts.  Flashes are appended to ``ids`` / ``times`` (the fraction of the
tick at which the flash happened) starting at index ``n``; each kernel returns the new count.

Modules, from the bottom up: ``intrinsics`` (LLVM-level helpers), ``trig``, ``rng``, ``prc`` (one
firefly's response), ``pulse`` (instant delivery), ``delay`` (delayed delivery), ``kuramoto`` and
``board`` (its threaded sweep), ``ticks`` (one whole tick), ``offline`` (many ticks in one call);
``cache`` says where their machine code is kept.
"""
# ruff: noqa: E402 (the cache folder is chosen before the first kernel module is imported)

from firefly_midi.swarm.kernels.cache import use_keyed_cache

use_keyed_cache()  # numba picks a function's cache folder when cache=True is applied: before any kernel

from firefly_midi.swarm.kernels.board import (
    SW_ARGS,
    SW_CHUNKS,
    SW_DONE,
    SW_HELPED,
    SW_NEXT,
    SW_STOP,
    SWEEP_SIZE,
    idle_sweep,
    kuramoto_helper,
    kuramoto_sine,
    take_chunks,
)
from firefly_midi.swarm.kernels.delay import DQ_DROPPED, DQ_SLOTS, deliver_due, queue_delivery, queue_flashes, sine_table
from firefly_midi.swarm.kernels.intrinsics import FAST, atomic_add, atomic_load, atomic_store, borrowed, prefer_512_bit_vectors
from firefly_midi.swarm.kernels.kuramoto import (
    BLOCK,
    CHUNK,
    kuramoto_chunk,
    kuramoto_kick,
    kuramoto_sawtooth,
    kuramoto_sparse,
    phase_histogram,
    wrap_and_detect,
)
from firefly_midi.swarm.kernels.offline import run, run_delayed
from firefly_midi.swarm.kernels.prc import (
    CONSTANT,
    ERMENTROUT,
    KURAMOTO,
    LINEAR,
    MIROLLO_STROGATZ,
    PULSE,
    SAWTOOTH,
    SINE,
    ermentrout_freq,
    ermentrout_freq_at,
    prc_unit,
    pulse_kick,
    receive,
)
from firefly_midi.swarm.kernels.pulse import (
    CROSSING_BLOCK,
    advance,
    clear_fired,
    deliver_sparse,
    desync_same_tick,
    latest,
    receive_all,
    receive_subset,
)
from firefly_midi.swarm.kernels.rng import (
    R_COUNTER,
    R_KEY,
    add_noise,
    fill_uniform,
    mix32,
    noise_bits,
    rewire,
    rewire_rows,
    shake,
    splitmix64,
    uniform01,
)
from firefly_midi.swarm.kernels.ticks import (
    CARRIED,
    SETTINGS,
    blank,
    kuramoto_step,
    pulse_couple,
    pulse_couple_delayed,
    tick,
    tick_delayed,
    wander,
)
from firefly_midi.swarm.kernels.trig import TWO_PI, mean_field, sincos_2pi

__all__ = [
    "BLOCK",
    "CARRIED",
    "CHUNK",
    "CONSTANT",
    "CROSSING_BLOCK",
    "DQ_DROPPED",
    "DQ_SLOTS",
    "ERMENTROUT",
    "FAST",
    "KURAMOTO",
    "LINEAR",
    "MIROLLO_STROGATZ",
    "PULSE",
    "R_COUNTER",
    "R_KEY",
    "SAWTOOTH",
    "SETTINGS",
    "SINE",
    "SWEEP_SIZE",
    "SW_ARGS",
    "SW_CHUNKS",
    "SW_DONE",
    "SW_HELPED",
    "SW_NEXT",
    "SW_STOP",
    "TWO_PI",
    "add_noise",
    "advance",
    "atomic_add",
    "atomic_load",
    "atomic_store",
    "blank",
    "borrowed",
    "clear_fired",
    "deliver_due",
    "deliver_sparse",
    "desync_same_tick",
    "ermentrout_freq",
    "ermentrout_freq_at",
    "fill_uniform",
    "idle_sweep",
    "kuramoto_chunk",
    "kuramoto_helper",
    "kuramoto_kick",
    "kuramoto_sawtooth",
    "kuramoto_sine",
    "kuramoto_sparse",
    "kuramoto_step",
    "latest",
    "mean_field",
    "mix32",
    "noise_bits",
    "phase_histogram",
    "prc_unit",
    "prefer_512_bit_vectors",
    "pulse_couple",
    "pulse_couple_delayed",
    "pulse_kick",
    "queue_delivery",
    "queue_flashes",
    "receive",
    "receive_all",
    "receive_subset",
    "rewire",
    "rewire_rows",
    "run",
    "run_delayed",
    "shake",
    "sincos_2pi",
    "sine_table",
    "splitmix64",
    "take_chunks",
    "tick",
    "tick_delayed",
    "uniform01",
    "wander",
    "wrap_and_detect",
]
