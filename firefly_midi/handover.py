"""Playing at once on a fresh install: the kernels compile in a child process while the numpy engine plays.

numba takes a minute or more to compile the kernels the first time (then they load from the keyed
cache in a fraction of a second: swarm/kernels/cache.py).  A compile in a thread of the daemon would
hold the GIL and stall the tick, so a child process compiles them into the cache
(``python -m firefly_midi.handover``, niced) and says "ready"; a loader thread of the daemon then loads
them (off the tick thread) and asks the tick to hand over at a tick boundary (``Handover``,
``Player.use_engine``): the same buffers go on, so phases, frequencies, pending deliveries and
the generator continue.  The child then goes on compiling the other shipped presets' kernels, so that
a later preset switch finds them; it is stopped with the daemon.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from firefly_midi import kernel_load, presets
from firefly_midi import params as P
from firefly_midi.lifecycle import kernels_cached, kernels_loaded, warm_up
from firefly_midi.swarm import plain

log = logging.getLogger("firefly_midi.daemon")

READY = "ready"
LEFT = {  # what is left to do, by state, for ``status``
    "compiling": "compile this preset's kernels (a minute or two, once), load them, hand over",
    "loading": "load the compiled kernels here, then hand over at a tick boundary",
    "ready": "",
    "failed": "nothing: the numpy engine plays on (see the log)",
}


class Handover:
    """The daemon's engines: which one plays first, the compiler, and the handover at a tick boundary.

    ``daemon`` gives ``player``, ``values`` and ``submit`` (runs a command on the tick thread).
    """

    def __init__(self, daemon: Any, values: dict[str, Any], engine: str | None = None):
        """``engine``: "numpy" (while a child compiles), "compiled" (loaded or compiled before the
        first tick), or None: numpy when the kernels are not in the cache and numpy covers ``values``."""
        self.daemon = daemon
        self.values = values
        on_numpy = engine == "numpy" or (engine is None and not kernels_cached(values))
        on_numpy = on_numpy and not plain.uncovered(values)
        self.first = "numpy" if on_numpy else "compiled"
        pace = kernel_load.after_a_tick(lambda: daemon.clock.ticks)  # each kernel loads right after a tick
        self.compiler = KernelCompiler(values, self._loaded, pace) if on_numpy else None

    def start(self) -> None:
        """Before the first tick: load (or compile) the kernels, or start compiling them aside."""
        if self.compiler is None:
            warm_up(self.values)
        else:
            _prepare_numba()
            self.compiler.start()

    def stop(self) -> None:
        """Stop the compiler's child, if one runs (the daemon plays on whatever engine it has)."""
        if self.compiler is not None:
            self.compiler.stop()

    def status(self) -> dict[str, Any]:
        """``engine`` ("numpy" while the kernels compile, then "compiled") and ``kernels``: how that goes."""
        kernels = self.compiler.status() if self.compiler is not None else {"state": "ready", "seconds": 0.0, "left": ""}
        return {"engine": self.daemon.player.engine, "kernels": kernels}

    def check(self, key: str, value: Any) -> None:
        """Refuse (ParamError) a change the numpy engine cannot play while it plays."""
        if self.daemon.player.engine == "numpy" and (why := plain.uncovered({**self.daemon.values, key: P.check(key, value)})):
            raise P.ParamError(f"{why} plays once the kernels have compiled; try again in a minute", key=key)

    def engine_for(self, values: dict[str, Any]) -> str:
        """The engine to build parts for ``values`` on: numpy while it plays them and the kernels
        compile; else the compiled kernels, waited for and loaded here (not on the tick), compiled
        first in a child if the cache lacks them (a compile here would hold the GIL from the tick)."""
        if self.daemon.player.engine == "numpy" and self.compiler is not None:
            if not plain.uncovered(values) and not self.compiler.loaded.is_set():
                return "numpy"
            log.info("%s: waiting for the kernels to compile", plain.uncovered(values) or "handing over")
            self.compiler.finished.wait()
        if not kernels_cached(values):
            log.info("compiling the kernels of the new values in a child process first")
            compile_aside(values)
        warm_up(values, quiet=True)
        return "compiled"

    def _loaded(self) -> None:
        """The compiled kernels are loaded in this process: hand over at the next tick boundary, unless
        a preset switched since to values whose kernels are not loaded: load those first (off the
        tick), then try again."""
        self.daemon.submit(self._hand_over)

    def _hand_over(self) -> None:
        values = self.daemon.values
        if not kernels_loaded(values):
            threading.Thread(target=self._load_then_hand_over, args=(dict(values),), daemon=True).start()
            return
        self.daemon.player.use_engine("compiled")
        began = self.compiler.began if self.compiler is not None else time.monotonic()
        log.info("the compiled kernels took over after %.1f s of playing on numpy", time.monotonic() - began)

    def _load_then_hand_over(self, values: dict[str, Any]) -> None:
        if not kernels_cached(values):
            compile_aside(values)
        warm_up(values, quiet=True)
        self._loaded()


