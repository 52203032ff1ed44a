"""libjack's real-time functions, as numba sees them, and the few intrinsics the callback needs.

Each function is a ``types.ExternalFunction``: a symbol that LLVM resolves by name in libjack once
``load_libjack()`` has loaded it into the process.  Unlike a cffi or ctypes function object (a
"dynamic global" whose address is baked into the code), a symbol lets numba cache the compiled
callback on disk.  Pointers travel as ``uintp`` (a pointer's ABI on every 64-bit target JACK runs on).

Only functions that are real-time safe in jack2 (they read shared memory, never lock, never log on
their success path) are declared here; the setup side (open, register, activate) is in libjack.py.
"""

from __future__ import annotations

import ctypes.util
import functools

from numba import types
from numba.extending import intrinsic

from firefly_midi.errors import FireflyError


class JackUnavailable(FireflyError, OSError):
    """libjack is not installed, or no JACK server answers."""


_u32, _u64, _ptr, _i32 = types.uint32, types.uint64, types.uintp, types.int32

port_get_buffer = types.ExternalFunction("jack_port_get_buffer", _ptr(_ptr, _u32))
midi_get_event_count = types.ExternalFunction("jack_midi_get_event_count", _u32(_ptr))
# (jack_midi_event_t *event, void *port_buffer, uint32_t index) -> 0 or -ENODATA
midi_event_get = types.ExternalFunction("jack_midi_event_get", _i32(_ptr, _ptr, _u32))
midi_clear_buffer = types.ExternalFunction("jack_midi_clear_buffer", types.void(_ptr))
# (port_buffer, frame offset, size) -> where to write the bytes, or NULL (full, or out of frame order)
midi_event_reserve = types.ExternalFunction("jack_midi_event_reserve", _ptr(_ptr, _u32, _ptr))
midi_get_lost_event_count = types.ExternalFunction("jack_midi_get_lost_event_count", _u32(_ptr))
last_frame_time = types.ExternalFunction("jack_last_frame_time", _u32(_ptr))
get_time = types.ExternalFunction("jack_get_time", _u64())


@functools.cache
def libjack_path() -> str:
    """The shared library's name as the dynamic loader knows it (``libjack.so.0`` on Linux)."""
    found = ctypes.util.find_library("jack")
    if found is None:
        raise JackUnavailable("libjack is not installed (Debian: apt-get install libjack-jackd2-0)")
    return found


@functools.cache
def load_libjack() -> str:
    """Load libjack into the process for LLVM's symbol resolution; idempotent.  Returns its name."""
    import llvmlite.binding as llvm

    path = libjack_path()
    try:
        llvm.load_library_permanently(path)
    except RuntimeError as error:
        raise JackUnavailable(f"could not load {path}: {error}") from error
    return path


@intrinsic
def byte_pointer(typingctx, address):
    """An integer address as a ``uint8*``, so that ``numba.carray`` can view the bytes there."""
    if not isinstance(address, types.Integer):
        return None
    signature = types.CPointer(types.uint8)(types.uintp)

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], context.get_value_type(sig.return_type))

    return signature, codegen


def _fence(ordering: str):
    @intrinsic
    def fence(typingctx):
        def codegen(context, builder, sig, args):
            builder.fence(ordering)
            return context.get_dummy_value()

        return types.none(), codegen

    return fence


# A ring's writer stores the record, then fence_release(), then the index; its reader loads the
# index, then fence_acquire(), then the record.  On x86 these cost nothing but stop the compiler
# from reordering; on aarch64 they are the barriers that make the record visible before the index.
fence_acquire = _fence("acquire")
fence_release = _fence("release")


def _slot_pointer(context, builder, base, slot):
    """``int64*`` to slot ``slot`` of the state array at address ``base``."""
    address = builder.add(base, builder.mul(slot, context.get_constant(types.intp, 8)))
    return builder.inttoptr(address, context.get_value_type(types.int64).as_pointer())


@intrinsic
def compare_exchange(typingctx, base, slot, expected, new):
    """Atomically: if state[slot] == expected, store ``new``; returns the value found (seq_cst).
    ``base`` is the state array's address (``state[layout.BASE]``)."""
    signature = types.int64(types.uintp, types.intp, types.int64, types.int64)

    def codegen(context, builder, sig, args):
        pointer = _slot_pointer(context, builder, args[0], args[1])
        pair = builder.cmpxchg(pointer, args[2], args[3], "seq_cst", "seq_cst")
        return builder.extract_value(pair, 0)

    return signature, codegen


@intrinsic
def exchange(typingctx, base, slot, new):
    """Atomically store ``new`` in state[slot] and return the value it held (seq_cst)."""
    signature = types.int64(types.uintp, types.intp, types.int64)

    def codegen(context, builder, sig, args):
        return builder.atomic_rmw("xchg", _slot_pointer(context, builder, args[0], args[1]), args[2], "seq_cst")

    return signature, codegen
