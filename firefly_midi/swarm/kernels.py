"""Numba kernels: one small function per model step, over flat arrays and scalars.

Every kernel is ``nogil`` (the daemon's tick thread runs it while the UI thread keeps the GIL) and
``cache`` (so the first call in a new process loads machine code instead of compiling).  Kernels
never allocate: the engine owns every buffer and passes it in.  ``reference.py`` holds a plain-numpy
twin of each, and the tests compare the two on random states.

Conventions: phase ``phase[i]`` is in cycles, in [0, 1); a firefly flashes when it reaches 1.
Frequencies are in Hz.  A silenced firefly has phase NaN, so every comparison with it is false and it
never flashes, receives or counts.  Flashes are appended to ``ids`` / ``times`` (the fraction of the
tick at which the flash happened) starting at index ``n``; each kernel returns the new count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

TWO_PI = 2.0 * np.pi

# Model and phase-response-curve codes: the engine maps names to these once.
PULSE, MIROLLO_STROGATZ, ERMENTROUT, KURAMOTO = 0, 1, 2, 3
CONSTANT, LINEAR, SINE, SAWTOOTH = 0, 1, 2, 3

BLOCK = 256  # Kuramoto's sweep works in blocks this long so its inner loop vectorises
CROSSING_BLOCK = 64  # advance(): a block where a phase crossed 1 is scanned again, so short ones
# Kuramoto's unit of work: each chunk sums its own part, and the chunks' sums are added in chunk
# order, so the result does not depend on which thread ran which chunk (see kuramoto_sine).
CHUNK = 8192

# Fast-math for the reductions (re-association lets LLVM vectorise sums; contraction allows FMA), but
# without ``nnan``/``ninf``: silenced fireflies are NaN, and the ``x == x`` tests must survive.
FAST = {"reassoc", "contract", "arcp"}


@intrinsic
def borrowed(typingctx, *arrays):
    """Views of ``arrays`` that numba does not reference-count: same data, shape and strides, no meminfo.

    Every array handed to an ``inline="always"`` helper is bound to a fresh variable, which numba
    increfs and decrefs: lock-prefixed atomics, ~20 cycles each here, which ``perf`` showed were a
    fifth of ermentrout-800's time even after the delivery queue's helpers stopped being inlined.
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


# sin r = r + r·u·S(u) and cos r = 1 + u·C(u), u = r², on r ∈ [-π/2, π/2]: least squares on
# Chebyshev nodes in u (near-minimax), weighted so the error is absolute.  Largest error over the range,
# in float64: 1.9e-11 (sin), 8.6e-13 (cos); Taylor series need degrees 15 and 18 for 1e-11.
S3, S5, S7, S9, S11 = (
    -1.6666666603870156e-01,
    8.3333304202055543e-03,
    -1.9840796485414864e-04,
    2.7522303355353537e-06,
    -2.3841987603684556e-08,
)
C2, C4, C6, C8, C10, C12 = (
    -4.9999999997869576e-01,
    4.1666666500718361e-02,
    -1.3888884558894620e-03,
    2.4801066193817336e-05,
    -2.7525523236138074e-07,
    1.9918150017929904e-09,
)


@njit(inline="always", fastmath=FAST)
def sincos_2pi(x: float) -> tuple[float, float]:
    """(sin 2πx, cos 2πx) to 2e-11 with plain arithmetic, so loops calling it vectorise.

    Inlined at numba IR level: the caller's fast-math flags apply to it.
    """
    y = x - np.floor(x + 0.5)  # [-1/2, 1/2)
    fold = np.abs(y) > 0.25  # sin(π - a) = sin a keeps the polynomial on [-π/2, π/2]
    z = (np.copysign(0.5, y) - y) if fold else y
    r = z * TWO_PI
    u = r * r
    s = r + r * u * (S3 + u * (S5 + u * (S7 + u * (S9 + u * S11))))
    c = 1.0 + u * (C2 + u * (C4 + u * (C6 + u * (C8 + u * (C10 + u * C12)))))
    return s, -c if fold else c


@njit(inline="always")
def prc_unit(phi: float, prc: int, desync: bool) -> float:
    """Phase shift per unit of coupling for a flash observed at own phase ``phi``."""
    if desync:
        if prc == CONSTANT:
            return 1.0 if phi < 0.5 else (-1.0 if phi > 0.5 else 0.0)
        if prc == LINEAR:  # strongest for flashes near one's own, nothing for the opposite phase
            return 1.0 - 2.0 * phi
        return sincos_2pi(phi)[0]
    if prc == CONSTANT:
        return -1.0 if phi < 0.5 else (1.0 if phi > 0.5 else 0.0)
    if prc == LINEAR:
        return -2.0 * phi if phi < 0.5 else (2.0 * (1.0 - phi) if phi > 0.5 else 0.0)
    return -sincos_2pi(phi)[0]


@njit(inline="always")
def pulse_kick(phi: float, s: float, prc: int, desync: bool) -> float:
    """Phase after flashes worth ``s`` (= ε × flashes × weight) arrive at once.

    Sync curves push away from ½, towards 0 (clamped: one cannot move before one's own last flash)
    or towards 1 (reaching it means flashing now).  De-sync curves pull towards ½ and stop there,
    so a strong burst never overshoots the attractor it is heading for.
    """
    x = phi + s * prc_unit(phi, prc, desync)
    if desync:
        return min(x, 0.5) if phi < 0.5 else max(x, 0.5)
    return max(x, 0.0)


@njit(inline="always")
def ermentrout_freq(phi: float, omega: float, m: float, w: float, eps: float, f0: float, fmin: float, fmax: float) -> float:
    """Frequency after ``m`` flashes at phase ``phi`` (Babaoglu et al. 2007, eq. 1), composed exactly.

    One flash maps ω to ω + a(ω* - ω) with a = w(ε + g⁺ + g⁻); m of them at the same phase leave
    ω* + (1 - a)^m (ω - ω*).
    """
    return ermentrout_freq_at(sincos_2pi(phi)[0] / TWO_PI, omega, m, w, eps, f0, fmin, fmax)


