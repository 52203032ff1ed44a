"""The JACK callbacks, compiled with numba's ``cfunc``: no Python, no GIL, no allocation, no locks.

Each cycle the process callback
1. extends the cycle's 32-bit start frame to 64 bits (clock.extend_frame);
2. reads every input event with its frame through the sysex-safe parser (parse.py) onto the RX ring;
   a note-on that claims the armed reflex table (reflex.py) puts its notes in the pending table;
3. moves what the TX ring holds into its pending table, kept sorted by frame (stable: equal frames
   leave in the order they were queued), because ``jack_midi_event_reserve`` refuses an event
   earlier than the last one written;
4. writes every pending event due before the cycle's end at its own frame; one whose frame has
   passed goes at offset 0 and is counted late (an ``ASAP`` event goes there without counting);
5. publishes the cycle's start frame, length and ``jack_get_time()`` at entry (clock.py maps
   frames to time.monotonic() from these), and its own run time.

numba's cfunc wrapper takes the GIL on its error path, so nothing here may raise: no bounds checks,
``error_model="numpy"``, integer arithmetic only, and rtcheck.py proves it on the compiled code.
The compiled callbacks are built on first use (``callbacks()``) and cached on disk by numba; they
live as long as the process, so JACK can never call freed code.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from numba import carray, cfunc, njit, types

from firefly_midi.jack import binding, clock, layout, parse, reflex, rings

_JIT = {"cache": True, "error_model": "numpy", "nogil": True}
PROCESS_SIGNATURE = types.int32(types.uint32, types.voidptr)
XRUN_SIGNATURE = types.int32(types.voidptr)
SHUTDOWN_SIGNATURE = types.void(types.voidptr)


@njit(inline="always", **_JIT)
def read_input(st, buffer, start):
    """Every input event, parsed; each complete message onto the RX ring with its absolute frame."""
    event = st[layout.BASE] + 8 * layout.EVENT
    for index in range(binding.midi_get_event_count(buffer)):
        if binding.midi_event_get(event, buffer, index) != 0:
            continue
        frame = start + (st[layout.EVENT] & 0xFFFFFFFF)
        size = st[layout.EVENT + 1]
        data = carray(binding.byte_pointer(st[layout.EVENT + 2]), (size,), np.uint8)
        for position in range(size):
            message = parse.feed(st, np.int64(data[position]))
            if message == parse.NOTHING:
                continue
            rx_before = st[layout.RX_WRITE]
            if rings.put(st, layout.RX_WRITE, layout.RX_READ, layout.RX_BASE, layout.RX_CAPACITY, frame, message):
                st[layout.RECEIVED] += 1
                play_reflex(st, message, frame, rx_before)
            else:
                st[layout.RX_OVERFLOW] += 1
    st[layout.LOST_IN] += binding.midi_get_lost_event_count(buffer)


@njit(inline="always", **_JIT)
def play_reflex(st, message, frame, rx_before):
    """A note-on that claims the armed reflex table: its notes into the pending table, at the
    input's frame plus the table's offset (written in frame order with everything else)."""
    gen = reflex.claim(st, message, rx_before)
    if gen == 0:
        return
    table = reflex.table_of(gen)
    mask = st[table + layout.REFLEX_MASK]
    at = frame + st[table + layout.REFLEX_OFFSET]
    for index in range(st[table + layout.REFLEX_COUNT]):
        if (mask >> index) & 1:
            insert_pending(st, at, st[reflex.entry(table, index)])
            st[layout.REFLEX_NOTES] += 1
    reflex.finished(st, gen)


@njit(inline="always", **_JIT)
def insert_pending(st, frame, message):
    """One event into the pending table, after those of an equal or earlier frame; the caller
    checks there is room."""
    pending = st[layout.PENDING]
    slot = layout.PENDING_BASE + 2 * pending
    while slot > layout.PENDING_BASE and st[slot - 2] > frame:  # usually none: the tick queues in order
        st[slot] = st[slot - 2]
        st[slot + 1] = st[slot - 1]
        slot -= 2
    st[slot] = frame
    st[slot + 1] = message
    st[layout.PENDING] = pending + 1


@njit(inline="always", **_JIT)
def take_queued(st):
    """TX ring -> pending table, inserted in frame order; stops (leaving the rest queued) when full."""
    queued = rings.fill(st, layout.TX_WRITE, layout.TX_READ)
    taken = 0
    while taken < queued and st[layout.PENDING] < layout.PENDING_CAPACITY:
        frame, message = rings.peek(st, layout.TX_READ, layout.TX_BASE, layout.TX_CAPACITY, taken)
        insert_pending(st, frame, message)
        taken += 1
    rings.advance(st, layout.TX_READ, taken)


@njit(inline="always", **_JIT)
def write_due(st, buffer, start, nframes):
    """Write the pending events due before this cycle's end, in frame order; drop them from the table."""
    pending = st[layout.PENDING]
    end = start + nframes
    due = 0
    while due < pending and st[layout.PENDING_BASE + 2 * due] < end:
        frame = st[layout.PENDING_BASE + 2 * due]
        message = st[layout.PENDING_BASE + 2 * due + 1]
        offset = frame - start
        if offset < 0:
            offset = 0
            if frame != layout.ASAP:
                st[layout.LATE] += 1
        size = (message >> 24) & 0xFF
        target = binding.midi_event_reserve(buffer, np.uint32(offset), size)
        if target == 0:
            st[layout.OUT_REFUSED] += 1
        else:
            out = carray(binding.byte_pointer(target), (size,), np.uint8)
            for position in range(size):
                out[position] = (message >> (8 * position)) & 0xFF
            st[layout.SENT] += 1
        due += 1
    for slot in range(layout.PENDING_BASE, layout.PENDING_BASE + 2 * (pending - due)):
        st[slot] = st[slot + 2 * due]
    st[layout.PENDING] = pending - due


