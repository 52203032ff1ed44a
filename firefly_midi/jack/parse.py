"""The input's MIDI parser, run inside the callback: bytes in, complete messages out, sysex dropped.

JACK hands over events that are usually one complete message each, but a bridge may split a long
sysex over several events, and a broken sender may never end one.  A parser that waits for 0xF7
goes deaf until one comes (python-rtmidi's JACK input did: the daemon needed a guard client that
sent stray 0xF7s).  This one follows the MIDI 1.0 rules instead:

- 0xF0 starts a sysex; its bytes are dropped (counted), never handed on as a message;
- 0xF7 ends it, and so does any other status byte (counted as unterminated), which then starts its
  own message: a note-on after a broken sysex is heard;
- real-time bytes (0xF8-0xFF) are complete on their own and pass through anywhere, even inside a
  sysex or between a message's data bytes;
- running status: data bytes after a complete channel message start another with the same status;
  system common messages, sysex and a stray 0xF7 cancel it (and a message half read);
- stray data bytes (no status to give them meaning) are dropped.

The state lives in the state array (layout.PARSE_*), so a message split over two events or two
cycles still parses.  ``feed`` returns a packed message (layout.pack_message) or -1.
"""

from __future__ import annotations

from numba import njit

from firefly_midi.jack import layout

NOTHING = -1
_JIT = {"cache": True, "error_model": "numpy", "nogil": True}


@njit(inline="always", **_JIT)
def message_length(status):
    """Bytes in a message with this status byte, the status included (1 for real-time and undefined)."""
    if status < 0xF0:
        kind = status & 0xF0
        return 2 if kind == 0xC0 or kind == 0xD0 else 3
    if status == 0xF1 or status == 0xF3:
        return 2
    if status == 0xF2:
        return 3
    return 1


@njit(inline="always", **_JIT)
def feed(st, byte):
    """One input byte; the message it completes (packed), or NOTHING."""
    if byte >= 0xF8:
        return byte | (1 << 24)
    if byte == 0xF0:
        st[layout.PARSE_IN_SYSEX] = 1
        st[layout.PARSE_STATUS] = 0
        st[layout.SYSEX_DROPPED] += 1
        return NOTHING
    if byte == 0xF7:  # the end of a sysex, or a stray end (system common: cancels running status)
        st[layout.PARSE_IN_SYSEX] = 0
        st[layout.PARSE_STATUS] = 0
        st[layout.PARSE_HAVE] = 0
        st[layout.PARSE_DATA] = 0
        return NOTHING
    if byte >= 0x80:
        if st[layout.PARSE_IN_SYSEX] != 0:
            st[layout.PARSE_IN_SYSEX] = 0
            st[layout.SYSEX_UNTERMINATED] += 1
        st[layout.PARSE_HAVE] = 0
        st[layout.PARSE_DATA] = 0
        if message_length(byte) == 1:  # tune request, undefined F4/F5: complete, no running status
            st[layout.PARSE_STATUS] = 0
            return byte | (1 << 24)
        st[layout.PARSE_STATUS] = byte
        return NOTHING
    status = st[layout.PARSE_STATUS]
    if st[layout.PARSE_IN_SYSEX] != 0 or status == 0:
        return NOTHING
    have = st[layout.PARSE_HAVE] + 1
    data = st[layout.PARSE_DATA] | (byte << (8 * have))
    length = message_length(status)
    if have < length - 1:
        st[layout.PARSE_HAVE] = have
        st[layout.PARSE_DATA] = data
        return NOTHING
    st[layout.PARSE_HAVE] = 0
    st[layout.PARSE_DATA] = 0
    if status >= 0xF0:
        st[layout.PARSE_STATUS] = 0
    return status | data | (length << 24)
