"""Where everything lives in the one ``int64`` state array the callback and the Python side share.

The callback gets the array's address as its ``void *arg`` and views it with ``numba.carray``: a
global array would be frozen into the compiled code, and a Python object cannot be reached without
the GIL.  The array holds the JACK handles, the counters, the MIDI parser's state, the published
clock position, both rings and the callback's table of pending output.  Slots written by different
threads sit on different 64-byte lines, so a write on one side never invalidates the other's line.

A record on a ring (and in the pending table) is two slots: a 64-bit frame time and a packed message
(``pack_message``: up to three bytes, low byte first, and the length in bits 24-31).
"""

from __future__ import annotations

from collections.abc import Sequence

# -- set once before activation
CLIENT, IN_PORT, OUT_PORT, BASE = 0, 1, 2, 3
EVENT = 4  # jack_midi_event_t scratch, 3 slots: time (uint32 at +0), size (size_t at +8), buffer (at +16)

# -- written by the callback only (counters, its private state)
CYCLES, RUN_SUM_US, RUN_MAX_US = 8, 9, 10
LATE = 11  # scheduled events whose frame had passed: sent at offset 0 of the cycle
OUT_REFUSED = 12  # events jack_midi_event_reserve refused (output buffer full)
RX_OVERFLOW = 13  # input messages dropped because the RX ring was full
LOST_IN = 14  # events JACK itself lost before our input port (jack_midi_get_lost_event_count)
SYSEX_DROPPED = 15  # sysex messages read and dropped (never passed on)
SYSEX_UNTERMINATED = 16  # of those, ended by a status byte instead of 0xF7
SENT = 17  # events written to the output port
RECEIVED = 18  # messages put on the RX ring
PENDING = 19  # entries in the pending table
FRAME64 = 20  # the last cycle's start frame, extended to 64 bits (clock.extend_frame)
PARSE_STATUS, PARSE_HAVE, PARSE_DATA, PARSE_IN_SYSEX = 21, 22, 23, 24  # parse.py's state
XRUNS, SHUTDOWN = 25, 26  # written by the xrun and shutdown callbacks (JACK's notification thread)
REFLEXES, REFLEX_NOTES = 27, 28  # reflex tables played, and the notes they wrote (reflex.py)

# -- the published position, a seqlock (clock.read_position): this cycle's start frame, its length,
#    jack_get_time() as the callback entered, and the anchor of the frame <-> time mapping
POSITION_SEQ, POSITION_FRAME, POSITION_NFRAMES, POSITION_USECS, ANCHOR_FRAME, ANCHOR_USECS = 32, 33, 34, 35, 36, 37

# -- ring indices, each on its own line: TX is written by Python, read by the callback; RX the reverse
TX_WRITE, TX_READ, RX_WRITE, RX_READ = 40, 48, 56, 64

# -- the anchor's search (clock.track_anchor): the sample rate (set before activation), where the
#    current half-window ends, and the best (offset, frame, usecs) of the current and previous ones
SAMPLE_RATE, WINDOW_END = 72, 73
BEST_OFFSET, BEST_FRAME, BEST_USECS = 74, 75, 76
PREVIOUS_OFFSET, PREVIOUS_FRAME, PREVIOUS_USECS = 77, 78, 79

# -- the reflex (reflex.py): the armed generation (the tick arms it, the callback claims it with a
#    compare-and-swap, the tick takes it back with an exchange), the last generation whose table the
#    callback has finished reading, and two tables (by the generation's parity), each a header
#    (entries, RX write index at arming, channel mask, frame offset, played mask) and its entries
#    (packed note-on, lowest input velocity, lowest and highest input note)
REFLEX_ARMED, REFLEX_DONE = 80, 88
REFLEX_COUNT, REFLEX_RX_MARK, REFLEX_CHANNELS, REFLEX_OFFSET, REFLEX_MASK = 0, 1, 2, 3, 4
REFLEX_CAPACITY = 32  # notes one input can set off at once (at most 63: the played mask is one int64)
REFLEX_ENTRY = 4
REFLEX_TABLE = 8 + REFLEX_ENTRY * REFLEX_CAPACITY
REFLEX_BASE = 96
HEADER = REFLEX_BASE + 2 * REFLEX_TABLE

TX_CAPACITY = 1024  # records; powers of two (indices wrap with a mask)
RX_CAPACITY = 1024
PENDING_CAPACITY = 1024  # scheduled events the callback holds until their cycle
TX_BASE = HEADER
RX_BASE = TX_BASE + 2 * TX_CAPACITY
PENDING_BASE = RX_BASE + 2 * RX_CAPACITY
LENGTH = PENDING_BASE + 2 * PENDING_CAPACITY

ASAP = -1  # the frame of an event to send at the start of the next cycle (not counted late)
MAX_MESSAGE = 3  # bytes: every channel message, system common and real-time; sysex does not go out


def pack_message(message: Sequence[int]) -> int:
    """Up to three bytes and their count in one int64 (the rings' record format)."""
    packed = len(message) << 24
    for index, byte in enumerate(message):
        packed |= byte << (8 * index)
    return packed


def unpack_message(packed: int) -> list[int]:
    return [(packed >> (8 * index)) & 0xFF for index in range((packed >> 24) & 0xFF)]