@njit(inline="always")
def ermentrout_freq_at(sn: float, omega: float, m: float, w: float, eps: float, f0: float, fmin: float, fmax: float) -> float:
    """``ermentrout_freq`` given ``sn`` = sin(2πφ)/2π (from a table of a tick's sines, or computed)."""
    gp = max(sn, 0.0)
    gm = max(-sn, 0.0)
    a = w * (eps + gp + gm)
    if a <= 0.0:
        return omega
    if m == 1.0 and a <= 1.0:  # one flash (every sparse delivery): eq. 1 as written, without the division below
        return omega + w * (eps * (f0 - omega) + gp * (fmin - omega) + gm * (fmax - omega))
    target = (eps * f0 + gp * fmin + gm * fmax) / (eps + gp + gm)
    keep = max(1.0 - a, 0.0)
    if m != 1.0:  # pow(x, 1) is x exactly: one flash (the sparse case) skips the libm call
        keep = keep**m
    return target + keep * (omega - target)


@njit(inline="always")
def receive(model, prc, desync, phi, omega, m, w, eps, kappa, ms_b, f0, fmin, fmax):
    """(phase, frequency) of one firefly after ``m`` flash-equivalents, for the pulse-type models."""
    if model == ERMENTROUT:
        return phi, ermentrout_freq(phi, omega, m, w, eps, f0, fmin, fmax)
    if model == MIROLLO_STROGATZ:
        scale = np.expm1(ms_b)
        x = np.log1p(scale * phi) / ms_b + m * w * eps
        return (1.0 if x >= 1.0 else np.expm1(ms_b * x) / scale), omega
    new_phi = pulse_kick(phi, m * w * eps, prc, desync)
    if kappa > 0.0:
        omega = min(max(omega * (1.0 + m * w * kappa * prc_unit(phi, prc, desync)), fmin), fmax)
    return new_phi, omega


@njit(nogil=True, cache=True, inline="always")
def advance(phase, freq, dt, fired, ids, times, n):
    """Move every phase on by freq·dt; record crossings of 1 with their sub-tick time.

    Two passes over blocks of CROSSING_BLOCK: a branch-free one that moves the phases and counts
    those at or past 1 (it vectorises: its indices are unsigned, so numba emits no negative-index
    check, which would stop LLVM's vectoriser), and, only in a block where one crossed, a scan
    that wraps it and records who and when.  Wrapping in the first pass and keeping the span of
    crossings, as before, cost 1.3x this (800 fireflies, in L1; docs/performance.md).
    """
    size = phase.size
    for start in range(0, size, CROSSING_BLOCK):
        lo = np.uint64(start)
        hi = np.uint64(min(start + CROSSING_BLOCK, size))
        crossed = np.int32(0)  # a 32-bit count vectorises wider than a 64-bit one
        for i in range(lo, hi):
            x = phase[i] + freq[i] * dt
            phase[i] = x
            crossed += np.int32(x >= 1.0)
        if crossed:
            for i in range(lo, hi):  # a NaN (silenced) phase is never >= 1: it never flashes
                x = phase[i]
                if x >= 1.0:
                    x -= 1.0
                    phase[i] = x
                    ids[n] = i
                    times[n] = 1.0 - x / (freq[i] * dt)
                    fired[i] = 1
                    n += 1
    return n


@njit(nogil=True, cache=True, inline="always")
def add_noise(phase, sigma, key, counter):
    """Add uniform noise of standard deviation ``sigma`` to every phase (a diffusion over many ticks).

    One splitmix64 draw per tick seeds a 32-bit hash of each firefly's id (``noise_bits``), so the
    stream is a pure function of (seed, tick) and the numpy reference reproduces it.  32-bit lanes
    vectorise where 64-bit multiplies do not (AVX2 has none): splitmix64 per firefly cost 2.7 ns
    a firefly on an AVX2 EPYC (a third of a pulse tick at N = 10⁵), this 1.2 ns.  Returns the new counter.
    """
    seed = splitmix64(key, counter)
    low, high = np.uint32(seed & np.uint64(0xFFFFFFFF)), np.uint32(seed >> np.uint64(32))
    shake(phase, sigma * np.sqrt(3.0), low, high)
    return counter + np.uint64(1)


@njit(nogil=True, cache=True)
def shake(phase, half_width, low, high):
    """add_noise's pass over the phases.  A function of its own: with the seed worked out in the
    same function, LLVM vectorised this loop 1.4x slower (measured, not understood)."""
    for i in range(phase.size):
        u = float(np.int32(noise_bits(np.uint32(i), low, high) >> np.uint32(1))) * (1.0 / 2147483648.0)
        x = phase[i] + half_width * (2.0 * u - 1.0)
        phase[i] = min(max(x, 0.0), 1.0)  # at 1 the next advance flashes it


@njit(inline="always")
def mix32(x):
    """lowbias32 (C. Wellons' 32-bit integer hash).  numba widens integer arithmetic to 64 bits,
    so every step is cast back to uint32: LLVM then works in 8 lanes of 32 bits (vpmulld)."""
    x = np.uint32(x ^ (x >> np.uint32(16)))
    x = np.uint32(x * np.uint32(0x7FEB352D))
    x = np.uint32(x ^ (x >> np.uint32(15)))
    x = np.uint32(x * np.uint32(0x846CA68B))
    return np.uint32(x ^ (x >> np.uint32(16)))


@njit(inline="always")
def noise_bits(i, low, high):
    """32 random bits for firefly ``i`` in a tick seeded (low, high): two rounds, the second keyed."""
    return mix32(np.uint32(mix32(np.uint32(i + low)) ^ high))


@njit(inline="always")
def splitmix64(key, counter):
    z = key + counter * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(inline="always")
def uniform01(key, counter):
    z = splitmix64(key, counter)
    return float(np.int64(z >> np.uint64(11))) * (1.0 / 9007199254740992.0)  # < 2**53: exact; a signed conversion is one instruction


@njit(nogil=True, cache=True, inline="always")
def receive_all(model, prc, desync, phase, freq, fired, m, w, eps, kappa, ms_b, f0, fmin, fmax, t, ids, times, n):
    """Every firefly that has not flashed this tick sees ``m`` flash-equivalents (global coupling).

    Those pushed to threshold flash now, at sub-tick time ``t``, and are absorbed: they ignore the
    rest of this tick's flashes.  The loops are picked per model, outside them, so that each one
    vectorises (one loop dispatching on the model inside ran 4-5x slower); they compute what
    ``receive`` does, bit for bit.  Mirollo-Strogatz's curve calls libm: one firefly at a time.
    """
    if model == ERMENTROUT:  # a flash changes the frequency only: no phase reaches 1 here
        for i in range(phase.size):
            f = freq[i]
            omega = ermentrout_freq(phase[i], f, m, w, eps, f0, fmin, fmax)
            freq[i] = omega if fired[i] == 0 else f
        return n
    if model == PULSE:
        return _receive_all_pulse(prc, desync, phase, freq, fired, m * w * eps, m * w * kappa, fmin, fmax, t, ids, times, n)
    return _receive_all_each(model, prc, desync, phase, freq, fired, m, w, eps, kappa, ms_b, f0, fmin, fmax, t, ids, times, n)


