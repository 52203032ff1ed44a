"""GridView: a grid topology drawn as its lattice, each cell's brightness its phase.

Two lattice cells per terminal cell (the upper half block ▀ in the top cell's colour over the bottom
cell's colour), so cells stay square.  A cell glows just after its firefly flashes and fades through
the cycle, so waves of flashes show as bright fronts.  The lattice is scaled to fit (nearest cell) by
an index gather in numpy; styles come from a small cache of quantised colours.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from firefly_midi.tui.model import PhaseView
from firefly_midi.tui.widgets.canvas import Canvas

LEVELS = 16
DEAD = LEVELS  # a silenced firefly
EMPTY = LEVELS + 1  # outside the lattice
KINDS = LEVELS + 2
DIM = (16, 18, 10)
BRIGHT = (245, 250, 120)
DEAD_RGB = (70, 24, 24)


def _rgb(level: int) -> Color | None:
    if level == EMPTY:
        return None
    if level == DEAD:
        return Color.from_rgb(*DEAD_RGB)
    u = level / (LEVELS - 1)
    return Color.from_rgb(*(round(a + (b - a) * u) for a, b in zip(DIM, BRIGHT, strict=True)))


@lru_cache(maxsize=KINDS * KINDS)
def _cell(pair: int) -> tuple[str, Style]:
    top, bottom = divmod(pair, KINDS)
    if top == EMPTY and bottom == EMPTY:
        return " ", Style()
    if top == EMPTY:
        return "▄", Style(color=_rgb(bottom))
    return "▀", Style(color=_rgb(top), bgcolor=_rgb(bottom))


def levels(phase: np.ndarray) -> np.ndarray:
    """Brightness level 0..LEVELS-1 of each phase (bright just after the flash), DEAD for NaN."""
    glow = (1.0 - np.nan_to_num(phase, nan=0.0)) ** 2
    out = np.rint(glow * (LEVELS - 1)).astype(np.int64)
    out[np.isnan(phase)] = DEAD
    return out


def draw_grid(view: PhaseView, cols: int, rows: int, base: Style | None = None) -> list[Strip]:
    base = base or Style()
    lat_rows, lat_cols = view.grid or (1, view.phase.size)
    lattice = np.full(lat_rows * lat_cols, np.nan, dtype=np.float32)
    count = min(lattice.size, view.phase.size)
    lattice[:count] = view.phase[:count]
    lattice = lattice.reshape(lat_rows, lat_cols)
    scale = min(cols / lat_cols, 2 * rows / lat_rows)
    width = max(1, min(cols, round(lat_cols * scale)))
    height = max(1, min(2 * rows, round(lat_rows * scale)))
    picked = lattice[(np.arange(height) * lat_rows // height)[:, None], (np.arange(width) * lat_cols // width)[None, :]]
    image = np.full((2 * rows, cols), EMPTY, dtype=np.int64)
    top, left = (2 * rows - height) // 2 // 2 * 2, (cols - width) // 2
    image[top : top + height, left : left + width] = levels(picked)
    pairs = image[0::2] * KINDS + image[1::2]
    strips = []
    for row in pairs:
        cuts = (np.flatnonzero(row[1:] != row[:-1]) + 1).tolist()
        starts = [0, *cuts]
        ends = [*cuts, cols]
        segments = []
        for a, b, pair in zip(starts, ends, row[starts].tolist(), strict=True):
            char, style = _cell(pair)
            segments.append(Segment(char * (b - a), base + style))
        strips.append(Strip(segments, cols))
    return strips


class GridView(Canvas):
    """Holds a ``PhaseView`` with a grid in ``view``; draws it with ``draw_grid``."""

    def draw(self, view: PhaseView, cols: int, rows: int, base: Style) -> list[Strip]:
        return draw_grid(view, cols, rows, base)
