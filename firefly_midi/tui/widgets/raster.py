"""Raster: the flash raster, firefly id (top to bottom) against time (scrolling to the left)."""

from __future__ import annotations

import numpy as np
from rich.style import Style
from textual.strip import Strip

from firefly_midi.tui.model import RasterView
from firefly_midi.tui.widgets import braille
from firefly_midi.tui.widgets.canvas import Canvas

FLASH = Style(color="#f0d050")


def fit_axis(image: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Resize a boolean image along ``axis`` to ``size``: OR over groups when shrinking, spread out when growing."""
    length = image.shape[axis]
    if length == size:
        return image
    if length > size:
        starts = np.arange(size) * length // size
        return np.logical_or.reduceat(image, starts, axis=axis)
    shape = list(image.shape)
    shape[axis] = size
    out = np.zeros(shape, dtype=bool)
    index = [slice(None)] * image.ndim
    index[axis] = np.arange(length) * size // length
    out[tuple(index)] = image
    return out


def draw_raster(view: RasterView, cols: int, rows: int, base: Style | None = None) -> list[Strip]:
    mask = fit_axis(fit_axis(view.image, 1, 2 * cols), 0, 4 * rows)
    return braille.layered_strips([(mask, FLASH)], cols, rows, base)


class Raster(Canvas):
    """Holds a ``RasterView`` in ``view``; draws it with ``draw_raster``."""

    def draw(self, view: RasterView, cols: int, rows: int, base: Style) -> list[Strip]:
        return draw_raster(view, cols, rows, base)

    def watch_view(self, view: RasterView | None) -> None:
        super().watch_view(view)
        if view is not None:
            per_row = max(1, -(-view.n // max(1, 4 * self.size.height)))
            self.border_subtitle = f"last {view.window_s:g} s · {per_row} id{'s' if per_row > 1 else ''} per dot row"