@njit(nogil=True, cache=True, inline="always")
def _receive_all_pulse(prc, desync, phase, freq, fired, s, adapt, fmin, fmax, t, ids, times, n):
    """The pulse model's receive_all in two passes over blocks, as ``advance``: a branch-free one
    that kicks every firefly (those that flashed keep their values through selects) and counts the
    phases it pushed to 1, and a scan, only of a block where one was, that fires them in id order.
    ``s`` = m·w·ε, ``adapt`` = m·w·κ (interval adaptation, 0 for none)."""
    size = phase.size
    for start in range(0, size, CROSSING_BLOCK):
        lo = np.uint64(start)
        hi = np.uint64(min(start + CROSSING_BLOCK, size))
        crossed = np.int32(0)
        if adapt > 0.0:  # interval adaptation: the frequency too (without it, none to compute or store)
            for i in range(lo, hi):
                x, f = phase[i], freq[i]
                phi = pulse_kick(x, s, prc, desync)
                omega = min(max(f * (1.0 + adapt * prc_unit(x, prc, desync)), fmin), fmax)
                seen = fired[i] == 0
                phase[i] = phi if seen else x
                freq[i] = omega if seen else f
                crossed += np.int32(seen and phi >= 1.0)
        else:
            for i in range(lo, hi):
                x = phase[i]
                phi = pulse_kick(x, s, prc, desync)
                seen = fired[i] == 0
                phase[i] = phi if seen else x
                crossed += np.int32(seen and phi >= 1.0)
        if crossed:
            for i in range(lo, hi):
                if fired[i] == 0 and phase[i] >= 1.0:
                    phase[i] = 0.0
                    fired[i] = 1
                    ids[n] = i
                    times[n] = t
                    n += 1
    return n


@njit(nogil=True, cache=True, inline="always")
def _receive_all_each(model, prc, desync, phase, freq, fired, m, w, eps, kappa, ms_b, f0, fmin, fmax, t, ids, times, n):
    for i in range(phase.size):
        if fired[i] == 0:
            phi, omega = receive(model, prc, desync, phase[i], freq[i], m, w, eps, kappa, ms_b, f0, fmin, fmax)
            freq[i] = omega
            if phi >= 1.0:
                phase[i] = 0.0
                fired[i] = 1
                ids[n] = i
                times[n] = t
                n += 1
            else:
                phase[i] = phi
    return n


@njit(nogil=True, cache=True, inline="always")
def receive_subset(model, prc, desync, phase, freq, fired, targets, m, w, eps, kappa, ms_b, f0, fmin, fmax, t, ids, times, n):
    """As receive_all, for the fireflies listed in ``targets`` only (an external flash on a region)."""
    for k in range(targets.size):
        i = targets[k]
        if fired[i] == 0 and phase[i] == phase[i]:
            phi, omega = receive(model, prc, desync, phase[i], freq[i], m, w, eps, kappa, ms_b, f0, fmin, fmax)
            freq[i] = omega
            if phi >= 1.0:
                phase[i] = 0.0
                fired[i] = 1
                ids[n] = i
                times[n] = t
                n += 1
            else:
                phase[i] = phi
    return n


@njit(nogil=True, cache=True, inline="always")
def deliver_sparse(model, prc, desync, phase, freq, fired, table, w, eps, kappa, ms_b, f0, fmin, fmax, ids, times, start, n):
    """Deliver flashes ids[start:n] one by one to their neighbours (``table[j]``, -1 = none).

    A neighbour pushed over threshold joins the queue at the same sub-tick time, so a cascade
    spreads within the tick, and each firefly flashes at most once per tick.
    """
    q = start
    while q < n:
        j = ids[q]
        t = times[q]
        for k in range(table.shape[1]):
            i = table[j, k]
            if i < 0 or fired[i] != 0 or phase[i] != phase[i]:
                continue
            phi, omega = receive(model, prc, desync, phase[i], freq[i], 1.0, w, eps, kappa, ms_b, f0, fmin, fmax)
            freq[i] = omega
            if phi >= 1.0:
                phase[i] = 0.0
                fired[i] = 1
                ids[n] = i
                times[n] = t
                n += 1
            else:
                phase[i] = phi
        q += 1
    return n


@njit(nogil=True, cache=True, fastmath=FAST)
def mean_field(phase):
    """(Σ cos 2πφ, Σ sin 2πφ, Σ φ, live count) over the live fireflies.

    Branch-free (a NaN contributes zeros through selects) so that the loop vectorises.
    """
    prefer_512_bit_vectors()  # all sines: 0.67 -> 0.47 µs at N = 800, 84 -> 60 µs at 1e5 (measured here)
    c = 0.0
    s = 0.0
    total = 0.0
    live = 0
    for i in range(phase.size):
        x = phase[i]
        ok = x == x
        y = x if ok else 0.0
        sn, cs = sincos_2pi(y)
        c += cs if ok else 0.0
        s += sn if ok else 0.0
        total += y
        live += ok
    return c, s, total, live


# The Kuramoto sweep's shared words: chunks are claimed one at a time (atomic_add on SW_NEXT) by the thread
# that steps the swarm and by any helper threads (kuramoto_helper), and counted as they finish
# (SW_DONE).  The sweep's float arguments follow the int64 words, viewed as float64.
SW_NEXT, SW_DONE, SW_STOP, SW_CHUNKS, SW_HELPED = range(5)  # SW_HELPED: chunks helpers ran, for reports
SW_ARGS = 8  # sweep[SW_ARGS:SW_ARGS + 5] as float64: dt, k_hz, l_hz, zc, zs
SWEEP_SIZE = SW_ARGS + 5


def idle_sweep() -> np.ndarray:
    """A sweep board with no chunk to claim until kuramoto_sine publishes one.

    SW_NEXT starts past any chunk count: with 0 there, a helper started before the first sweep
    claimed chunk 0 with the board's empty arguments while the stepping thread ran it too.
    Between sweeps it stays past the count by itself (every claim adds 1).
    """
    sweep = np.zeros(SWEEP_SIZE, dtype=np.int64)
    sweep[SW_NEXT] = 1 << 62
    return sweep


