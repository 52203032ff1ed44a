"""Lock-free single-producer single-consumer rings of (frame, packed message) records.

A ring is a region of the state array (layout.py) plus two indices that only grow: the writer owns
one, the reader the other, and ``write - read`` is the fill.  The writer stores the record, then a
release fence, then its index; the reader loads the other's index, then an acquire fence, then the
record; each side's index store comes after a release fence, so the other never sees a slot reused
before it was read.  No locks and no allocation, so the callback may use them.

The functions are jitted with ``inline="always"``: inside the compiled callback they leave no call
behind (rtcheck.py allows only libjack and LLVM intrinsics there).  The ``*_batch`` ones are the
Python side's entry points, one dispatch per batch.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from firefly_midi.jack import layout
from firefly_midi.jack.binding import fence_acquire, fence_release

_JIT = {"cache": True, "error_model": "numpy", "nogil": True}


@njit(inline="always", **_JIT)
def put(st, write_slot, read_slot, base, capacity, frame, message):
    """Append one record; False (and nothing written) when the ring is full."""
    write = st[write_slot]
    read = st[read_slot]
    fence_acquire()
    if write - read >= capacity:
        return False
    slot = base + 2 * (write & (capacity - 1))
    st[slot] = frame
    st[slot + 1] = message
    fence_release()
    st[write_slot] = write + 1
    return True


@njit(inline="always", **_JIT)
def fill(st, write_slot, read_slot):
    """How many records wait to be read (an acquire: the records counted are visible)."""
    write = st[write_slot]
    fence_acquire()
    return write - st[read_slot]


@njit(inline="always", **_JIT)
def peek(st, read_slot, base, capacity, ahead):
    """The record ``ahead`` places after the read index, as (frame, message); check ``fill`` first."""
    slot = base + 2 * ((st[read_slot] + ahead) & (capacity - 1))
    return st[slot], st[slot + 1]


@njit(inline="always", **_JIT)
def advance(st, read_slot, count):
    """Release ``count`` records to the writer, once they have been read."""
    fence_release()
    st[read_slot] = st[read_slot] + count


@njit(**_JIT)
def put_batch(st, frames, messages):
    """Queue records on the TX ring (Python side); returns how many fitted, in order."""
    done = 0
    for index in range(frames.shape[0]):
        if not put(st, layout.TX_WRITE, layout.TX_READ, layout.TX_BASE, layout.TX_CAPACITY, frames[index], messages[index]):
            break
        done += 1
    return done


@njit(**_JIT)
def send_one(st, frame, message):
    """Queue one record on the TX ring (Python side); False when it is full."""
    return put(st, layout.TX_WRITE, layout.TX_READ, layout.TX_BASE, layout.TX_CAPACITY, frame, message)


@njit(**_JIT)
def take_batch(st, out):
    """Move up to ``len(out)`` records off the RX ring into ``out[:, 0]`` (frame), ``out[:, 1]`` (message)."""
    count = min(fill(st, layout.RX_WRITE, layout.RX_READ), out.shape[0])
    for index in range(count):
        out[index, 0], out[index, 1] = peek(st, layout.RX_READ, layout.RX_BASE, layout.RX_CAPACITY, index)
    advance(st, layout.RX_READ, count)
    return count


def new_state() -> np.ndarray:
    """A zeroed state array whose every page has been written (so none faults in the callback)."""
    state = np.empty(layout.LENGTH, dtype=np.int64)
    state.fill(0)
    return state
