"""Swarm: one ``step(dt)`` per tick, returning how many fireflies flashed and when.

The engine is pure: no ports, clocks or files.  It owns every buffer the kernels write, so a step
allocates nothing; flashes of the last step are ``flash_ids[:count]`` and ``flash_times[:count]``
(the fraction of the tick at which each happened).  Its only threads are helpers that an offline
``run`` of a large Kuramoto swarm may start for its sweep (``threads``), and they end with the run.

Coupling, in one place:
- pulse-type models (pulse, mirollo_strogatz, ermentrout) react to observed flashes.  Each observed
  flash counts with weight ``w``: 1 when ``swarm.normalize`` is false (ε acts per flash, as in the
  Ermentrout paper), 1/k when true, k being how many fireflies each one observes (N-1 for global).
  Normalised, a whole neighbourhood flashing at once is worth ε whatever the swarm size.
- Flashes within one tick arrive together: global coupling adds them into one count and touches
  every firefly once (O(N)); sparse topologies deliver each flash to its k peers (O(N·k)).  Fireflies
  pushed to threshold flash in the same tick and are absorbed (they ignore the rest of that tick).
- kuramoto couples continuously through the mean field (global, O(N)) or neighbour averages.
- An external flash of strength s counts as s whole neighbourhoods flashing (s = 1: as strong as all
  the fireflies a firefly watches flashing together).
- ``swarm.delay_ms`` > 0 (pulse-type models): a flash is not seen in its own tick but queued, each
  delivery (flash, observer) with its own uniform random delay in [0, delay_ms]; global coupling
  draws one delay per flash and everyone sees it then (its flasher too: 1 flash in N).  A delivery
  lands at the receiver's phase of the tick it arrives in; flashes it sets off are queued in turn.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from firefly_midi import params as P
from firefly_midi.swarm import kernels as K
from firefly_midi.swarm import plain, topology
from firefly_midi.swarm import state as S
from firefly_midi.swarm.metrics import Recorder

MODEL_CODES = {"pulse": K.PULSE, "mirollo_strogatz": K.MIROLLO_STROGATZ, "ermentrout": K.ERMENTROUT, "kuramoto": K.KURAMOTO}
PRC_CODES = {"constant": K.CONSTANT, "linear": K.LINEAR, "sine": K.SINE, "sawtooth": K.SAWTOOTH}

MAX_EXTERNAL = 256  # external flashes queued per tick; more are counted as dropped
_MAX_IN_FLIGHT = 1 << 23  # delayed deliveries in flight at most (96 MB of slots); more are dropped
_HIST_BINS = 4096
# A helper thread is started for a run() only when there is this much sweep to share (firefly-ticks):
# starting and joining one costs ~0.1 ms, and its spinning wait is wasted on short runs.
_HELP_MIN_WORK = 1 << 22

_EMPTY = np.empty(0, dtype=np.int64)
_NO_TABLE = np.empty((0, 1), dtype=np.int32)  # global coupling: one aggregate count, no table
_RESHAPING = P.keys_with_effect("reshape")
ENGINES = ("numpy", "compiled")


class Swarm:
    """A swarm of fireflies advancing by fixed ticks."""

    def __init__(self, values: dict[str, Any] | None = None, threads: int = 1, engine: str = "compiled"):
        """``threads``: how many threads an offline ``run`` may use for a global Kuramoto sweep of
        two chunks or more (K.CHUNK fireflies each); ``step`` always uses the calling thread alone.
        Same results, bit for bit, whatever the count.  ``engine``: "compiled" (the numba kernels)
        or "numpy" (``plain``: plays at once, before numba has compiled anything; see use_engine)."""
        if threads < 1:
            raise ValueError(f"threads must be 1 or more, got {threads}")
        self.threads = threads
        self.use_engine(engine)
        merged = P.defaults()
        merged.update(values or {})
        for key, value in merged.items():
            merged[key] = P.check(key, value)
        P.check_consistency(merged)
        self.check_engine(merged)
        self.values = merged
        self.reset()

    def use_engine(self, engine: str) -> None:
        """Step with the compiled kernels or their numpy twins from now on, on the same buffers: the
        swarm goes on where it was (phases, frequencies, the generator, the mean field).  Handing over
        to "compiled" is for a tick boundary after the kernels were loaded off the tick thread."""
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        self.engine = engine
        self._k = K if engine == "compiled" else plain

    def check_engine(self, values: dict[str, Any]) -> None:
        """Raise ParamError when this swarm's engine cannot play ``values`` (numpy: ``plain.uncovered``)."""
        why = plain.uncovered(values) if self.engine == "numpy" else ""
        if why:
            raise P.ParamError(f"{why} needs the compiled kernels, which are not loaded yet")

    # ----------------------------------------------------------------------------------- set-up
    def reset(self) -> None:
        """Draw the swarm afresh from the parameters and seed."""
        v = self.values
        self.n = v["swarm.n"]
        self.state, rng = S.fresh(v)
        key = S.seed_key(v["swarm.seed"])
        counter = np.uint64(rng.integers(0, 2**62))
        table, counter = topology.build(v["swarm.topology"], self.n, v["swarm.neighbors"], key, counter, self._k.rewire)
        self.table = _NO_TABLE if table is None else table
        self._rng = np.array([key, counter], dtype=np.uint64)
        self.in_degree = topology.in_degree(table, self.n)
        self.fired = np.zeros(self.n, dtype=np.uint8)
        self.flash_ids = np.zeros(self.n, dtype=np.int64)
        self.flash_times = np.zeros(self.n, dtype=np.float64)
        self.count = 0
        self.ticks = 0
        self.flashes_total = 0
        self.dropped_external = 0
        # External flashes wait here until the next step: preallocated, so injecting allocates nothing.
        self._ext_time = np.zeros(MAX_EXTERNAL)
        self._ext_strength = np.zeros(MAX_EXTERNAL)
        self._ext_targets: list[np.ndarray | None] = [None] * MAX_EXTERNAL
        self._ext_count = 0
        self._scratch = np.empty(max(self.n, K.BLOCK), dtype=np.float64)
        self._hist = np.zeros(_HIST_BINS, dtype=np.int64)
        self._below = np.zeros(_HIST_BINS, dtype=np.int64)
        self._mf = np.array([0.0, 0.0, 0.0, 1.0, 0.0, 0.0])  # mean field carried between ticks; stale; carry; recent flashes
        self._sweep = K.idle_sweep()  # Kuramoto's chunks, shared with helper threads
        self._dq_shape = None  # a fresh swarm starts with no delivery in flight
        self._configure()

    def _configure(self) -> None:
        """Pack the loop-invariant settings into the arrays every tick kernel reads."""
        v = self.values
        self.dt = v["clock.tick_ms"] / 1000.0
        fmin, fmax = P.frequency_bounds(v)
        settings = K.Settings(
            model=MODEL_CODES[v["swarm.model"]],
            prc=PRC_CODES[v["swarm.prc"]],
            desync=v["swarm.mode"] == "desync",
            everyone=self.table.shape[0] == 0,
            rewire_ticks=round(v["swarm.rewire_s"] / self.dt) if v["swarm.topology"] == "random" else 0,
            w=1.0 / self.in_degree if v["swarm.normalize"] else 1.0,
            eps=v["swarm.coupling"],
            kappa=v["swarm.interval_coupling"],
            ms_b=v["swarm.ms_b"],
            f0=v["swarm.freq_hz"],
            fmin=fmin,
            fmax=fmax,
            dt=self.dt,
            noise=v["swarm.noise"],
            k_hz=v["swarm.coupling"] / (2 * math.pi),
            l_hz=v["swarm.freq_coupling"] / (2 * math.pi),
            delay_ticks=v["swarm.delay_ms"] / v["clock.tick_ms"] if v["swarm.model"] != "kuramoto" else 0.0,
        )
        self.codes = np.array(settings[: len(K.CODE_FIELDS)], dtype=np.int64)
        self.coef = np.array(settings[len(K.CODE_FIELDS) :], dtype=np.float64)
        self._delayed = bool(self.coef[K.F_DELAY_TICKS] > 0.0)  # picks tick/run or tick_delayed/run_delayed
        self._size_delivery_queue()
        self._receive_coupling = tuple(float(self.coef[i]) for i in (K.F_W, K.F_EPS, K.F_KAPPA, K.F_MS_B, K.F_F0, K.F_FMIN, K.F_FMAX))

    def _size_delivery_queue(self) -> None:
        """(Re)allocate the delayed-delivery slots when their needed size changes (pending ones are lost).

        The ring covers the longest delay plus the tick it starts in.  A slot holds the deliveries
        landing in one tick: at most every firefly flashing ``per_window`` times within the delay
        (a synchronised burst), each flash's deliveries (one per observer, one in all for global)
        spread over the delay's ticks, with a quarter more for the luck of the draws.  A full slot
        drops deliveries and counts them (``dropped_deliveries``).
        """
        delay_ticks = float(self.coef[K.F_DELAY_TICKS])
        if delay_ticks <= 0.0:
            shape = (1, 1)
        else:
            fastest = max(float(self.coef[K.F_FMAX]), float(np.nanmax(self.state.freq, initial=0.0)))
            per_window = max(math.ceil(delay_ticks * self.dt * fastest), 1)
            per_flash = self.table.shape[1] if self.table.shape[0] else 1
            slots = math.ceil(delay_ticks) + 2
            wanted = math.ceil(1.25 * self.n * per_flash * per_window / max(delay_ticks, 1.0)) + 1024
            shape = (slots, min(wanted, _MAX_IN_FLIGHT // slots))
        # Ermentrout's deliveries change frequencies only, whenever in the tick they land: its rows
        # keep no arrival times, a third of the bytes (at N = 10⁵ the ring outgrows the L3 cache).
        timed = self.values["swarm.model"] != "ermentrout"
        if getattr(self, "_dq_shape", None) == (shape, timed):
            return
        self._dq_shape = (shape, timed)
        self._dq_meta = np.zeros(K.DQ_SLOTS + shape[0], dtype=np.int64)
        # Written now (np.zeros would take their pages as deliveries first land: RSS creep).
        self._dq_to = np.full(shape, -1, dtype=np.int32)
        self._dq_t = np.full(shape if timed else (shape[0], 0), 0.0)

    @property
    def dropped_deliveries(self) -> int:
        """Delayed deliveries lost because the pool was full (0 unless far more flash than expected)."""
        return int(self._dq_meta[K.DQ_DROPPED])

    def set(self, key: str, value: Any) -> None:
        """Change one parameter; those that shape the arrays (n, seed, topology...) reset the swarm."""
        value = P.check(key, value)
        trial = dict(self.values, **{key: value})
        P.check_consistency(trial)
        self.check_engine(trial)
        self.values = trial
        if key in _RESHAPING:
            self.reset()
            return
        if key == "swarm.freq_hz":
            scale = value / float(np.nanmean(self.state.natural))
            self.state.natural *= scale
            self.state.freq *= scale
        self._configure()

    # ------------------------------------------------------------------------------- the tick
    def _state_buffers(self) -> tuple:
        """What every tick kernel reads and writes, instant or delayed, in their shared order."""
        st = self.state
        return (self.codes, self.coef, st.phase, st.freq, self.fired, self.table, self.flash_ids, self.flash_times)

    def _buffers(self) -> tuple:
        return (*self._state_buffers(), self._hist, self._below, self._scratch, self._mf, self._rng, self._sweep)

    def _delayed_buffers(self) -> tuple:
        # _scratch, Kuramoto's elsewhere, holds the delayed path's table of a tick's sines (Ermentrout)
        return (*self._state_buffers(), self._mf, self._rng, self._dq_meta, self._dq_to, self._dq_t, self._scratch)

    def step(self) -> int:
        """Advance one tick of ``clock.tick_ms``; return the flash count (see ``flashes()``)."""
        prev, external = self.count, 0
        if self._ext_count:
            self._k.clear_fired(self.fired, self.flash_ids, prev)
            prev, external = 0, self._apply_external()
        if self._delayed:
            n = self._k.tick_delayed(*self._delayed_buffers(), self.ticks, prev, external)
        else:
            n = self._k.tick(*self._buffers(), self.ticks, prev, external)
        self.count = n
        self.ticks += 1
        self.flashes_total += n
        return n

    def run(self, ticks: int, recorder: Recorder | None = None) -> int:
        """Advance ``ticks`` ticks in one kernel call (offline), recording into ``recorder``.

        The delay is settled here, once per call: the instant and the delayed tick loops are
        separate kernels, so delay 0 runs the same machine code as before delays existed.
        """
        rec = recorder or Recorder.null(ticks)
        if ticks > rec.room():
            raise ValueError(f"the recorder has room for {rec.room()} more ticks, not {ticks}")
        if ticks <= 0:
            return self.count
        if self._delayed:
            self.count, flashes = self._k.run_delayed(ticks, self.ticks, self.count, *self._delayed_buffers(), *rec.reserve(ticks))
        else:
            with self._sweep_helpers(ticks):
                self.count, flashes = self._k.run(ticks, self.ticks, self.count, *self._buffers(), *rec.reserve(ticks))
        rec.commit(ticks, flashes)
        self.ticks += ticks
        self.flashes_total += flashes
        return self.count

    @property
    def helped_chunks(self) -> int:
        """Kuramoto sweep chunks that helper threads ran so far (the rest ran on the calling thread)."""
        return int(self._sweep[K.SW_HELPED])

    @contextmanager
    def _sweep_helpers(self, ticks: int) -> Iterator[None]:
        """Helper threads for the Kuramoto sweeps of one run, when there is enough to share."""
        shared = (
            self.engine == "compiled"
            and self.codes[K.C_MODEL] == K.KURAMOTO
            and self.codes[K.C_GLOBAL]
            and self.codes[K.C_PRC] != K.SAWTOOTH
        )
        count = min(self.threads, usable_cpus()) - 1
        if not shared or count < 1 or self.n <= K.CHUNK or ticks * self.n < _HELP_MIN_WORK:
            yield
            return
        st = self.state
        args = (self._sweep, st.phase, st.freq, self.fired, self.flash_ids, self.flash_times, self._scratch)
        self._sweep[K.SW_STOP] = 1
        K.kuramoto_helper(*args)  # returns at once: loads the kernel here, so the helpers start on machine code
        self._sweep[K.SW_STOP] = 0
        helpers = [threading.Thread(target=K.kuramoto_helper, args=args, name="firefly-sweep", daemon=True) for _ in range(count)]
        for helper in helpers:
            helper.start()
        try:
            yield
        finally:
            self._sweep[K.SW_STOP] = 1
            for helper in helpers:
                helper.join()

    @property
    def time_s(self) -> float:
        return self.ticks * self.dt

    def _apply_external(self) -> int:
        """Apply the queued external flashes now; return how many flashes they set off."""
        st, n = self.state, 0
        args = (self.codes[K.C_MODEL], self.codes[K.C_PRC], bool(self.codes[K.C_DESYNC]), st.phase, st.freq, self.fired)
        coupling = self._receive_coupling
        for i in range(self._ext_count):
            t, strength, targets = self._ext_time[i], self._ext_strength[i], self._ext_targets[i]
            self._ext_targets[i] = None
            if self.codes[K.C_MODEL] == K.KURAMOTO:
                amount = strength * self.coef[K.F_K_HZ] / self.coef[K.F_F0]
                everyone = targets is None
                self._k.kuramoto_kick(st.phase, _EMPTY if everyone else targets, everyone, amount, self.codes[K.C_PRC] == K.SAWTOOTH)
            elif targets is None:
                n = self._k.receive_all(*args, strength * self.in_degree, *coupling, t, self.flash_ids, self.flash_times, n)
            else:
                n = self._k.receive_subset(*args, targets, strength * self.in_degree, *coupling, t, self.flash_ids, self.flash_times, n)
        self._ext_count = 0
        self._mf[K.M_STALE] = 1.0
        return n

    # ----------------------------------------------------------------------- outside influence
    def inject(self, time_frac: float = 0.0, strength: float = 1.0, targets: np.ndarray | None = None) -> bool:
        """Queue an external flash for the next step: seen by all, or by ``targets`` (firefly ids).

        Returns False (and counts a drop) when this tick's queue is full.  ``targets`` is kept by
        reference, not copied: pass an int64 array that stays unchanged until the step (the daemon
        passes the member arrays of its voices, so injecting allocates nothing).
        """
        i = self._ext_count
        if i >= MAX_EXTERNAL:
            self.dropped_external += 1
            return False
        if targets is not None and not (isinstance(targets, np.ndarray) and targets.dtype == np.int64):
            targets = np.asarray(targets, dtype=np.int64)
        self._ext_time[i] = min(max(time_frac, 0.0), 1.0)
        self._ext_strength[i] = max(strength, 0.0)
        self._ext_targets[i] = targets
        self._ext_count = i + 1
        return True

    def damage(self, ids: np.ndarray, kind: str = "scramble") -> None:
        """``scramble``: random phases; ``silence``: dark, never flashing; ``revive``: back, random phase."""
        ids = np.asarray(ids, dtype=np.int64)
        st = self.state
        if kind == "silence":
            st.phase[ids] = np.nan
        elif kind in ("scramble", "revive"):
            draws = np.empty(ids.size)
            self._rng[K.R_COUNTER] = self._k.fill_uniform(draws, self._rng[K.R_KEY], self._rng[K.R_COUNTER])
            st.phase[ids] = draws
            if kind == "revive":
                st.freq[ids] = st.natural[ids]
        else:
            raise ValueError(f"damage kind must be scramble, silence or revive, got {kind!r}")
        self._mf[K.M_STALE] = 1.0

    # --------------------------------------------------------------------------------- metrics
    def flashes(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, sub-tick times) of the last step's flashes (views, valid until the next step)."""
        return self.flash_ids[: self.count], self.flash_times[: self.count]

    def mean_field(self) -> tuple[float, float, float, int]:
        """(Re Z, Im Z, Σφ, live) where Z = mean e^{2πiφ} over the live fireflies."""
        c, s, total, live = self._k.mean_field(self.state.phase)
        if not live:
            return 0.0, 0.0, 0.0, 0
        return c / live, s / live, total, live

    def order_parameter(self) -> float:
        zc, zs, _, _ = self.mean_field()
        return math.hypot(zc, zs)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