@njit(nogil=True, cache=True, fastmath=FAST)
def kuramoto_chunk(c, phase, freq, fired, ids, times, sums, args):
    """Chunk ``c`` of kuramoto_sine: fireflies [c·CHUNK, (c+1)·CHUNK), its flashes to ids/times from
    c·CHUNK, its sums to sums[c].

    Each block's steps are parked in times[w : w + block], w being the next free flash slot
    (w <= the block's start, so the window is the chunk's own and holds no unread flash): the
    window moves only as flashes are packed, so it stays in L1.
    """
    prefer_512_bit_vectors()
    dt, k_hz, l_hz, zc, zs = args[0], args[1], args[2], args[3], args[4]
    c0 = c * CHUNK
    c1 = min(c0 + CHUNK, phase.size)
    c_sum = 0.0
    s_sum = 0.0
    advance_sum = 0.0
    live = 0
    w = c0
    for start in range(c0, c1, BLOCK):
        lo = np.uint64(start)
        hi = np.uint64(min(start + BLOCK, c1))
        crossed = 0
        base = np.uint64(w) - lo  # the block's steps go to times[w:], which stays in L1 (see above)
        for i in range(lo, hi):
            x = phase[i]
            ok = x == x  # NaN = silenced: selects keep it out of every sum, and NaN stays NaN
            sn, cs = sincos_2pi(x if ok else 0.0)
            pull = zs * cs - zc * sn  # Im(Z e^{-iθ}) = r sin(ψ - θ)
            d = dt * (freq[i] + k_hz * pull)
            freq[i] += dt * l_hz * pull if ok else 0.0
            y = x + d
            wraps = np.floor(y)
            phase[i] = y - wraps
            times[base + i] = d  # the step, kept for the rescan below
            crossed += wraps > 0.0
            c_sum += cs if ok else 0.0
            s_sum += sn if ok else 0.0
            advance_sum += d if ok else 0.0
            live += ok
        if crossed:
            for i in range(lo, hi):
                d = times[base + i]
                if d > 0.0 and phase[i] < d:  # wrapped upwards this step
                    ids[w] = i
                    times[w] = 1.0 - phase[i] / d  # w <= base + i: that step was already read
                    fired[i] = 1
                    w += 1
    sums[c, 0] = c_sum
    sums[c, 1] = s_sum
    sums[c, 2] = advance_sum
    sums[c, 3] = live
    sums[c, 4] = w - c0


@njit(nogil=True, cache=True)
def take_chunks(sweep, phase, freq, fired, ids, times, sums):
    """Run chunks of the sweep published in ``sweep`` until none is left to claim; return how many ran here."""
    args = sweep[SW_ARGS : SW_ARGS + 5].view(np.float64)
    chunks = sums.shape[0]
    ran = 0
    while True:
        c = atomic_add(sweep, SW_NEXT, 1)  # acquire: the sweep's arguments were stored before SW_NEXT = 0
        if c >= chunks:
            return ran
        kuramoto_chunk(c, phase, freq, fired, ids, times, sums, args)
        atomic_add(sweep, SW_DONE, 1)  # release: the chunk's writes are seen before the count
        ran += 1


@njit(nogil=True, cache=True)
def kuramoto_helper(sweep, phase, freq, fired, ids, times, scratch):
    """A helper thread's share of every sweep until sweep[SW_STOP] is set (Swarm.run starts it).

    It waits spinning, so it lives only through one offline run; the thread that steps the swarm
    never waits for it to start a chunk, only for a chunk it has started (see kuramoto_sine).
    """
    chunks = (phase.size + CHUNK - 1) // CHUNK
    sums = scratch[: 5 * chunks].reshape((chunks, 5))
    while atomic_load(sweep, SW_STOP) == 0:
        if atomic_load(sweep, SW_NEXT) < chunks:
            atomic_add(sweep, SW_HELPED, take_chunks(sweep, phase, freq, fired, ids, times, sums))
    return 0


@njit(nogil=True, cache=True)
def kuramoto_sine(phase, freq, dt, k_hz, l_hz, zc, zs, scratch, fired, ids, times, sweep):
    """One Euler step of Kuramoto with H = sin and the mean field (zc, zs) = mean of e^{2πiφ}.

    ``k_hz`` = K/2π and ``l_hz`` = L/2π turn the rad/s couplings into cycles/s.  The sums over
    the phases this step starts from come back out, so the caller has the next mean field without
    a second pass over memory.  Flashes go to ids/times from 0 (in id order).

    The swarm is cut in chunks of CHUNK fireflies, published in ``sweep`` (SWEEP_SIZE int64 words)
    for this thread and any helpers to claim one by one; this thread waits only for chunks a helper
    has started, so a helper that is late (or none at all) costs nothing.  Each chunk sums its own
    part into ``scratch`` (5 a chunk) and writes its flashes at its own offset; then the chunks'
    sums are added and their flashes packed, in chunk order, so the result is the same bit for bit
    whoever ran which chunk.  Returns (Σcos, Σsin, Σ advance, live count, flash count).
    """
    size = phase.size
    chunks = (size + CHUNK - 1) // CHUNK
    sums = scratch[: 5 * chunks].reshape((chunks, 5))
    args = sweep[SW_ARGS : SW_ARGS + 5].view(np.float64)
    args[0], args[1], args[2], args[3], args[4] = dt, k_hz, l_hz, zc, zs
    sweep[SW_CHUNKS] = chunks
    atomic_store(sweep, SW_DONE, 0)
    atomic_store(sweep, SW_NEXT, 0)  # release: publishes the arguments; claims may start
    take_chunks(sweep, phase, freq, fired, ids, times, sums)
    while atomic_load(sweep, SW_DONE) < chunks:
        pass  # a helper's chunk in flight: at most CHUNK fireflies, ~10 µs
    c_sum = 0.0
    s_sum = 0.0
    advance_sum = 0.0
    live = 0
    n = 0
    for c in range(chunks):
        c_sum += sums[c, 0]
        s_sum += sums[c, 1]
        advance_sum += sums[c, 2]
        live += int(sums[c, 3])
        count = int(sums[c, 4])
        c0 = c * CHUNK
        if n != c0:
            for q in range(count):  # n <= c0: packing downwards never overwrites unread flashes
                ids[n + q] = ids[c0 + q]
                times[n + q] = times[c0 + q]
        n += count
    return c_sum, s_sum, advance_sum, live, n


