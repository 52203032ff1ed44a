"""Loading compiled kernels beside a playing tick: one overload at a time, each right after a tick.

Loading a kernel from the cache (numba's ``Dispatcher.compile`` on a cache hit: unpickling, LLVM
linking, the entry point) takes 2-15 ms of wall time here, most of it in LLVM calls that release the
GIL, the rest in Python and in short C calls that hold it.  Measured beside the daemon's tick
(ermentrout-800, a 0.5 ms sleeper thread and the clock's skipped ticks, numba's steps timestamped):
- numba's target context set-up (its first ``refresh``: importing and registering its
  implementations, 100-300 ms, GIL held nearly throughout) ran inside the first load and skipped
  most ticks; ``handover._prepare_numba`` now does it before the first tick;
- the daemon's switch interval is 0.1 ms (daemon.py), so a tick waiting for the GIL gets it that
  soon while the loader runs Python, but not while it is inside one long C call;
- unpickling a kernel's cached data (``pickle.loads``, one C call) held the GIL 2-7 ms for the
  larger kernels (the offline loop's data is 1.6 MB); ``interruptible_unpickling`` has numba use
  Python's own unpickler meanwhile, as fast here (2.2 ms against 2.0 for that file) and
  interruptible at every opcode;
- the rest: each overload loads on its own (``load_paced``), started right after a tick ended
  (``pace``), so its GIL-holding parts fall in the tick's idle time rather than across a deadline.

The compiler child names the overloads the playing values need (``needed``, sent as one line):
the loader loads those and nothing else, then ``warm_up`` finds them all in place.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import io
import pickle
import sys
from collections.abc import Callable, Iterator

from numba.core import caching
from numba.core.dispatcher import Dispatcher

PREFIX = "kernels "  # the child's line naming the overloads, before "ready"

Overload = tuple[str, str, tuple]  # module, function name, argument types


def needed() -> list[Overload]:
    """Every overload this process has of firefly_midi's kernels (the child: after ``warm_up``)."""
    found: dict[int, Dispatcher] = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("firefly_midi.") and module is not None:
            for value in list(vars(module).values()):
                if isinstance(value, Dispatcher):
                    found[id(value)] = value
    return [(d.py_func.__module__, d.py_func.__qualname__, tuple(args)) for d in found.values() for args in list(d.overloads)]


def encode(overloads: list[Overload]) -> str:
    """One line for the child's stdout (numba types pickle; the reader is this package's daemon)."""
    return PREFIX + base64.b64encode(pickle.dumps(overloads)).decode()


def decode(line: str) -> list[Overload]:
    return pickle.loads(base64.b64decode(line[len(PREFIX) :]))  # our own child's output


def load_paced(overloads: list[Overload], pace: Callable[[], None]) -> int:
    """Load each overload from the cache, each after ``pace()`` returns (a tick just ended); returns
    how many were loaded here (those already loaded cost nothing)."""
    loaded = 0
    for module, name, args in overloads:
        dispatcher = getattr(importlib.import_module(module), name)
        if args in dispatcher.overloads:
            continue
        pace()
        dispatcher.compile(args)
        loaded += 1
    return loaded


class _InterruptiblePickle:
    """``pickle`` for numba's cache reader, with the Python unpickler (the switch interval applies)."""

    def __getattr__(self, name: str) -> object:
        return getattr(pickle, name)

    @staticmethod
    def loads(data: bytes) -> object:
        return pickle._Unpickler(io.BytesIO(data)).load()  # numba's own cache files, as before

    @staticmethod
    def load(file: io.BufferedReader) -> object:
        return pickle._Unpickler(file).load()


@contextlib.contextmanager
def interruptible_unpickling() -> Iterator[None]:
    """numba's cache files unpickle in Python while loading (its module's ``pickle``, restored after)."""
    kept = caching.pickle
    caching.pickle = _InterruptiblePickle()  # type: ignore[assignment]
    try:
        yield
    finally:
        caching.pickle = kept


def after_a_tick(ticks: Callable[[], int], poll_s: float = 1e-4, most_s: float = 0.05) -> Callable[[], None]:
    """A ``pace`` that returns soon after the next tick ends: it watches the tick counter
    (``ticks()``, the clock's), so the tick thread does nothing for it; ``most_s`` if none comes."""
    import time

    def pace() -> None:
        seen, until = ticks(), time.monotonic() + most_s
        while ticks() == seen and time.monotonic() < until:
            time.sleep(poll_s)

    return pace
