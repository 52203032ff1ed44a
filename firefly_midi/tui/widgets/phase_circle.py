"""PhaseCircle: every shown firefly a braille dot at the angle of its phase, r as a needle in the middle."""

from __future__ import annotations

import math

import numpy as np
from rich.style import Style
from textual.strip import Strip

from firefly_midi.tui.model import PhaseView
from firefly_midi.tui.widgets import braille
from firefly_midi.tui.widgets.canvas import Canvas

GOLDEN = 0.6180339887498949
JUST_FLASHED = 0.06  # phases below this are drawn bright: the fireflies that flashed a moment ago

HOT = Style(color="#fff7c2", bold=True)
DOT = Style(color="#e0b43c")
GUIDE = Style(color="#5a5a5a")


def draw_phase_circle(view: PhaseView, cols: int, rows: int, base: Style | None = None) -> list[Strip]:
    """Phase 0 at the top, increasing clockwise.  Each firefly keeps its own radius (from its id) inside
    a ring, so fireflies with equal phases form a spoke rather than one dot: a synchronised swarm is a
    line, a spread one a filled ring."""
    width, height = 2 * cols, 4 * rows
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    radius = max(2.0, min(width, height) / 2.0 - 1.0)
    live = ~np.isnan(view.phase)
    phase = view.phase[live].astype(np.float64)
    ids = view.ids[live]
    rho = radius * (0.55 + 0.40 * ((ids * GOLDEN) % 1.0))
    angle = 2.0 * np.pi * phase
    x = cx + rho * np.sin(angle)
    y = cy - rho * np.cos(angle)
    hot = phase < JUST_FLASHED
    hot_mask = braille.plot(braille.new_mask(cols, rows), x[hot], y[hot])
    dot_mask = braille.plot(braille.new_mask(cols, rows), x[~hot], y[~hot])

    guide = braille.new_mask(cols, rows)
    around = np.linspace(0.0, 2.0 * np.pi, max(32, int(2.0 * np.pi * radius * 1.5)), endpoint=False)
    braille.plot(guide, cx + radius * np.sin(around), cy - radius * np.cos(around))
    needle = min(1.0, max(0.0, view.order_parameter)) * radius * 0.5
    mean = 2.0 * math.pi * view.mean_phase
    steps = np.linspace(0.0, needle, max(2, int(needle) + 2))
    braille.plot(guide, cx + steps * math.sin(mean), cy - steps * math.cos(mean))
    return braille.layered_strips([(hot_mask, HOT), (dot_mask, DOT), (guide, GUIDE)], cols, rows, base)


class PhaseCircle(Canvas):
    """Holds a ``PhaseView`` in ``view``; draws it with ``draw_phase_circle``."""

    def draw(self, view: PhaseView, cols: int, rows: int, base: Style) -> list[Strip]:
        return draw_phase_circle(view, cols, rows, base)
