"""Plot: one quantity over time as a braille line, with an optional dashed reference (the nominal tempo)."""

from __future__ import annotations

import numpy as np
from rich.style import Style
from textual.strip import Strip

from firefly_midi.tui.model import SeriesView
from firefly_midi.tui.widgets import braille
from firefly_midi.tui.widgets.canvas import Canvas

LINE = Style(color="#7fd4ff")
REFERENCE = Style(color="#6a6a6a")


def value_range(view: SeriesView) -> tuple[float, float]:
    lo = view.lo if view.lo is not None else float(view.y.min()) if view.y.size else 0.0
    hi = view.hi if view.hi is not None else float(view.y.max()) if view.y.size else 1.0
    if view.reference is not None and view.lo is None:
        lo, hi = min(lo, view.reference), max(hi, view.reference)
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    elif view.lo is None:
        pad = 0.08 * (hi - lo)
        lo, hi = lo - pad, hi + pad
    return lo, hi


def draw_plot(view: SeriesView, cols: int, rows: int, base: Style | None = None) -> list[Strip]:
    width, height = 2 * cols, 4 * rows
    lo, hi = value_range(view)
    line = braille.new_mask(cols, rows)
    if view.y.size:
        x = ((view.t - (view.end_s - view.window_s)) / view.window_s * (width - 1)).astype(np.int64).clip(0, width - 1)
        y = np.rint((hi - np.clip(view.y, lo, hi)) / (hi - lo) * (height - 1)).astype(np.int64)
        starts = np.flatnonzero(np.r_[True, x[1:] != x[:-1]])
        top = np.minimum.reduceat(y, starts)
        bottom = np.maximum.reduceat(y, starts)
        last = y[np.r_[starts[1:] - 1, y.size - 1]]
        before = np.r_[last[0], last[:-1]]  # join each column to the previous one
        top, bottom = np.minimum(top, before), np.maximum(bottom, before)
        pixel_rows = np.arange(height)[:, None]
        line[:, x[starts]] = (pixel_rows >= top[None, :]) & (pixel_rows <= bottom[None, :])
    reference = braille.new_mask(cols, rows)
    if view.reference is not None and lo <= view.reference <= hi:
        row = round((hi - view.reference) / (hi - lo) * (height - 1))
        reference[row, 0::3] = True
    return braille.layered_strips([(line, LINE), (reference, REFERENCE)], cols, rows, base)


class Plot(Canvas):
    """Holds a ``SeriesView`` in ``view``; the border title shows ``label`` and the latest value."""

    def __init__(self, label: str, unit: str = "", digits: int = 3, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.label, self.unit, self.digits = label, unit, digits
        self.border_title = label

    def draw(self, view: SeriesView, cols: int, rows: int, base: Style) -> list[Strip]:
        return draw_plot(view, cols, rows, base)

    def watch_view(self, view: SeriesView | None) -> None:
        super().watch_view(view)
        if view is None or view.last is None:
            self.border_title = self.label
            return
        title = f"{self.label} {view.last:.{self.digits}f}{self.unit}"
        if view.reference is not None:
            title += f" · nominal {view.reference:.{self.digits}f} · drift {view.last - view.reference:+.{self.digits}f}"
        self.border_title = title
