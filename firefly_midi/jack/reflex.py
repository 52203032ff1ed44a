"""The reflex: notes the callback plays in the very cycle an input note-on arrives, armed by the tick.

After each step the tick arms a small table (``arm``): the note-ons that an input note-on would set
off at once if it reached the swarm's next step, each with the lowest input velocity and the input
notes that set it off (firefly_midi/reflex.py computes it from the phases).  The table is armed under
a generation number.  When a note-on passes the table's filters the callback claims the generation
with a compare-and-swap and writes the table's notes at the input's frame plus a fixed offset; the
tick takes the generation back (an exchange) before it polls its input, so exactly one of them wins:

- the callback claimed it: the note-on is the first message on the RX ring since the tick last
  polled (the table's ``REFLEX_RX_MARK``), so it reaches the step the table was computed for, and
  the tick registers the notes played (``played``) instead of playing them again;
- the tick took it back first: the callback plays nothing and the note goes the ordinary way.

Two tables alternate by the generation's parity, and the tick never rewrites a claimed table before
the callback says it has read it (``REFLEX_DONE``).  The callback side is inlined into the process
callback (no call, no error path); ``arm``/``take_back`` are the tick's.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from firefly_midi.jack import layout
from firefly_midi.jack.binding import compare_exchange, exchange, fence_acquire, fence_release

_JIT = {"cache": True, "error_model": "numpy", "nogil": True}
NOT_CLAIMED = -1


@njit(inline="always", **_JIT)
def table_of(gen):
    return layout.REFLEX_BASE + (gen & 1) * layout.REFLEX_TABLE


@njit(inline="always", **_JIT)
def entry(table, index):
    return table + 8 + layout.REFLEX_ENTRY * index


@njit(inline="always", **_JIT)
def claim(st, message, rx_before):
    """Callback: claim the armed table for this message; returns its generation (0: not claimed).

    ``rx_before`` is the RX ring's write index before this message was put there: the table holds
    only while nothing else reached the ring since the tick's last poll."""
    if (message >> 24) & 0xFF != 3 or message & 0xF0 != 0x90:
        return 0
    velocity = (message >> 16) & 0xFF
    gen = st[layout.REFLEX_ARMED]
    if velocity == 0 or gen <= 0:
        return 0
    fence_acquire()
    table = table_of(gen)
    if st[table + layout.REFLEX_RX_MARK] != rx_before or (st[table + layout.REFLEX_CHANNELS] >> (message & 0x0F)) & 1 == 0:
        return 0
    note = (message >> 8) & 0xFF
    mask = 0
    played = 0
    for index in range(st[table + layout.REFLEX_COUNT]):
        at = entry(table, index)
        if st[at + 1] <= velocity and st[at + 2] <= note <= st[at + 3]:
            mask |= 1 << index
            played += 1
    if mask == 0 or st[layout.PENDING] + played > layout.PENDING_CAPACITY:
        return 0
    st[table + layout.REFLEX_MASK] = mask  # before the claim: the tick reads it once it sees the claim
    if compare_exchange(st[layout.BASE], layout.REFLEX_ARMED, gen, -gen) != gen:
        return 0
    return gen


@njit(inline="always", **_JIT)
def finished(st, gen):
    """Callback: the claimed table has been read (the tick may write it again)."""
    fence_release()
    st[layout.REFLEX_DONE] = gen
    st[layout.REFLEXES] += 1


@njit(**_JIT)
def arm(st, gen, busy, channels, offset, messages, velocities, lows, highs, count):
    """Tick: arm ``count`` entries under generation ``gen`` (> 0, not armed now).  False (nothing
    armed) while the table of ``gen``'s parity is the claimed generation ``busy`` not yet read."""
    if busy > 0 and (busy & 1) == (gen & 1) and st[layout.REFLEX_DONE] < busy:
        return False
    fence_acquire()
    table = table_of(gen)
    count = min(count, layout.REFLEX_CAPACITY)
    for index in range(count):
        at = entry(table, index)
        st[at], st[at + 1], st[at + 2], st[at + 3] = messages[index], velocities[index], lows[index], highs[index]
    st[table + layout.REFLEX_COUNT] = count
    st[table + layout.REFLEX_RX_MARK] = st[layout.RX_READ]
    st[table + layout.REFLEX_CHANNELS] = channels
    st[table + layout.REFLEX_OFFSET] = offset
    st[table + layout.REFLEX_MASK] = 0
    exchange(st[layout.BASE], layout.REFLEX_ARMED, gen)  # seq_cst: the table is visible before it
    return True


@njit(**_JIT)
def take_back(st):
    """Tick: disarm; returns the played mask of a table the callback claimed, or NOT_CLAIMED."""
    old = exchange(st[layout.BASE], layout.REFLEX_ARMED, 0)
    if old >= 0:
        return NOT_CLAIMED
    fence_acquire()
    return st[table_of(-old) + layout.REFLEX_MASK]


def warm_up() -> None:
    """Compile (or load) the tick's functions now, not in the first tick."""
    scratch = np.zeros(layout.LENGTH, dtype=np.int64)
    scratch[layout.BASE] = scratch.ctypes.data
    none = np.zeros(1, dtype=np.int64)
    arm(scratch, 1, 0, 0xFFFF, 0, none, none, none, none, 0)
    take_back(scratch)
