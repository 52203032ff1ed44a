"""The daemon: wires the clock, the player and the ports, and owns what each thread may touch.

Threads and what they own:
- the tick thread (``Clock``) owns the ``Player`` (swarm, mapping, input, automation) and the flash
  ring it writes; each tick it runs the queued commands, then ``Player.tick`` and sends the events;
- control threads (the socket, OSC) check a request in their own thread, change the ``SavedState``
  and queue the change for the tick (``submit``); anything that allocates (a preset's swarm and
  mapper, a redrawn swarm) is built there and swapped in at a tick boundary;
- the main thread (``run_forever``) looks after the ports (``PortUpkeep``), writes what MIDI learn
  made into the saved state, and logs.

No stuck notes: every path out of playing (stop, preset switch, an error inside the tick, port loss)
sends the player's ``silence``: every pending note-off, then All Notes Off on every channel used.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firefly_midi import __version__, automation, presets, telemetry
from firefly_midi import params as P
from firefly_midi.clock import Clock
from firefly_midi.control.protocol import MAX_FORWARD_S
from firefly_midi.handover import Handover
from firefly_midi.lifecycle import dying_on_signals, tell_scheduling
from firefly_midi.player import Player, build_parts
from firefly_midi.ports import PortConfig, Ports
from firefly_midi.replay import Recorder
from firefly_midi.saved_state import SavedState
from firefly_midi.swarm import Swarm
from firefly_midi.tick_loop import TickLoop
from firefly_midi.upkeep import PortUpkeep

if TYPE_CHECKING:
    from firefly_midi.control import ControlServer

log = logging.getLogger("firefly_midi.daemon")

SWITCH_INTERVAL_S = 1e-4


class Daemon:
    """A playing swarm: ``start()``, then call the control methods; ``stop()`` silences every note."""

    def __init__(self, values: dict[str, Any], preset: str = "", ports: PortConfig | None = None, engine: str | None = None):
        """``engine``: what plays first: "numpy" while a child compiles the kernels (handover.py), or
        "compiled", loaded (or compiled) before the first tick; by default numpy when the kernels are
        not in the cache yet and the numpy engine covers ``values``."""
        self.saved = SavedState(values, preset)
        self.engines = Handover(self, values, engine)
        self.player = Player(values, engine=self.engines.first)
        ports_used = Ports(ports or PortConfig(use_input=True, clock_in=values["input.clock_in"]))
        self.clock = Clock(self.values["clock.tick_ms"] / 1000.0, lambda k: None, transport=ports_used.transport)
        self.ticks = TickLoop(self.player, ports_used, self.clock)
        self.clock.on_tick = self.ticks.tick
        self.upkeep = PortUpkeep(ports_used, self.saved, self.submit, self._greet_ports)
        self.upkeep.on_tick(self.ticks.silence, self.ticks.all_notes_off)
        self._status_every = 0.0
        self.stopped = threading.Event()
        self.exit_code = 0

    @property
    def ports(self) -> Any:
        return self.ticks.ports

    @ports.setter
    def ports(self, ports: Any) -> None:
        """Use other ports (before ``start``): a recording device in tests, say."""
        self.ticks.input.ports = self.upkeep.ports = ports

    @property
    def errors(self) -> int:
        return self.ticks.errors

    @property
    def recorder(self) -> Recorder | None:
        return self.ticks.recorder

    # What the tick thread plays (read-only from other threads).
    @property
    def values(self) -> dict[str, Any]:
        return self.player.values

    @property
    def swarm(self) -> Swarm:
        return self.player.swarm

    @property
    def mapper(self) -> Any:
        return self.player.mapper

    @property
    def paused(self) -> bool:
        return self.player.paused

    @property
    def preset(self) -> str:
        return self.saved.preset

    @property
    def state_path(self) -> Path | None:
        return self.saved.path

    @state_path.setter
    def state_path(self, path: Path | None) -> None:
        self.saved.path = path

    @property
    def connections(self) -> list[list[str]]:
        return self.saved.connections

    @connections.setter
    def connections(self, pairs: list[list[str]]) -> None:
        self.saved.connections = pairs

    # ------------------------------------------------------------------------------ life cycle
    def start(self) -> None:
        self.engines.start()
        with dying_on_signals():
            self.ports.open()
            if getattr(getattr(self.ports, "config", None), "backend", "") == "jack-native":
                self.ticks.reflex.warm_up()  # never compiled on the tick; the reflex stays off without it
        self._greet_ports()  # a synth left hanging by an earlier run that crashed is silenced first (first tick)
        if self.ports.server_realtime() is False:
            # A real-time tick would run ahead of JACK's own threads and hold up its cycles.
            self.clock.wants_realtime = False
        gc.collect()
        gc.freeze()  # start-up objects out of the collector's way: the tick makes no new containers
        # Another thread holding the GIL (the control server encoding a frame) keeps it for up to the
        # switch interval before the tick can take it back: 5 ms by default, 0.1 ms here.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.clock.start()
        log.info(
            "playing preset %s: %d fireflies, %s model, tick %.3g ms",
            self.preset or "(custom)",
            self.swarm.n,
            self.values["swarm.model"],
            self.values["clock.tick_ms"],
        )

    def stop(self) -> None:
        """Stop ticking, send every pending note-off and All Notes Off, close the ports."""
        self.engines.stop()
        self.clock.stop()
        self.ticks.silence()
        self.ports.close()
        if self.recorder is not None:
            self.recorder.close()
        self.stopped.set()

    def record(self, path: Path) -> None:
        """Keep the session in ``path`` (before ``start``): ``render --replay`` plays it again exactly."""
        self.ticks.recorder = Recorder(path, self.preset, self.values, self.ticks.input)

    def run_forever(self, control: ControlServer | None = None) -> int:
        """Run until SIGINT/SIGTERM (or a ``stop`` command); silence everything; return the exit code."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopped.set())
        try:
            self.start()
            if control is not None:
                control.start()
            self._watch_until_stopped()
            self.stop()
        finally:
            self.engines.stop()
            if control is not None:
                control.close()  # after stop(): the notes are silenced first
        log.info("stopped; %d notes played, every one of them ended", self.mapper.notes_out)
        return self.exit_code

    def _watch_until_stopped(self) -> None:
        next_status = time.monotonic() + self._status_every
        mark = self.clock.lateness.hist.copy()  # lateness since the last status line
        told = {"started": False, "overloaded": False}
        while not self.stopped.wait(0.05):
            if not self.clock.running:  # the tick thread died: silence and leave
                log.error("the tick thread stopped: %s", self.clock.error)
                self.exit_code = 1
                return
            tell_scheduling(self.clock, told)
            self.upkeep.look()
            self.keep_learned()
            if self.recorder is not None:
                self.recorder.drain()
            self.clock.lateness.roll(time.monotonic())
            if self._status_every and time.monotonic() >= next_status:
                next_status = max(next_status + self._status_every, time.monotonic())  # no burst after a long reopen
                telemetry.log_status(self.status(), self.clock.lateness.p99_since(mark))

    def keep_learned(self) -> None:
        """Write what MIDI learn bound on the tick into the saved state (file I/O stays off the tick)."""
        learned = self.player.learned
        while learned:
            self.saved.learned(learned.popleft())
        values = self.player.learned_values
        while values:
            self.saved.change(*values.popleft())

    def _greet_ports(self) -> None:
        """Ports just opened: make the kept connections, then silence the synths on the tick, before
        its next step (the first one, at start): a synth may hold notes from a run that crashed."""
        self.ports.restore(self.saved.connections)
        self.ports.settle()
        self.submit(self.ticks.all_notes_off)
        self._tell_latency(self.values["clock.lookahead_ms"])

    def _tell_latency(self, lookahead_ms: float) -> None:
        """The follower plays the band's beats early by the daemon's own latency, besides
        ``follow.lead_ms``: a hit reaches the swarm a tick late, and a note leaves ``lookahead_ms``
        after its time where the backend schedules (else up to a JACK period).  Recorded for replay."""
        ports_latency = getattr(self.ports, "output_latency_s", None)
        seconds = self.clock.tick_s + (ports_latency(lookahead_ms / 1000.0) if ports_latency is not None else 0.0)
        self.submit(lambda: (self.player.set_output_latency(seconds), self.ticks.did("latency", seconds)))

    def log_status_every(self, seconds: float) -> None:
        """Log ``status`` as one JSON line every ``seconds`` while running (for logs and scripts)."""
        self._status_every = seconds

    # -------------------------------------------------------------------------------- commands
    # Each checks in the caller's thread, builds what allocates there, queues the change for the
    # tick boundary and returns at once.
    def submit(self, command: Callable[[], None]) -> None:
        """Run ``command`` on the tick thread, between two steps (thread-safe)."""
        self.ticks.submit(command)

    def set(self, key: str, value: Any) -> Any:
        """Check ``key = value`` now (errors raise here, in the caller), apply it at the next tick."""
        key = P.lookup(key).key
        self.engines.check(key, value)
        values = self.saved.change(key, value)
        value = values[key]
        if key == "clock.tick_ms":
            log.warning("clock.tick_ms changes take effect on restart")
        elif P.PARAMS[key].effect == "reshape":
            swarm = self.player.reshaped(key, value)  # drawn here, not on the tick
            self.submit(lambda: (self.player.adopt(key, value, swarm), self.ticks.did("set", key, P.plain(value))))
        else:
            self.submit(lambda: (self.player.apply(key, value), self.ticks.did("set", key, P.plain(value))))
        if key == "clock.lookahead_ms":
            self._tell_latency(value)  # the follower's lead goes with it
        return value

    def load(self, values: dict[str, Any], preset: str = "") -> None:
        """Switch to a whole new parameter set (a preset) at the next tick, silencing the old one."""
        values = {**values, "clock.tick_ms": self.values["clock.tick_ms"]}
        self.saved.replace(values, preset)
        parts = build_parts(values, engine=self.engines.engine_for(values))  # all before the tick sees them
        kept = P.jsonable(parts.values) if self.recorder is not None else None

        def switch() -> None:
            self.ticks.silence()
            self.player.swap(parts)
            self.ticks.did("load", kept)
            log.info("switched to preset %s", preset or "(custom)")

        self.submit(switch)

    def load_preset(self, name: str) -> None:
        self.load(presets.resolve(name), name)

    def save_preset(self, name: str) -> Path:
        comment = f"Saved by firefly-midi {__version__} on {datetime.now():%Y-%m-%d %H:%M} from preset {self.preset or '(custom)'}."
        return presets.save(name, self.values, comment)

    def save_state(self) -> None:
        """Keep what is playing now (changes made through this API are kept as they are made)."""
        self.keep_learned()
        self.saved.save()

    def get(self, key: str | None = None) -> Any:
        if key is None:
            return P.jsonable(self.values)
        return P.plain(self.values[P.lookup(key).key])

    def panic(self) -> None:
        self.submit(self.ticks.silence)

    def pause(self) -> None:
        def pause_now() -> None:
            self.ticks.silence()
            self.player.paused = True
            self.ticks.did("pause")

        self.submit(pause_now)

    def resume(self) -> None:
        self.submit(lambda: (setattr(self.player, "paused", False), self.ticks.did("resume")))

    def reset(self) -> None:
        """Draw the swarm afresh from its parameters (same seed: the same start)."""
        swarm = Swarm(self.values, threads=self.swarm.threads, engine=self.player.engine)

        def reset_now() -> None:
            self.ticks.silence()
            self.player.adopt("swarm.seed", swarm.values["swarm.seed"], swarm)
            self.mapper.tempo.reset()
            self.ticks.did("reseed", swarm.values["swarm.seed"])

        self.submit(reset_now)

    def forward(self, seconds: float) -> None:
        """Run the swarm ahead by ``seconds`` of swarm time, silently, as fast as it goes."""
        if not 0 < seconds <= MAX_FORWARD_S:
            raise ValueError(f"forward takes 0 < seconds <= {MAX_FORWARD_S:g}, got {seconds}")

        def forward_now() -> None:
            self.ticks.silence()
            self.player.forward(max(1, round(seconds / self.swarm.dt)))
            self.ticks.did("forward", max(1, round(seconds / self.swarm.dt)))

        self.submit(forward_now)

    def learn(self, key: str, lo: Any = None, hi: Any = None) -> dict[str, Any]:
        """Bind the next incoming control change to ``key`` (lo..hi; the key's whole range by default)."""
        key = automation.numeric_key(key, "learn")
        param = P.PARAMS[key]
        lo = P.check(key, param.lo if lo is None else lo)
        hi = P.check(key, param.hi if hi is None else hi)
        self.submit(lambda: (self.player.arm_learn(key, float(lo), float(hi)), self.ticks.did("learn", key, float(lo), float(hi))))
        log.info("MIDI learn: move a controller to bind it to %s (%g..%g)", key, lo, hi)
        return {"key": key, "lo": lo, "hi": hi}

    def learn_beats(self, count: int, seconds: float) -> dict[str, Any]:
        """The next ``count`` distinct notes on the input (or those within ``seconds`` of the first) become follow.notes."""
        self.submit(lambda: (self.player.arm_note_learn(count, seconds), self.ticks.did("learnbeats", count, seconds)))
        log.info("learning the notes that are beats: play %d different drums", count)
        return {"count": count, "seconds": seconds}

    def unlearn(self, key: str) -> int:
        """Forget the controllers bound to ``key``; returns how many."""
        self.keep_learned()
        bindings = self.saved.values["learn"]
        kept = tuple(b for b in bindings if b.key != key)
        if len(kept) != len(bindings):
            self.set("learn", kept)
        return len(bindings) - len(kept)

    def request_stop(self) -> None:
        """Leave ``run_forever``: it silences every note and returns 0."""
        self.stopped.set()

    def status(self) -> dict[str, Any]:
        """A snapshot for ``ctl status``, logs and tests (read from any thread)."""
        return telemetry.status(self)

    def telemetry_frame(self, cursor: int, points: int) -> tuple[dict[str, Any], int]:
        """A picture of the swarm now, and the flashes since ``cursor`` (-1: from now on)."""
        return telemetry.frame(self, cursor, points)