@njit(nogil=True, cache=True)
def phase_histogram(phase, counts):
    """Counts of live phases per bin (``counts`` is cleared first); returns (Σφ, live count)."""
    bins = counts.size
    counts[:] = 0
    total = 0.0
    live = 0
    for i in range(phase.size):
        x = phase[i]
        if x == x:
            counts[min(int(x * bins), bins - 1)] += 1
            total += x
            live += 1
    return total, live


@njit(nogil=True, cache=True)
def kuramoto_sawtooth(phase, freq, dt, k_hz, l_hz, counts, below, phase_sum, live):
    """One Euler step of Kuramoto with the sawtooth P(θ) = (θ mod 2π)/π - 1, P(0) = 0, in O(N).

    Σ_j P(θ_j - θ_i) = 2 Σ_j ((φ_j - φ_i) mod 1) - (N - 1), and Σ_j ((φ_j - φ_i) mod 1)
    = Σφ - Nφ_i + #{j: φ_j < φ_i}; the rank comes from the histogram ``counts`` (interpolated
    inside a bin: the error is at most 2·(occupancy of its bin - 1)/N, nothing for spread phases).  ``below`` is scratch for its prefix sums.
    """
    bins = counts.size
    acc = 0
    for b in range(bins):
        below[b] = acc
        acc += counts[b]
    for i in range(phase.size):
        x = phase[i]
        if x == x:
            pos = x * bins
            b = min(int(pos), bins - 1)
            rank = below[b] + (counts[b] - 1) * (pos - b)
            pull = (2.0 * (phase_sum - live * x + rank) - (live - 1)) / live  # mean of P over the others
            phase[i] = x + dt * (freq[i] + k_hz * pull)
            freq[i] += dt * l_hz * pull
    return 0


@njit(nogil=True, cache=True)
def kuramoto_sparse(sawtooth, phase, freq, dt, k_hz, l_hz, table, scratch):
    """One Euler step of Kuramoto over neighbour lists: each firefly averages H over its row.

    ``scratch[:N]`` must hold the phases the step starts from (neighbours are read from there).
    """
    for i in range(phase.size):
        x = scratch[i]
        if x != x:
            continue
        pull = 0.0
        seen = 0
        for k in range(table.shape[1]):
            j = table[i, k]
            if j < 0 or scratch[j] != scratch[j]:
                continue
            d = scratch[j] - x
            if sawtooth:
                d = d - np.floor(d)
                pull += 0.0 if d == 0.0 else 2.0 * d - 1.0
            else:
                pull += sincos_2pi(d)[0]
            seen += 1
        if seen:
            pull /= seen
        phase[i] = x + dt * (freq[i] + k_hz * pull)
        freq[i] += dt * l_hz * pull
    return 0


@njit(nogil=True, cache=True)
def wrap_and_detect(phase, before, fired, ids, times, n):
    """After a continuous step: wrap phases into [0, 1) and record upward crossings of 1.

    ``before`` holds each phase before the step, for the sub-tick time of the crossing.
    """
    for i in range(phase.size):
        x = phase[i]
        if x >= 1.0:
            wraps = np.floor(x)
            phase[i] = x - wraps
            step = x - before[i]
            ids[n] = i
            times[n] = min(max((wraps - before[i]) / step, 0.0), 1.0) if step > 0.0 else 1.0
            fired[i] = 1
            n += 1
        elif x < 0.0:
            phase[i] = x - np.floor(x)
    return n


@njit(nogil=True, cache=True, inline="always")
def clear_fired(fired, ids, n):
    for k in range(n):
        fired[ids[k]] = 0
    return 0


@njit(nogil=True, cache=True, inline="always")
def rewire(table, key, counter):
    """Redraw each row of ``table`` as random peers other than the row's own firefly."""
    return rewire_rows(table, 0, table.shape[0], key, counter)


@njit(nogil=True, cache=True)
def rewire_rows(table, lo, hi, key, counter):
    """Redraw rows lo..hi-1 of ``table`` as random peers other than the row's own firefly."""
    n = table.shape[0]
    for j in range(lo, hi):
        for k in range(table.shape[1]):
            peer = int(uniform01(key, counter) * (n - 1))
            counter += np.uint64(1)
            table[j, k] = peer + 1 if peer >= j else peer
    return counter


@njit(nogil=True, cache=True)
def fill_uniform(out, key, counter):
    """Fill ``out`` with uniform [0, 1) draws from the counter-based generator; return the counter."""
    for i in range(out.size):
        out[i] = uniform01(key, counter + np.uint64(i))
    return counter + np.uint64(out.size)


@njit(nogil=True, cache=True)
def kuramoto_kick(phase, targets, everyone, amount, sawtooth):
    """An external flash on a continuous model: φ += amount · H(0 - θ), H = sin or the sawtooth.

    A phase kicked past 1 is held just below it, so the next step's crossing flashes it.
    """
    count = phase.size if everyone else targets.size
    for k in range(count):
        i = k if everyone else targets[k]
        x = phase[i]
        if x != x:
            continue
        if sawtooth:
            d = 1.0 - x  # (0 - φ) mod 1
            pull = 0.0 if x == 0.0 else 2.0 * d - 1.0
        else:
            pull = -sincos_2pi(x)[0]
        phase[i] = min(max(x + amount * pull, 0.0), 1.0 - 1e-12)
    return 0


# ---------------------------------------------------------------------------------------------
# One whole tick, and many ticks in a row.  ``codes`` and ``coef`` pack the loop-invariant
# settings so the engine pays one dispatch per tick (see engine.pack()).
C_MODEL, C_PRC, C_DESYNC, C_GLOBAL, C_REWIRE_TICKS = 0, 1, 2, 3, 4
F_W, F_EPS, F_KAPPA, F_MS_B, F_F0, F_FMIN, F_FMAX, F_DT, F_NOISE, F_K_HZ, F_L_HZ, F_DELAY_TICKS = range(12)
M_ZC, M_ZS, M_ADVANCE, M_STALE, M_CARRY, M_RECENT = range(6)  # M_RECENT: flashes a tick, lately (delayed path)
R_KEY, R_COUNTER = 0, 1


@njit(nogil=True, cache=True, inline="always")
def latest(times, start, stop):
    t = 0.0
    for k in range(start, stop):
        t = max(t, times[k])
    return t


