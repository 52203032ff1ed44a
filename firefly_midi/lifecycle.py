"""Start-up and shut-down chores of the daemon that are not the music: loading the kernels before the
first deadline, signals while libjack may block, and saying how the tick thread is scheduled."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from firefly_midi.player import AUDIBLE_CATCH_UP, Player
from firefly_midi.swarm import kernels as K
from firefly_midi.swarm.kernels.cache import cache_dir

log = logging.getLogger("firefly_midi.daemon")


def warm_up(values: dict[str, Any], quiet: bool = False) -> None:
    """Load (or compile) every kernel ``values`` plays with before the first deadline, on a small
    throwaway player: the tick thread must never compile.  Leaves a mark in the kernel cache that
    says they are there (``kernels_cached``)."""
    started = time.perf_counter()
    if not quiet:
        log.info("loading the swarm kernels (compiling them first where they are not in the cache: a minute or two, once)")
    spare = Player({**values, "swarm.n": min(values["swarm.n"], 64)})
    spare.hear([0x90, 60, 100], 0.5)
    for k in range(3):
        spare.tick(k)
    spare.tick(6)  # a short skip: the steps caught up play their notes
    spare.tick(7 + AUDIBLE_CATCH_UP + 1)  # a longer one: they start none
    spare.forward(2)  # the offline loop (``forward``, render)
    spare.all_notes_off()
    with contextlib.suppress(OSError):
        _cached_mark(values).touch()
    if not quiet:
        log.info("kernels ready in %.2f s", time.perf_counter() - started)


def _delayed(values: dict[str, Any]) -> bool:
    return values["swarm.delay_ms"] > 0.0 and values["swarm.model"] != "kuramoto"


def _cached_mark(values: dict[str, Any]) -> Path:
    shape = f"{values['swarm.model']}-{values['swarm.topology']}-{'delayed' if _delayed(values) else 'instant'}"
    return cache_dir() / f"warm-{shape}"


def kernels_loaded(values: dict[str, Any]) -> bool:
    """Whether this process has loaded the swarm kernels ``values`` step with (one tick and the offline loop)."""
    step, run = (K.tick_delayed, K.run_delayed) if _delayed(values) else (K.tick, K.run)
    return bool(step.signatures and run.signatures)


def kernels_cached(values: dict[str, Any]) -> bool:
    """Whether the kernels ``values`` play with are loaded in this process already, or ``warm_up``
    of values like these completed before with this cache: they load in a fraction of a second."""
    return kernels_loaded(values) or _cached_mark(values).exists()


@contextlib.contextmanager
def dying_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM kill the process outright while the ports open, then handlers come back.

    Opening JACK ports can block inside libjack for good (a race in jack2 with clients that just
    left: docs/reliability.md), and a Python handler never runs while the main thread is stuck in C.
    Nothing has played yet, so there is nothing to silence; the default action ends it and the
    server drops its half-made clients.
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


def tell_scheduling(clock: Any, told: dict[str, bool]) -> None:
    """Say once how the tick thread is scheduled, and when overload made it give real time back."""
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
