"""LLVM-level helpers that numba does not offer: borrowed array views, per-function vector width, atomics."""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

# Fast-math for the reductions (re-association lets LLVM vectorise sums; contraction allows FMA), but
# without ``nnan``/``ninf``: silenced fireflies are NaN, and the ``x == x`` tests must survive.
FAST = {"reassoc", "contract", "arcp"}


@intrinsic
def borrowed(typingctx, *arrays):
    """Views of ``arrays`` that numba does not reference-count: same data, shape and strides, no meminfo.

    Every array handed to an ``inline="always"`` helper is bound to a fresh variable, which numba
    increfs and decrefs: lock-prefixed atomics, ~20 cycles each here, which ``perf`` showed to be
    a fifth of ermentrout-800's time with the delivery queue's helpers not inlined.
    The run loops and the ticks rebind their arrays to these views once; for them NRT_incref and
    NRT_decref see no meminfo and return at once.  Safe while the arrays live: the caller of a
    kernel holds them for the whole call.  One array gives one view, several a tuple.
    """
    arrays = tuple(arrays[0]) if len(arrays) == 1 and isinstance(arrays[0], types.StarArgTuple) else tuple(arrays)
    if not arrays or not all(isinstance(a, types.Array) for a in arrays):
        return None
    result = types.Tuple(arrays) if len(arrays) > 1 else arrays[0]

    def codegen(context, builder, sig, args):
        views = []
        for array_type, value in zip(arrays, cgutils.unpack_tuple(builder, args[0]), strict=True):
            source = context.make_array(array_type)(context, builder, value)
            view = context.make_array(array_type)(context, builder)
            view.meminfo = cgutils.get_null_value(view.meminfo.type)
            view.parent = cgutils.get_null_value(view.parent.type)
            for field in ("nitems", "itemsize", "data", "shape", "strides"):
                setattr(view, field, getattr(source, field))
            views.append(view._getvalue())
        return context.make_tuple(builder, result, views) if len(views) > 1 else views[0]

    return result(types.StarArgTuple.from_types(arrays)), codegen


@intrinsic
def prefer_512_bit_vectors(typingctx):
    """Let LLVM vectorise the calling kernel with 512-bit registers where the CPU has AVX-512.

    LLVM's tuning for most AVX-512 CPUs prefers 256 bits (wide registers once lowered the clock), so
    numba's loops get ymm.  The Kuramoto sweep is bound by its arithmetic: measured here, zmm made
    it 1.33x faster, while the small loops of an 800-firefly swarm got slower.  So the attribute is
    per function, not a CPU feature for all; min-legal-vector-width keeps the wide code wide if
    LLVM inlines the function into one without the attribute.  On other CPUs it changes nothing.
    """

    def codegen(context, builder, sig, args):
        for attribute in ('"prefer-vector-width"="512"', '"min-legal-vector-width"="512"'):
            set.add(builder.function.attributes, attribute)  # llvmlite's add() knows no string attributes
        return context.get_dummy_value()

    return types.none(), codegen


def _int64_slot(context, builder, sig, args):
    """Pointer to element ``args[1]`` of the int64 array ``args[0]``."""
    array = context.make_array(sig.args[0])(context, builder, args[0])
    index = context.cast(builder, args[1], sig.args[1], types.intp)
    return cgutils.get_item_pointer(context, builder, sig.args[0], array, [index])


def _is_int64_vector(array) -> bool:
    return isinstance(array, types.Array) and array.dtype == types.int64 and array.ndim == 1


@intrinsic
def atomic_add(typingctx, array, index, value):
    """array[index] += value as one atomic step (sequentially consistent); returns the old value."""
    if not _is_int64_vector(array):
        return None

    def codegen(context, builder, sig, args):
        amount = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", _int64_slot(context, builder, sig, args), amount, "seq_cst")

    return types.int64(array, index, value), codegen


@intrinsic
def atomic_load(typingctx, array, index):
    """array[index], read with acquire order: never hoisted out of a loop that waits for it."""
    if not _is_int64_vector(array):
        return None

    def codegen(context, builder, sig, args):
        return builder.load_atomic(_int64_slot(context, builder, sig, args), "acquire", 8)

    return types.int64(array, index), codegen


@intrinsic
def atomic_store(typingctx, array, index, value):
    """array[index] = value with release order: every store before it is seen before it."""
    if not _is_int64_vector(array):
        return None

    def codegen(context, builder, sig, args):
        amount = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(amount, _int64_slot(context, builder, sig, args), "release", 8)
        return context.get_dummy_value()

    return types.none(array, index, value), codegen