@njit(nogil=True, cache=True, inline="always")
def desync_same_tick(phase, freq, ids, times, n, dt, s, prc):
    """De-sync: fireflies that flashed in the same tick still see each other, in sub-tick order.

    Absorption is right for sync but would leave two de-syncing fireflies locked together forever:
    the earlier one sees the later flash just after its own (pushed on), the later one sees the
    earlier flash just before its own (held back).  Pairwise, so only for up to 64 flashes a tick.
    """
    n = min(n, 64)
    for a in range(n):
        i = ids[a]
        shift = 0.0
        for b in range(n):
            if b == a:
                continue
            lag = (times[b] - times[a]) * freq[i] * dt
            if lag == 0.0:
                lag = 1e-9 if ids[b] > i else -1e-9
            shift += s * prc_unit(lag if lag > 0.0 else 1.0 + lag, prc, True)
        phase[i] = min(max(phase[i] + shift, 0.0), 1.0 - 1e-12)
    return 0


# ---------------------------------------------------------------------------------------------
# Delayed deliveries (``swarm.delay_ms`` > 0).  A ring of ``slots`` tick slots over the next ticks;
# each slot is a row of ``dq_to`` (receiver, -1: everyone) and ``dq_t`` (arrival time within its
# tick), filled from the left; ``dq_meta`` = [dropped, the rows' counts...].  A slot's deliveries lie
# side by side, so a burst of 10⁵ of them is read in order rather than chased through a linked
# pool (docs/performance.md).  Queueing allocates nothing; a full row drops the delivery and
# counts it in dq_meta[DQ_DROPPED].
DQ_DROPPED, DQ_SLOTS = 0, 1


@njit(nogil=True, cache=True)
def queue_delivery(dq_meta, dq_to, dq_t, index, receiver, arrival):
    """Queue one delivery arriving ``arrival`` ticks after the start of tick ``index``.

    A ``dq_t`` without columns keeps no arrival times.  The count is stored before the row: the
    other order, with the time's store conditional, ran 2x slower at N = 10⁵ (so did a slot by
    subtraction or by a power-of-two mask instead of the modulo; not understood, measured on AVX2).
    """
    whole = np.floor(arrival)
    slot = (index + int(whole)) % dq_to.shape[0]
    count = dq_meta[DQ_SLOTS + slot]
    if count >= dq_to.shape[1]:
        dq_meta[DQ_DROPPED] += 1
        return
    dq_meta[DQ_SLOTS + slot] = count + 1
    dq_to[slot, count] = receiver
    if dq_t.shape[1] > 0:
        dq_t[slot, count] = arrival - whole


@njit(nogil=True, cache=True)
def queue_flashes(table, ids, times, start, n, delay_ticks, dq_meta, dq_to, dq_t, rng, index):
    """Queue flashes ids[start:n]: one delivery per observer, or one for everyone (global).

    Each delay is uniform in [0, delay_ticks), drawn from the counter-based generator in flash
    order, so a seed gives the same deliveries on every run.
    """
    key, counter = rng[R_KEY], rng[R_COUNTER]
    for q in range(start, n):
        if table.shape[0] == 0:
            queue_delivery(dq_meta, dq_to, dq_t, index, -1, times[q] + delay_ticks * uniform01(key, counter))
            counter += np.uint64(1)
            continue
        j = ids[q]
        for k in range(table.shape[1]):
            if table[j, k] >= 0:
                queue_delivery(dq_meta, dq_to, dq_t, index, table[j, k], times[q] + delay_ticks * uniform01(key, counter))
                counter += np.uint64(1)
    rng[R_COUNTER] = counter


@njit(nogil=True, cache=True)
def deliver_due(
    model,
    prc,
    desync,
    phase,
    freq,
    fired,
    w,
    eps,
    kappa,
    ms_b,
    f0,
    fmin,
    fmax,
    ids,
    times,
    n,
    dq_meta,
    dq_to,
    dq_t,
    index,
    lo,
    sines,
    tabled,
):
    """Apply the deliveries of tick ``index``'s slot from position ``lo`` on, newest first; return the flash count.

    ``tabled`` (Ermentrout only): ``sines`` holds sin 2πφ of every firefly for this tick.  Arrival
    times are read only where they matter: a flash set off, or the latest broadcast.  Ermentrout's
    deliveries never need one, so its rows store none (``dq_t`` without columns).

    Flashes these set off that land in this same tick are queued by the caller after the walk,
    past its end, and walked in turn.  Broadcasts (global) are added into one count and applied
    to everyone at once after the walk, in O(N) as without delays.
    """
    slot = index % dq_to.shape[0]
    broadcasts, latest_t = 0, 0.0
    for e in range(dq_meta[DQ_SLOTS + slot] - 1, lo - 1, -1):
        i = dq_to[slot, e]  # no row views: each would cost a reference count
        if i < 0:
            broadcasts += 1
            if dq_t.shape[1] > 0:
                latest_t = max(latest_t, dq_t[slot, e])
            continue
        if tabled:  # NaN in the table: flashed this tick, or silenced (one load instead of three)
            sn = sines[i]
            if sn == sn:
                freq[i] = ermentrout_freq_at(sn / TWO_PI, freq[i], 1.0, w, eps, f0, fmin, fmax)
            continue
        if fired[i] != 0 or phase[i] != phase[i]:
            continue
        phi, omega = receive(model, prc, desync, phase[i], freq[i], 1.0, w, eps, kappa, ms_b, f0, fmin, fmax)
        freq[i] = omega
        if phi < 1.0:
            phase[i] = phi
            continue
        phase[i] = 0.0
        fired[i] = 1
        ids[n] = i
        times[n] = dq_t[slot, e]
        n += 1
    if broadcasts:
        n = receive_all(
            model, prc, desync, phase, freq, fired, float(broadcasts), w, eps, kappa, ms_b, f0, fmin, fmax, latest_t, ids, times, n
        )
    return n


@njit(nogil=True, cache=True)
def sine_table(phase, fired, sines):
    """sines[i] = sin 2πφᵢ for every firefly, in one vectorised pass; NaN for the silenced and
    for those that flashed this tick, which ignore its deliveries."""
    prefer_512_bit_vectors()
    for i in range(phase.size):
        sn = sincos_2pi(phase[i])[0]
        sines[i] = sn if fired[i] == 0 else np.nan


