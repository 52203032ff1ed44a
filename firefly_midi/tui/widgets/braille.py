"""Braille canvases in numpy: a boolean pixel mask of (4·rows, 2·cols) becomes rows of braille text.

Each terminal cell holds a 2×4 block of dots (U+2800..U+28FF), so a 60×20 cell widget shows 120×80
pixels.  Everything is array arithmetic: a canvas with thousands of dots costs a few numpy calls,
never a Python object per dot.  Layers share one grid of cells; a cell takes the style of the first
layer that has a dot in it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

# Bit of each dot in a cell, indexed [row 0..3, column 0..1] (the Unicode braille layout).
BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.uint8)
BLANK = 0x2800


def new_mask(cols: int, rows: int) -> np.ndarray:
    """An empty pixel mask for a canvas of ``cols`` × ``rows`` cells."""
    return np.zeros((4 * rows, 2 * cols), dtype=bool)


def plot(mask: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Set the pixels at (x, y) (rounded; those outside are dropped) and return the mask."""
    xi = np.rint(x).astype(np.int64)
    yi = np.rint(y).astype(np.int64)
    inside = (xi >= 0) & (xi < mask.shape[1]) & (yi >= 0) & (yi < mask.shape[0])
    mask[yi[inside], xi[inside]] = True
    return mask


def cell_bits(mask: np.ndarray) -> np.ndarray:
    """The (rows, cols) braille bit patterns of a (4·rows, 2·cols) mask."""
    rows, cols = mask.shape[0] // 4, mask.shape[1] // 2
    blocks = mask[: 4 * rows, : 2 * cols].reshape(rows, 4, cols, 2)
    return (blocks * BITS[None, :, None, :]).sum(axis=(1, 3), dtype=np.uint8)


def to_text(bits: np.ndarray) -> list[str]:
    """Rows of braille text for (rows, cols) bit patterns; empty cells become spaces."""
    codes = bits.astype("<u4") + BLANK
    codes[bits == 0] = 0x20
    return [row.tobytes().decode("utf-32-le") for row in np.ascontiguousarray(codes)]


def layered_strips(layers: Sequence[tuple[np.ndarray, Style]], cols: int, rows: int, base: Style | None = None) -> list[Strip]:
    """Strips for masks drawn on top of each other: the first layer that has a dot in a cell styles it."""
    bits = np.zeros((rows, cols), dtype=np.uint8)
    owner = np.zeros((rows, cols), dtype=np.int8)
    for index in range(len(layers) - 1, -1, -1):
        layer = cell_bits(layers[index][0])
        bits |= layer
        owner[layer != 0] = index + 1
    base = base or Style()
    styles = [base, *(base + style for _, style in layers)]
    return styled_strips(to_text(bits), owner, styles, cols)


def styled_strips(lines: list[str], owner: np.ndarray, styles: Sequence[Style], width: int) -> list[Strip]:
    """Strips of ``lines`` whose cell ``[y, x]`` takes ``styles[owner[y, x]]``, one segment per run."""
    strips = []
    for y, text in enumerate(lines):
        row = owner[y]
        cuts = (np.flatnonzero(row[1:] != row[:-1]) + 1).tolist()
        starts = [0, *cuts]
        ends = [*cuts, len(text)]
        kinds = row[starts].tolist()
        strips.append(Strip([Segment(text[a:b], styles[k]) for a, b, k in zip(starts, ends, kinds, strict=True)], width))
    return strips


def text_of(strips: Sequence[Strip]) -> list[str]:
    """The plain text of strips (tests and benchmarks read it)."""
    return [strip.text for strip in strips]


def dot_count(lines: Sequence[str]) -> int:
    """How many braille dots are set in ``lines``."""
    total = 0
    for line in lines:
        codes = np.frombuffer(line.encode("utf-32-le"), dtype="<u4")
        braille = codes[(codes >= BLANK) & (codes <= BLANK + 0xFF)] - BLANK
        total += int(np.unpackbits(braille.astype(np.uint8)).sum())
    return total
