"""The daemon: wires the clock, the swarm, the mapping and the ports together.

One thread owns the swarm: the clock's tick thread.  Each tick it applies queued commands, polls the
input port, lets automation move parameters, steps the swarm (numba, GIL released), maps the flashes
to MIDI and sends them.  Everything else (signals, the control plane, telemetry readers) talks to it
through ``submit()``, a queue drained at the tick boundary, and reads counters it publishes.

No stuck notes: every path out of playing (stop, preset switch, an error inside the tick, port loss)
goes through ``_silence()``, which sends every pending note-off and then All Notes Off on every
channel used.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firefly_midi import __version__, presets
from firefly_midi import params as P
from firefly_midi.clock import Clock
from firefly_midi.mapping import ClockIn, InputMap, Mapper
from firefly_midi.ports import PortConfig, Ports
from firefly_midi.swarm import Swarm
from firefly_midi.telemetry import FlashRing, phase_snapshot

if TYPE_CHECKING:
    from firefly_midi.control import ControlServer

log = logging.getLogger("firefly_midi.daemon")

R_EVERY_TICKS = 10  # the order parameter is O(N): refresh it every 10 ticks, not every tick
AUTOMATION_EVERY_S = 0.01
INPUT_REOPEN_EVERY_S = 5.0  # at most this often, a deaf JACK input is opened again (Ports.reopen_input)
GUARD_EVERY_S = 0.01  # how often the JACK input's silence is looked at (Ports.end_stray_sysex)
MIDI_CLOCK, MIDI_START, MIDI_STOP, CONTROL_CHANGE = 0xF8, 0xFA, 0xFC, 0xB0
MAX_ERRORS_IN_A_ROW = 100
SWITCH_INTERVAL_S = 1e-4
CONNECTIONS_EVERY_S = 1.0  # how often the ports' connections are looked at (and kept when changed)
MAX_CATCH_UP = 8  # skipped ticks the swarm steps through at most, per tick
MAX_BEHIND_S = 1.0  # the swarm repays at most this much skipped time; beyond it, ticks are lost
_REVOICING = ("swarm.n", "swarm.seed", "swarm.topology", "swarm.neighbors", "swarm.freq_dist", "swarm.freq_spread_hz")


class Daemon:
    """A playing swarm: ``start()``, then ``submit()`` commands; ``stop()`` silences every note."""

    def __init__(self, values: dict[str, Any], preset: str = "", ports: PortConfig | None = None):
        P.check_consistency(values)
        self.values = dict(values)
        self._wanted = dict(values)  # the values once every queued change has been applied
        self.preset = preset
        self.ports = Ports(ports or PortConfig(use_input=True, clock_in=values["input.clock_in"]))
        self.swarm = Swarm(self.values)
        self.mapper = Mapper(self.values, self.swarm)
        self.inputs = InputMap(self.values, self.mapper)
        self.clock_in = ClockIn()
        self.clock = Clock(self.values["clock.tick_ms"] / 1000.0, self._tick)
        self._commands: deque[Callable[[], None]] = deque()
        self.flash_ring = FlashRing()
        self.state_path: Path | None = None  # where the current state is kept (None: nowhere)
        self._r = 0.0
        self._last_arrival = 0.0
        self._learning: tuple[str, float, float] | None = None
        self._knobs: dict[str, float | int] = {}
        self._state_dirty = False
        self._automation_every = max(1, round(AUTOMATION_EVERY_S / self.swarm.dt))
        self._guard_every = max(1, round(GUARD_EVERY_S / self.swarm.dt))
        self._next_k = 0  # the clock's tick number the swarm expects next
        self.caught_up_ticks = 0  # ticks the clock skipped that the swarm stepped silently
        self.lost_ticks = 0  # ticks the swarm could not catch up (the music fell behind by these)
        self.behind_ticks = 0  # skipped ticks not yet stepped: repaid MAX_CATCH_UP a tick
        self.paused = False
        self.flashes_in = 0
        self.dropped_in = 0
        self.ignored_in = 0
        self.other_in = 0  # clock messages and controllers bound by MIDI learn
        self.errors = 0
        self._errors_in_a_row = 0
        self._status_every = 0.0
        self._next_reopen = 0.0
        self._next_input_reopen = 0.0
        self._next_look = 0.0
        self.connections: list[list[str]] = []  # [our port, other port]: kept in the state, restored on start
        self.stopped = threading.Event()
        self.exit_code = 0

    # ------------------------------------------------------------------------------ life cycle
    def start(self) -> None:
        self._warm_up()
        with _dying_on_signals():
            self.ports.open()
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

    def _warm_up(self) -> None:
        """Load (or compile) every kernel before the first deadline, on a throwaway copy of the swarm."""
        started = time.perf_counter()
        log.info("loading the swarm kernels (the very first start compiles them: a minute or two, once)")
        spare = Swarm({**self.values, "swarm.n": min(self.swarm.n, 64)})
        for _ in range(3):
            spare.inject(0.5, 1.0)
            spare.step()
        spare.run(3)  # the catch-up path after skipped ticks
        mapper = Mapper(spare.values, spare)
        mapper.tick(0, *spare.flashes(), 0.0)
        mapper.panic(1)
        log.info("kernels ready in %.2f s", time.perf_counter() - started)

    def stop(self) -> None:
        """Stop ticking, send every pending note-off and All Notes Off, close the ports."""
        self.clock.stop()
        self._silence()
        self.ports.close()
        self.stopped.set()

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
            self._tell_scheduling(told)
            self._look_after_ports()
            self.clock.lateness.roll(time.monotonic())
            if self._state_dirty:
                self._state_dirty = False
                self.save_state()
            if self._status_every and time.monotonic() >= next_status:
                next_status = max(next_status + self._status_every, time.monotonic())  # no burst after a long reopen
                line = {k: v for k, v in self.status().items() if k != "params"}
                line["lateness_window_us"] = self.clock.lateness.p99_since(mark)
                log.info("status %s", json.dumps(line))

    def _tell_scheduling(self, told: dict[str, bool]) -> None:
        """Say once how the tick thread is scheduled, and when overload made it give real time back."""
        clock = self.clock
        if not told["started"] and clock.ticks:
            told["started"] = True
            if clock.realtime:
                log.info("tick thread: real-time scheduling (SCHED_FIFO, priority 1: under JACK's threads)")
            elif not clock.wants_realtime:
                log.info("tick thread: ordinary scheduling, as JACK runs without real-time priority (start it with -R)")
            else:
                log.info("tick thread: ordinary scheduling (no real-time right; on Debian, join the audio group)")
        if clock.overloaded and not told["overloaded"]:
            told["overloaded"] = True
            log.warning("the tick is busy over 90%% of the time: real-time scheduling given back (a smaller swarm plays on time)")

    def _look_after_ports(self) -> None:
        """Notice a MIDI server that went away; reopen the ports once it is back (every second)."""
        ports = self.ports
        if ports.lost:
            ports.mark_lost()
            self.submit(self._silence)  # forget the pending notes: their synth went with the server
            log.warning("the MIDI server went away; the swarm keeps playing and the ports reopen when it is back")
        if ports.state == "lost" and time.monotonic() >= self._next_reopen:
            self._next_reopen = time.monotonic() + 1.0
            if ports.reopen():  # the synth may hold notes from before the loss: silence it first
                self._greet_ports()
        if ports.state == "none" and time.monotonic() >= self._next_reopen:  # started before the JACK server
            self._next_reopen = time.monotonic() + 1.0
            if ports.open_late():
                self._greet_ports()
        was_stalled = ports.stalled
        if ports.server_stalled() != was_stalled:
            if ports.stalled:
                pace = 100 * (ports.server_pace or 0.0)
                log.warning("the JACK server runs %.0f%% of its cycles (a client of it hangs?): little or no MIDI moves", pace)
            else:
                log.info("the JACK server runs its cycles again")
        if ports.input_is_deaf() and time.monotonic() >= self._next_input_reopen:
            self._next_input_reopen = time.monotonic() + INPUT_REOPEN_EVERY_S
            log.warning("the JACK input hears nothing, not even its guard's 0xF7s (or no input is open): opening again")
            if ports.reopen_input():
                log.info("the JACK input hears again: %s", ", ".join(ports.names()))
        if ports.listener_joined():  # a synth (re)connected: it may hold notes from before a disconnection
            log.info("a port was connected to our output: All Notes Off on the preset's channels")
            self.submit(self._all_notes_off)
        if ports.state == "open" and time.monotonic() >= self._next_look:
            self._next_look = time.monotonic() + CONNECTIONS_EVERY_S
            current = ports.connections()
            if current is not None and current != self.connections:
                self.connections = current
                self._state_dirty = True

    def _greet_ports(self) -> None:
        """Ports just opened: make the connections kept in the state, then silence the synths, on
        the tick thread before its next step (the first one, at start).

        A synth may hold notes from a run that crashed, or from before the server went away.
        """
        self.ports.restore(self.connections)
        self.ports.settle()
        self.submit(self._all_notes_off)

    def log_status_every(self, seconds: float) -> None:
        """Log ``status`` as one JSON line every ``seconds`` while running (for logs and scripts)."""
        self._status_every = seconds

    # -------------------------------------------------------------------------------- commands
    def submit(self, command: Callable[[], None]) -> None:
        """Run ``command`` on the tick thread, between two steps (thread-safe)."""
        self._commands.append(command)

    def set(self, key: str, value: Any) -> Any:
        """Check ``key = value`` now (errors raise here, in the caller), apply it at the next tick."""
        value = P.check(key, value)
        trial = dict(self._wanted, **{key: value})
        P.check_consistency(trial)
        self._wanted = trial
        self.submit(lambda: self._apply(key, value))
        self._remember(self.preset, trial)
        return value

    def load(self, values: dict[str, Any], preset: str = "") -> None:
        """Switch to a whole new parameter set (a preset) at the next tick, silencing the old one."""
        P.check_consistency(values)
        self._wanted = {**values, "clock.tick_ms": self.values["clock.tick_ms"]}
        self.submit(lambda: self._switch(dict(values), preset))

    def panic(self) -> None:
        self.submit(self._silence)

    # The control plane's calls: each checks in the caller's thread, queues the change for the
    # tick boundary and returns at once.
    def get(self, key: str | None = None) -> Any:
        if key is None:
            return jsonable(self.values)
        return jsonable({key: self.values[P.lookup(key).key]})[key]

    def load_preset(self, name: str) -> None:
        values = presets.resolve(name)
        self.load(values, name)
        self._remember(name, values)

    def save_preset(self, name: str) -> Path:
        comment = f"Saved by firefly-midi {__version__} on {datetime.now():%Y-%m-%d %H:%M} from preset {self.preset or '(custom)'}."
        return presets.save(name, self.values, comment)

    def pause(self) -> None:
        def pause_now() -> None:
            self._silence()
            self.paused = True

        self.submit(pause_now)

    def resume(self) -> None:
        self.submit(lambda: setattr(self, "paused", False))

    def reset(self) -> None:
        """Draw the swarm afresh from its parameters (same seed: the same start)."""

        def reset_now() -> None:
            self._silence()
            self.swarm.reset()
            self.mapper.update(self.values)
            self.mapper.tempo.reset()

        self.submit(reset_now)

    def forward(self, seconds: float) -> None:
        """Run the swarm ahead by ``seconds`` of swarm time, silently, as fast as it goes."""
        if not 0 < seconds <= 600:
            raise ValueError(f"forward takes 0 < seconds <= 600, got {seconds}")

        def forward_now() -> None:
            self._silence()
            self.swarm.run(max(1, round(seconds / self.swarm.dt)))
            self.mapper.tempo.reset()

        self.submit(forward_now)

    def learn(self, key: str, lo: Any = None, hi: Any = None) -> dict[str, Any]:
        """Bind the next incoming control change to ``key`` (lo..hi; the key's whole range by default)."""
        key = P.numeric_key(key, "learn")
        param = P.PARAMS[key]
        lo = P.check(key, param.lo if lo is None else lo)
        hi = P.check(key, param.hi if hi is None else hi)
        self._learning = (key, float(lo), float(hi))
        log.info("MIDI learn: move a controller to bind it to %s (%g..%g)", key, lo, hi)
        return {"key": key, "lo": lo, "hi": hi}

    def unlearn(self, key: str) -> int:
        """Forget the controllers bound to ``key``; returns how many."""
        kept = tuple(b for b in self._wanted["learn"] if b.key != key)
        removed = len(self._wanted["learn"]) - len(kept)
        if removed:
            self.set("learn", kept)
        return removed

    def request_stop(self) -> None:
        """Leave ``run_forever``: it silences every note and returns 0."""
        self.stopped.set()

    def telemetry_frame(self, cursor: int, points: int) -> tuple[dict[str, Any], int]:
        """A picture of the swarm now, and the flashes since ``cursor`` (-1: from now on)."""
        flashes, cursor, lost = self.flash_ring.since(cursor)
        swarm, tempo_hz, nominal_hz = self.swarm, self.mapper.tempo.hz, self.values["swarm.freq_hz"]
        clock = self.clock.stats()
        frame = {
            "time_s": swarm.time_s,
            "preset": self.preset,
            "paused": self.paused,
            "n": swarm.n,
            **phase_snapshot(swarm.state.phase, points, self.values["swarm.topology"] == "grid"),
            "flashes": flashes,
            "flashes_lost": lost,
            "order_parameter": self._r,
            "tempo_bpm": 60.0 * tempo_hz,
            "nominal_tempo_bpm": 60.0 * nominal_hz,
            "drift_bpm": 60.0 * (tempo_hz - nominal_hz),
            "notes_out": self.mapper.notes_out,
            "flashes_in": self.flashes_in,
            "dropped_in": self.dropped_in,
            "lateness_us": clock["lateness_us"],
            "lateness_recent_us": clock["lateness_recent_us"],
            "skipped_ticks": clock["skipped_ticks"],
            "ports": self.ports.status(),
        }
        return frame, cursor

    # ----------------------------------------------------------------------------- saved state
    def save_state(self) -> None:
        """Keep what is playing now (changes made through this API are kept as they are made)."""
        self._remember(self.preset, self._wanted)

    def _remember(self, preset: str, values: dict[str, Any]) -> None:
        """Keep the preset and the tweaks made on top of it, so that a restart resumes them."""
        if self.state_path is None:
            return
        try:
            presets.save_state(self.state_path, preset, values, self.connections)
        except OSError as exc:
            log.warning("could not keep the state in %s: %s", self.state_path, exc)

    def _apply(self, key: str, value: Any) -> None:
        if key == "clock.tick_ms":
            log.warning("clock.tick_ms changes take effect on restart")
        self.values[key] = value
        if key.startswith("swarm.") or key == "clock.tick_ms":
            self.swarm.set(key, value)
        if key.startswith(("mapping.", "input.")) or key in _REVOICING:
            # Notes sounding keep their note-offs (they are kept per channel and note, whatever the
            # layout), so nothing is silenced: a knob on velocity or note length must not cut the
            # music, nor stop and restart the DAW's MIDI clock, every time it moves.
            self.mapper.update(self.values)
            self.inputs = InputMap(self.values, self.mapper)

    def _switch(self, values: dict[str, Any], preset: str) -> None:
        self._silence()
        tick_ms = self.values["clock.tick_ms"]
        self.values = {**values, "clock.tick_ms": tick_ms}
        self.preset = preset
        self.swarm = Swarm(self.values)
        self.mapper = Mapper(self.values, self.swarm)
        self.inputs = InputMap(self.values, self.mapper)
        log.info("switched to preset %s", preset or "(custom)")

    # ------------------------------------------------------------------------------------ tick
    def _tick(self, k: int) -> None:
        try:
            self._tick_body(k)
            self._errors_in_a_row = 0
        except Exception:
            self._on_error()

    def _on_error(self) -> None:
        self.errors += 1
        self._errors_in_a_row += 1
        log.error("error inside the tick (notes silenced, still playing):\n%s", traceback.format_exc())
        try:
            self._silence()
        except Exception:
            log.exception("could not silence the notes")
        if self._errors_in_a_row >= MAX_ERRORS_IN_A_ROW:
            self.exit_code = 1
            self.stopped.set()
            raise RuntimeError("the tick failed 100 times in a row; stopping")

    def _tick_body(self, k: int) -> None:
        while self._commands:
            self._commands.popleft()()
        missed, self._next_k = k - self._next_k, k + 1
        if k % self._guard_every == 0:
            self.ports.end_stray_sysex(k * self.clock.tick_s)
        if self.paused:
            self._drain_input()
            return
        if missed > 0 or self.behind_ticks:
            self._catch_up(missed)
        self._read_input()
        if self.values["automation"] and k % self._automation_every == 0:
            self._automate()
        swarm = self.swarm
        step = swarm.ticks
        swarm.step()
        if step % R_EVERY_TICKS == 0:
            self._r = swarm.order_parameter()
        ids, times = swarm.flashes()
        self.flash_ring.push(ids, times, step, swarm.dt)
        self._send(self.mapper.tick(step, ids, times, self._r))

    def _catch_up(self, missed: int) -> None:
        """Step the swarm through ticks the clock skipped, silently, so it keeps the wall clock's time.

        Their flashes still couple the swarm but play no notes (a burst of late notes is worse than
        none).  A stall of many ticks (the machine busy elsewhere) is owed and repaid MAX_CATCH_UP
        steps a tick, so one tick never takes long enough to make the next one late; more than
        MAX_BEHIND_S behind, an overloaded machine would never catch up: the excess is lost, and counted.
        """
        most = round(MAX_BEHIND_S / self.swarm.dt)
        owed = self.behind_ticks + missed
        if owed > most:
            self.lost_ticks += owed - most
            owed = most
        steps = min(owed, MAX_CATCH_UP)
        self.swarm.run(steps)
        self.caught_up_ticks += steps
        self.behind_ticks = owed - steps

    def _send(self, count: int) -> None:
        events, send = self.mapper.events, self.ports.send
        for i in range(count):
            send(events.message(i))

    def _all_notes_off(self) -> None:
        """Forget pending notes and send All Notes Off on every channel the preset may play on."""
        self._silence()
        channels = {*self.values["mapping.channels"], self.values["mapping.cc_channel"]}
        for channel in sorted(channels):
            self.ports.send([0xB0 | (channel - 1), 123, 0])

    def _silence(self) -> None:
        self._send(self.mapper.panic(self.swarm.ticks))

    # ----------------------------------------------------------------------------------- input
    def _read_input(self) -> None:
        ports, limit = self.ports, self.values["input.max_per_tick"]
        handled = 0
        while (item := ports.poll()) is not None:
            if handled >= limit:
                self.dropped_in += 1  # bounded: the rest of this tick's flood is counted, not kept
                continue
            handled += 1
            self._handle(item[0], self._arrival_frac(item[1]))
        if self._knobs:
            self._turn_knobs()

    def _arrival_frac(self, delta_s: float) -> float:
        """Where in the last tick a message arrived, from rtmidi's delta times, as a share of a tick.

        Messages polled now arrived during the tick that just ended.  Playing each into the coming
        step at the same offset keeps their spacing and delays every input by exactly one tick,
        instead of jittering by up to a tick.
        """
        tick = self.clock.tick_s
        now = time.monotonic()
        arrival = self._last_arrival + delta_s
        if not now - tick <= arrival <= now:
            arrival = now  # first message, or a clock mismatch: anchor on the poll time
        self._last_arrival = arrival
        return min(max((arrival - (now - tick)) / tick, 0.0), 1.0)

    def _handle(self, message: list[int], frac: float) -> None:
        status = message[0] if message else -1
        if status in (MIDI_CLOCK, MIDI_START, MIDI_STOP):
            self._handle_clock(status)
            self.other_in += 1
        elif status & 0xF0 == CONTROL_CHANGE and len(message) == 3 and self._control_change(status & 0x0F, message[1], message[2]):
            self.other_in += 1
        elif self.inputs.apply(message, frac, self.swarm):
            self.flashes_in += 1
        else:
            self.ignored_in += 1

    def _control_change(self, channel: int, cc: int, value: int) -> bool:
        """MIDI learn: bind a waiting key to this controller, or move the keys bound to it."""
        if not (0 <= cc <= 127 and 0 <= value <= 127):
            return False
        if self._learning is not None:
            key, lo, hi = self._learning
            self._learning = None
            binding = P.Binding(cc, key, lo, hi, channel + 1)
            others = [b for b in self.values["learn"] if not (b.cc == cc and b.channel in (0, channel + 1))]
            bindings = (*others, binding)
            self._apply("learn", bindings)
            self._wanted = dict(self._wanted, learn=bindings)
            self._state_dirty = True  # written by the main thread: no file I/O in the tick
            log.info("MIDI learn: CC %d on channel %d now moves %s", cc, channel + 1, key)
            return True
        bound = False
        for binding in self.values["learn"]:
            if binding.matches(channel + 1, cc):
                self._knobs[binding.key] = binding.value(value)  # applied once per tick, the latest wins
                bound = True
        return bound

    def _turn_knobs(self) -> None:
        for key, value in self._knobs.items():
            if value != self.values[key]:
                self._apply_if_valid(key, value)
        self._knobs.clear()

    def _handle_clock(self, status: int) -> None:
        if not self.values["input.clock_in"]:
            return
        if status != MIDI_CLOCK:
            self.clock_in.reset()
            return
        self.clock_in.feed(time.monotonic())
        hz = self.clock_in.tempo_hz()
        if hz is not None and abs(hz - self.values["swarm.freq_hz"]) > 1e-3 * hz:
            self._apply_if_valid("swarm.freq_hz", hz)

    def _drain_input(self) -> None:
        while self.ports.poll() is not None:
            self.ignored_in += 1

    # ------------------------------------------------------------------------------ automation
    def _automate(self) -> None:
        t = self.swarm.time_s  # ramps follow the swarm's own time: a reset or a preset starts them over
        for ramp in self.values["automation"]:
            value = ramp.value_at(t)
            if value is None:
                continue
            if P.PARAMS[ramp.key].kind == "int":
                value = round(value)
            if not math.isclose(value, self.values[ramp.key], rel_tol=1e-4):
                self._apply_if_valid(ramp.key, value)

    def _apply_if_valid(self, key: str, value: Any) -> None:
        try:
            value = P.check(key, value)
            P.check_consistency(dict(self.values, **{key: value}))
        except P.ParamError as exc:
            log.warning("ignored %s = %r: %s", key, value, exc)
            return
        self._apply(key, value)

    # ------------------------------------------------------------------------------- telemetry
    def status(self) -> dict[str, Any]:
        """A snapshot for ``ctl status``, logs and tests (read from any thread)."""
        clock = self.clock.stats()
        return {
            "preset": self.preset,
            "params": jsonable(self.values),
            "n": self.swarm.n,
            "model": self.values["swarm.model"],
            "time_s": self.swarm.time_s,
            "order_parameter": self._r,
            "tempo_bpm": 60.0 * self.mapper.tempo.hz,
            "nominal_tempo_bpm": 60.0 * self.values["swarm.freq_hz"],
            "notes_out": self.mapper.notes_out,
            "dropped_notes": self.mapper.dropped_notes,
            "flashes_in": self.flashes_in,
            "ignored_in": self.ignored_in,
            "other_in": self.other_in,
            "dropped_in": self.dropped_in,
            "dropped_external": self.swarm.dropped_external,
            "errors": self.errors,
            "caught_up_ticks": self.caught_up_ticks,
            "lost_ticks": self.lost_ticks,
            "behind_ticks": self.behind_ticks,
            "paused": self.paused,
            **clock,
            "ports": self.ports.status(),
        }


def jsonable(values: dict[str, Any]) -> dict[str, Any]:
    """Parameter values as JSON can carry them."""
    return {key: P.plain(value) for key, value in values.items()}


@contextlib.contextmanager
def _dying_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM kill the process outright while the ports open, then handlers come back.

    Opening JACK ports can block inside libjack for good (a race in jack2 with clients that just
    left: see ports.Ports._hear_jack_input), and a Python handler never runs while the main thread
    is stuck in C: such a daemon ignored SIGTERM.  Nothing has played yet, so there is nothing to
    silence; the default action ends it and the server drops its half-made clients.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in kept:
        signal.signal(sig, signal.SIG_DFL)
    try:
        yield
    finally:
        for sig, handler in kept.items():
            signal.signal(sig, handler)