class KernelCompiler:
    """The child that compiles, and the thread that loads its work and calls ``on_loaded`` (once)."""

    def __init__(self, values: dict[str, Any], on_loaded: Callable[[], None], pace: Callable[[], None] = lambda: None):
        self.values = values
        self.on_loaded = on_loaded
        self.pace = pace  # returns when a kernel may load (right after a tick ends)
        self.state = "idle"  # compiling, loading, ready, failed
        self.began = 0.0
        self.took = 0.0
        self.loaded = threading.Event()  # the compiled kernels are loaded in this process
        self.finished = threading.Event()  # loaded, or failed, or stopped: nothing more will come
        self._child: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the child and the loader thread; returns at once."""
        self.began, self.state = time.monotonic(), "compiling"
        self._child = spawn_compiler(self.values)
        self._thread = threading.Thread(target=self._wait_and_load, name="firefly-kernels", daemon=True)
        self._thread.start()
        log.info("playing on the numpy engine while the kernels compile in process %d (a fresh install: about a minute)", self._child.pid)

    def _wait_and_load(self) -> None:
        try:
            self._load_when_ready()
        finally:
            self.finished.set()

    def _load_when_ready(self) -> None:
        child = self._child
        assert child is not None and child.stdout is not None
        overloads = _read_until_ready(child.stdout)
        if overloads is None:
            if self.state == "compiling":  # not stopped by us
                self.state = "failed"
                log.warning("the kernel compiler ended (code %s): playing on the numpy engine", child.poll())
            return
        self.state = "loading"
        with _paused(child):  # the child, compiling other presets now, leaves the CPUs to the tick meanwhile
            try:
                # unpickling in Python: the tick waiting for the GIL gets it within the switch interval
                with kernel_load.interruptible_unpickling():
                    kernel_load.load_paced(overloads, self.pace)
                    warm_up(self.values, quiet=True)  # finds them loaded: Python only
            except Exception:
                self.state = "failed"
                log.exception("could not load the compiled kernels: playing on the numpy engine")
                return
            self.took, self.state = time.monotonic() - self.began, "ready"
            self.loaded.set()
            self.on_loaded()
            self.pace()  # the tick hands over at its next boundary: the child waits till then
            self.pace()

    def stop(self) -> None:
        """Stop the child (it may be compiling other presets' kernels) and wait for it."""
        if self.state == "compiling":
            self.state = "stopped"
        if self._child is not None:
            _end(self._child)

    @property
    def child_pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def status(self) -> dict[str, Any]:
        """What ``status`` shows while the kernels compile: the state, the seconds it has taken, what is left."""
        running = self.state in ("compiling", "loading")
        return {
            "state": self.state,
            "seconds": (time.monotonic() - self.began) if running else self.took,
            "left": LEFT.get(self.state, ""),
        }


def _prepare_numba() -> None:
    """Set numba's CPU target up now, before the first tick (100-300 ms here), not in the loader
    thread, where its lazy imports and registrations (the target context's first ``refresh``, which
    the first cache load runs) held the GIL from the tick nearly throughout: most of the ticks
    skipped at the handover (kernel_load.py says what was measured)."""
    from numba.core.registry import cpu_target

    cpu_target.target_context.refresh()
    cpu_target.typing_context.refresh()


def spawn_compiler(values: dict[str, Any]) -> subprocess.Popen[str]:
    """A child compiling ``values``' kernels (then the other shipped presets'); it prints READY between."""
    # The child must compile these very sources (the cache is keyed on them): put them first.
    here = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    child = subprocess.Popen(
        [sys.executable, "-m", "firefly_midi.handover"],
        env={**os.environ, "PYTHONPATH": path},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # Ctrl-C in a terminal reaches the daemon, which stops the child
    )
    assert child.stdin is not None
    child.stdin.write(presets.dumps(values))
    child.stdin.close()
    return child


def compile_aside(values: dict[str, Any]) -> bool:
    """Compile ``values``' kernels into the cache in a child and wait for it (a thread of this process
    would hold the GIL from the tick for a minute); then they load here in a moment.  True if it did."""
    child = spawn_compiler(values)
    try:
        assert child.stdout is not None
        return _read_until_ready(child.stdout) is not None
    finally:
        _end(child)


def _end(child: subprocess.Popen[str]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@contextlib.contextmanager
def _paused(child: subprocess.Popen[str]) -> Iterator[None]:
    """SIGSTOP the child while the daemon loads and hands over (a fraction of a second), SIGCONT after:
    on a 2-core machine its compile took a core from the tick when that ran on ordinary scheduling."""
    stop, cont = getattr(signal, "SIGSTOP", None), getattr(signal, "SIGCONT", None)
    paused = stop is not None and child.poll() is None
    if paused:
        with contextlib.suppress(OSError):
            os.kill(child.pid, stop)
    try:
        yield
    finally:
        if paused:
            with contextlib.suppress(OSError):
                os.kill(child.pid, cont)


def _read_until_ready(stream: IO[str]) -> list[kernel_load.Overload] | None:
    """The overloads the child named, once it said "ready"; None if it ended without saying so."""
    overloads: list[kernel_load.Overload] = []
    for line in stream:
        if line.startswith(kernel_load.PREFIX):
            overloads = kernel_load.decode(line.strip())
        elif line.strip() == READY:
            return overloads
    return None


# ----------------------------------------------------------------------------------------- the child
def _die_with_parent() -> None:
    """Linux: SIGTERM when the daemon dies without stopping us (a kill -9), so no orphan compiles on."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def main() -> int:
    """Compile (or load) every kernel the values on stdin play with, say "ready", then those of the
    other shipped presets (a later switch finds them), quietly."""
    _die_with_parent()
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)  # the daemon's tick comes first
    values = {**P.defaults(), **presets.parse(sys.stdin.read(), "<daemon>")}
    warm_up(values, quiet=True)
    print(kernel_load.encode(kernel_load.needed()), flush=True)  # what the daemon loads, one by one
    print(READY, flush=True)
    for name in sorted(presets.available()):
        with contextlib.suppress(Exception):
            warm_up({**presets.resolve(name), "clock.tick_ms": values["clock.tick_ms"]}, quiet=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
