"""The mapper's kernels before numba has loaded them: the interpreter runs their Python, or a numpy twin.

The plain engine (swarm/plain.py) plays while a child process compiles the kernels; the mapper's
kernels are small loops over a tick's flashes or events, cheap enough interpreted, except the scans
over every (channel, note) slot, which get numpy twins here.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import numpy as np
from numba.core.registry import CPUDispatcher

from firefly_midi.midi import NOTE_OFF


def interpreted(kernel: Any, _made: dict[Any, Callable] | None = None) -> Callable:
    """``kernel``'s Python function, run by the interpreter, its calls to other kernels interpreted too
    (calling a kernel from Python would compile it)."""
    made = {} if _made is None else _made
    if kernel in made:
        return made[kernel]
    func = kernel.py_func
    scope = dict(func.__globals__)
    made[kernel] = types.FunctionType(func.__code__, scope, func.__name__, func.__defaults__, func.__closure__)
    for name, value in func.__globals__.items():
        if isinstance(value, CPUDispatcher):
            scope[name] = interpreted(value, made)
    return made[kernel]


def collect_due_offs(off_time, end, ev_time, ev_status, ev_d1, ev_d2, ev_size, count):
    """note_kernels.collect_due_offs in numpy: the due offs in slot order, as many as the buffer holds."""
    due = np.flatnonzero(off_time < end)
    sent = due[: max(ev_time.size - count, 0)]
    stop = count + sent.size
    ev_time[count:stop] = off_time[sent]
    ev_status[count:stop] = NOTE_OFF | (sent // 128)
    ev_d1[count:stop] = sent % 128
    ev_d2[count:stop] = 0
    ev_size[count:stop] = 3
    off_time[sent] = np.inf
    return stop, sent.size, due.size - sent.size, float(off_time.min(initial=np.inf))


def oldest_sounding(off_time, on_time):
    """note_kernels.oldest_sounding in numpy: the sounding slot that started first (-1 if none)."""
    sounding = off_time != np.inf
    if not sounding.any():
        return -1
    return int(np.argmin(np.where(sounding, on_time, np.inf)))