def _process(nframes, arg):
    st = carray(arg, (layout.LENGTH,), np.int64)
    entered = np.int64(binding.get_time())
    start = clock.extend_frame(st[layout.FRAME64], np.int64(binding.last_frame_time(st[layout.CLIENT])))
    st[layout.FRAME64] = start
    if st[layout.IN_PORT] != 0:  # 0: opened without an input (--no-input)
        read_input(st, binding.port_get_buffer(st[layout.IN_PORT], nframes), start)
    output = binding.port_get_buffer(st[layout.OUT_PORT], nframes)
    binding.midi_clear_buffer(output)
    take_queued(st)
    write_due(st, output, start, np.int64(nframes))
    clock.publish_position(st, start, np.int64(nframes), entered)
    run = np.int64(binding.get_time()) - entered
    st[layout.RUN_SUM_US] += run
    st[layout.RUN_MAX_US] = max(st[layout.RUN_MAX_US], run)
    st[layout.CYCLES] += 1
    return 0


def _xrun(arg):
    st = carray(arg, (layout.HEADER,), np.int64)
    st[layout.XRUNS] += 1
    return 0


def _shutdown(arg):
    st = carray(arg, (layout.HEADER,), np.int64)
    st[layout.SHUTDOWN] = 1


class Callbacks(NamedTuple):
    process: object  # numba CFunc objects: ``.address`` is the C function pointer
    xrun: object
    shutdown: object


@functools.cache
def callbacks() -> Callbacks:
    """The compiled callbacks (numba's disk cache makes this fast after the first run)."""
    binding.load_libjack()  # before compiling: LLVM resolves the jack_* symbols in it
    compile_c = functools.partial(cfunc, cache=True, error_model="numpy")
    return Callbacks(
        process=compile_c(PROCESS_SIGNATURE)(_process),
        xrun=compile_c(XRUN_SIGNATURE)(_xrun),
        shutdown=compile_c(SHUTDOWN_SIGNATURE)(_shutdown),
    )