@njit(nogil=True, cache=True, inline="always")
def _pulse_couple_delayed(codes, coef, phase, freq, fired, table, ids, times, n, state, rng, dq_meta, dq_to, dq_t, sines, index):
    """Queue this tick's flashes, then deliver what is due, queueing the flashes that sets off.

    Ermentrout's deliveries leave phases alone, so the sine each needs is the same all tick long:
    when many are due (a synchronised burst: ~600 a tick at N = 800), one vectorised pass over
    every phase into ``sines`` is cheaper than a sine per delivery, each a chain of ~70 cycles.
    Same values, bit for bit, either way; ``state[M_RECENT]`` (flashes a tick over the last ~32
    ticks, times the observers per flash) estimates how many are due, without counting them.
    """
    model, prc, desync = codes[C_MODEL], codes[C_PRC], codes[C_DESYNC] != 0
    w, eps, kappa, ms_b = coef[F_W], coef[F_EPS], coef[F_KAPPA], coef[F_MS_B]
    f0, fmin, fmax, delay_ticks = coef[F_F0], coef[F_FMIN], coef[F_FMAX], coef[F_DELAY_TICKS]
    if n:  # most ticks of a synchronised swarm: no call (its ~80 arguments, arrays passed field by field)
        queue_flashes(table, ids, times, 0, n, delay_ticks, dq_meta, dq_to, dq_t, rng, index)
    head = DQ_SLOTS + index % dq_to.shape[0]
    recent = state[M_RECENT] + (n - state[M_RECENT]) * (1.0 / 32.0)  # flashes a tick, lately
    state[M_RECENT] = recent
    observers = table.shape[1] if table.shape[0] else 1
    tabled = model == ERMENTROUT and dq_meta[head] > 0 and 8.0 * recent * observers >= phase.size
    if tabled:
        sine_table(phase, fired, sines)
    walked = 0
    while dq_meta[head] > walked:
        start, end = n, dq_meta[head]
        n = deliver_due(
            model,
            prc,
            desync,
            phase,
            freq,
            fired,
            w,
            eps,
            kappa,
            ms_b,
            f0,
            fmin,
            fmax,
            ids,
            times,
            n,
            dq_meta,
            dq_to,
            dq_t,
            index,
            walked,
            sines,
            tabled,
        )
        walked = end
        if n > start:
            queue_flashes(table, ids, times, start, n, delay_ticks, dq_meta, dq_to, dq_t, rng, index)
    dq_meta[head] = 0  # the slot is free for the tick ``slots`` from now
    return n


@njit(nogil=True, cache=True, inline="always")
def _pulse_couple(codes, coef, phase, freq, fired, table, ids, times, state, n):
    model, prc, desync = codes[C_MODEL], codes[C_PRC], codes[C_DESYNC] != 0
    w, eps, kappa, ms_b = coef[F_W], coef[F_EPS], coef[F_KAPPA], coef[F_MS_B]
    f0, fmin, fmax = coef[F_F0], coef[F_FMIN], coef[F_FMAX]
    if desync and model == PULSE and n > 1:
        desync_same_tick(phase, freq, ids, times, n, coef[F_DT], w * eps, prc)
    if codes[C_GLOBAL] == 0:
        return deliver_sparse(model, prc, desync, phase, freq, fired, table, w, eps, kappa, ms_b, f0, fmin, fmax, ids, times, 0, n)
    start = 0
    carry = state[M_CARRY]
    state[M_CARRY] = 0.0
    for _ in range(64):
        m = n - start + carry
        if m == 0:
            return n
        t = latest(times, start, n)
        stop = n
        n = receive_all(model, prc, desync, phase, freq, fired, float(m), w, eps, kappa, ms_b, f0, fmin, fmax, t, ids, times, n)
        start, carry = stop, 0.0
    state[M_CARRY] = n - start  # a cascade longer than 64 passes goes on next tick
    return n


@njit(nogil=True, cache=True)
def _kuramoto_step(codes, coef, phase, freq, fired, table, ids, times, hist, below, scratch, state, sweep):
    dt, k_hz, l_hz = coef[F_DT], coef[F_K_HZ], coef[F_L_HZ]
    sawtooth = codes[C_PRC] == SAWTOOTH
    if codes[C_GLOBAL] != 0 and not sawtooth:
        if state[M_STALE] != 0.0:
            c, s, _, live = mean_field(phase)
            zc, zs = (c / live, s / live) if live else (0.0, 0.0)
            state[M_STALE] = 0.0
        else:  # carried forward from the last step, rotated by the mean advance since (engine doc)
            sn, cs = sincos_2pi(state[M_ADVANCE])
            zc = state[M_ZC] * cs - state[M_ZS] * sn
            zs = state[M_ZC] * sn + state[M_ZS] * cs
        c, s, adv, live, n = kuramoto_sine(phase, freq, dt, k_hz, l_hz, zc, zs, scratch, fired, ids, times, sweep)
        if live:
            state[M_ZC], state[M_ZS], state[M_ADVANCE] = c / live, s / live, adv / live
        return n
    scratch[: phase.size] = phase
    if codes[C_GLOBAL] != 0:
        total, live = phase_histogram(phase, hist)
        if live:
            kuramoto_sawtooth(phase, freq, dt, k_hz, l_hz, hist, below, total, live)
    else:
        kuramoto_sparse(sawtooth, phase, freq, dt, k_hz, l_hz, table, scratch)
    return wrap_and_detect(phase, scratch, fired, ids, times, 0)


@njit(nogil=True, cache=True, inline="always")
def wander(codes, coef, phase, table, state, rng, index):
    """What changes a swarm apart from coupling, at the start of a tick: new peers and noise.

    Peers are redrawn a slice of rows a tick, so that every row is new once per ``rewire_ticks``:
    the peer lists change continuously, as the views of NEWSCAST (the overlay in Babaoglu et al.)
    do.  Redrawing all of them in one tick cost 10-19 ms at N = 10⁵ with 30 peers: a dozen
    skipped ticks every second in the daemon.
    """
    rewire_ticks = codes[C_REWIRE_TICKS]
    if rewire_ticks > 0 and index > 0:
        part, rows = index % rewire_ticks, table.shape[0]
        lo, hi = rows * part // rewire_ticks, rows * (part + 1) // rewire_ticks
        if hi > lo:
            rng[R_COUNTER] = rewire_rows(table, lo, hi, rng[R_KEY], rng[R_COUNTER])
    if coef[F_NOISE] > 0.0:
        rng[R_COUNTER] = add_noise(phase, coef[F_NOISE] * np.sqrt(coef[F_DT]), rng[R_KEY], rng[R_COUNTER])
        state[M_STALE] = 1.0


