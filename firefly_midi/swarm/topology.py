"""Neighbour tables: who sees whose flashes.

A table is an int32 array of shape (N, k): row j lists the fireflies that see firefly j's flash
(for the symmetric ring and grid that is also whom j watches), padded with -1.  ``global`` has no
table: the engine couples through one aggregate count instead, in O(N).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from firefly_midi.swarm import kernels


def ring(n: int, k: int) -> np.ndarray:
    """Each firefly sees its k nearest on a ring: k//2 on each side, one more ahead when k is odd."""
    k = min(k, n - 1)
    offsets = [o for d in range(1, k // 2 + 1) for o in (-d, d)]
    if k % 2:
        offsets.append(k // 2 + 1)
    ids = np.arange(n)[:, None]
    return ((ids + np.array(offsets, dtype=np.int64)[None, :]) % n).astype(np.int32)


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, columns) of the most square lattice holding n fireflies; the last row may be short."""
    cols = max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def grid_offsets(radius: int) -> list[tuple[int, int]]:
    return [
        (dy, dx)
        for dy in range(-radius, radius + 1)
        for dx in range(-radius, radius + 1)
        if (dy or dx) and dy * dy + dx * dx <= radius * radius
    ]


def grid(n: int, radius: int) -> np.ndarray:
    """Each firefly sees those within ``radius`` cells on a square lattice, without wrap-around."""
    rows, cols = grid_shape(n)
    offsets = grid_offsets(radius)
    ids = np.arange(n)
    y, x = ids // cols, ids % cols
    table = np.full((n, len(offsets)), -1, dtype=np.int32)
    for k, (dy, dx) in enumerate(offsets):
        ny, nx = y + dy, x + dx
        peer = ny * cols + nx
        ok = (ny >= 0) & (ny < rows) & (nx >= 0) & (nx < cols) & (peer < n)
        table[ok, k] = peer[ok]
    return table


def grid_region(n: int, row: float, col: float, radius: float) -> np.ndarray:
    """Ids of the fireflies within ``radius`` cells of (row, col): a region for inject or damage."""
    _rows, cols = grid_shape(n)
    ids = np.arange(n)
    dist2 = (ids // cols - row) ** 2 + (ids % cols - col) ** 2
    return ids[dist2 <= radius * radius].astype(np.int64)


def grid_distance(n: int, row: float, col: float) -> np.ndarray:
    """Distance of every firefly from (row, col), in cells."""
    _, cols = grid_shape(n)
    ids = np.arange(n)
    return np.hypot(ids // cols - row, ids % cols - col)


def random_peers(n: int, k: int, key: np.uint64, counter: np.uint64, rewire: Callable = kernels.rewire) -> tuple[np.ndarray, np.uint64]:
    """Each flash seen by k peers drawn at random (with replacement, never oneself); ``rewire``
    draws them (the kernel, or its numpy twin while the kernels compile)."""
    table = np.empty((n, min(k, n - 1)), dtype=np.int32)
    if n > 1:
        counter = rewire(table, key, counter)
    return table, counter


def build(
    name: str, n: int, k: int, key: np.uint64, counter: np.uint64, rewire: Callable = kernels.rewire
) -> tuple[np.ndarray | None, np.uint64]:
    """The neighbour table for topology ``name`` (None for global) and the advanced RNG counter."""
    if name == "global" or n < 2:
        return None, counter
    if name == "ring":
        return ring(n, k), counter
    if name == "grid":
        return grid(n, k), counter
    return random_peers(n, k, key, counter, rewire)


def in_degree(table: np.ndarray | None, n: int) -> float:
    """How many fireflies a typical one observes: the divisor of normalised coupling."""
    if table is None:
        return float(max(n - 1, 1))
    return float(max(np.count_nonzero(table >= 0) / n, 1.0))