@njit(nogil=True, cache=True, inline="always")
def tick(codes, coef, phase, freq, fired, table, ids, times, hist, below, scratch, state, rng, sweep, index, prev_n, external_n):
    """Everything one tick does, in order; returns the number of flashes in ids/times.

    ``prev_n`` flashes of the last tick are un-marked first; ``external_n`` > 0 means the engine
    already applied external flashes into ids/times[:external_n] this tick (pulse-type models).
    Instant coupling only (``swarm.delay_ms`` = 0): delays go through ``tick_delayed``.
    """
    phase, freq, fired, table, ids, times = borrowed(phase, freq, fired, table, ids, times)
    codes, coef, state, rng, hist, below, scratch, sweep = borrowed(codes, coef, state, rng, hist, below, scratch, sweep)
    clear_fired(fired, ids, prev_n)
    wander(codes, coef, phase, table, state, rng, index)
    if codes[C_MODEL] == KURAMOTO:
        return _kuramoto_step(codes, coef, phase, freq, fired, table, ids, times, hist, below, scratch, state, sweep)
    n = advance(phase, freq, coef[F_DT], fired, ids, times, external_n)
    return _pulse_couple(codes, coef, phase, freq, fired, table, ids, times, state, n)


@njit(nogil=True, cache=True, inline="always")
def tick_delayed(codes, coef, phase, freq, fired, table, ids, times, state, rng, dq_meta, dq_to, dq_t, sines, index, prev_n, external_n):
    """``tick`` for a pulse-type model with ``swarm.delay_ms`` > 0: flashes go through the delivery pool.

    The engine picks this or ``tick`` once per call, so the instant path carries neither the pool
    nor a branch on the delay (kuramoto never has delays: its coef[F_DELAY_TICKS] is 0).
    """
    phase, freq, fired, table, ids, times = borrowed(phase, freq, fired, table, ids, times)
    codes, coef, state, rng, dq_meta, dq_to, dq_t, sines = borrowed(codes, coef, state, rng, dq_meta, dq_to, dq_t, sines)
    clear_fired(fired, ids, prev_n)
    wander(codes, coef, phase, table, state, rng, index)
    n = advance(phase, freq, coef[F_DT], fired, ids, times, external_n)
    return _pulse_couple_delayed(codes, coef, phase, freq, fired, table, ids, times, n, state, rng, dq_meta, dq_to, dq_t, sines, index)


@njit(nogil=True, cache=True)
def run(
    ticks,
    first_index,
    prev_n,
    codes,
    coef,
    phase,
    freq,
    fired,
    table,
    ids,
    times,
    hist,
    below,
    scratch,
    state,
    rng,
    sweep,
    sample_every,
    sample_phase,
    samples,
    counts,
    raster_stride,
    raster_t,
    raster_id,
    raster_n,
):
    """``ticks`` ticks in a row, recording as it goes (the offline path: simulate, render, tune).

    The tick is inlined here, so a tick costs no kernel frames.  Every ``sample_every`` ticks
    (none when 0), counting ``sample_phase`` ticks already recorded before this call, a row
    (r, Σφ, live, flashes so far in this call) goes to ``samples``; each tick's flash count to
    ``counts``; flashes of fireflies whose id is a multiple of ``raster_stride`` to
    raster_t/raster_id while they have room (raster_n[0] counts them).
    Returns (the last tick's flash count, the flashes of all these ticks).
    Instant coupling only: with delays the engine calls ``run_delayed``.
    """
    phase, freq, fired, table, ids, times = borrowed(phase, freq, fired, table, ids, times)
    codes, coef, state, rng, hist, below, scratch, sweep = borrowed(codes, coef, state, rng, hist, below, scratch, sweep)
    n = prev_n
    total = 0
    dt = coef[F_DT]
    row = 0
    for k in range(ticks):
        index = first_index + k
        n = tick(codes, coef, phase, freq, fired, table, ids, times, hist, below, scratch, state, rng, sweep, index, n, 0)
        counts[k] = n
        total += n
        if raster_stride > 0:
            for q in range(n):
                if ids[q] % raster_stride == 0 and raster_n[0] < raster_t.size:
                    raster_t[raster_n[0]] = (index + times[q]) * dt
                    raster_id[raster_n[0]] = ids[q]
                    raster_n[0] += 1
        if sample_every > 0 and (sample_phase + k + 1) % sample_every == 0:
            c, s, phase_sum, live = mean_field(phase)
            samples[row, 0] = np.hypot(c, s) / live if live else 0.0
            samples[row, 1] = phase_sum
            samples[row, 2] = live
            samples[row, 3] = total
            row += 1
    return n, total


@njit(nogil=True, cache=True)
def run_delayed(
    ticks,
    first_index,
    prev_n,
    codes,
    coef,
    phase,
    freq,
    fired,
    table,
    ids,
    times,
    state,
    rng,
    dq_meta,
    dq_to,
    dq_t,
    sines,
    sample_every,
    sample_phase,
    samples,
    counts,
    raster_stride,
    raster_t,
    raster_id,
    raster_n,
):
    """``run`` with ``tick_delayed``: a pulse-type model with ``swarm.delay_ms`` > 0.

    Its recording is written out again rather than shared with ``run`` through an inlined helper:
    that helper, doing the same work, made numba's instant loop 16% slower (measured), and the
    instant loop is the one that must not pay for delays.
    """
    prefer_512_bit_vectors()  # ermentrout-800: 0.415 -> 0.398 µs a tick (A/B, 3 rounds); run() stays 256-bit (pulse N = 800 lost)
    phase, freq, fired, table, ids, times = borrowed(phase, freq, fired, table, ids, times)
    codes, coef, state, rng, dq_meta, dq_to, dq_t, sines = borrowed(codes, coef, state, rng, dq_meta, dq_to, dq_t, sines)
    n = prev_n
    total = 0
    dt = coef[F_DT]
    row = 0
    for k in range(ticks):
        index = first_index + k
        n = tick_delayed(codes, coef, phase, freq, fired, table, ids, times, state, rng, dq_meta, dq_to, dq_t, sines, index, n, 0)
        counts[k] = n
        total += n
        if raster_stride > 0:
            for q in range(n):
                if ids[q] % raster_stride == 0 and raster_n[0] < raster_t.size:
                    raster_t[raster_n[0]] = (index + times[q]) * dt
                    raster_id[raster_n[0]] = ids[q]
                    raster_n[0] += 1
        if sample_every > 0 and (sample_phase + k + 1) % sample_every == 0:
            c, s, phase_sum, live = mean_field(phase)
            samples[row, 0] = np.hypot(c, s) / live if live else 0.0
            samples[row, 1] = phase_sum
            samples[row, 2] = live
            samples[row, 3] = total
            row += 1
    return n, total
