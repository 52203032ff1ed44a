"""A widget that draws a snapshot with the Line API and keeps the strips until the snapshot or size changes."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.style import Style
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from firefly_midi.tui.widgets.braille import text_of


class Canvas(Widget):
    """Holds one immutable ``view`` (reactive); subclasses give ``draw(view, cols, rows, base) -> strips``.

    Drawing happens at most once per (view, size) and only when the compositor asks for lines, so a
    burst of views between two repaints costs one drawing.
    """

    DEFAULT_CSS: ClassVar[str] = "Canvas { height: 1fr; width: 1fr; }"
    view: reactive[Any] = reactive(None, layout=False)

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None):
        super().__init__(name=name, id=id, classes=classes)
        self._strips: list[Strip] = []
        self._key: tuple[int, int, int] | None = None

    def draw(self, view: Any, cols: int, rows: int, base: Style) -> list[Strip]:
        raise NotImplementedError

    def watch_view(self, view: Any) -> None:
        self._key = None

    def strips(self) -> list[Strip]:
        cols, rows = self.size
        key = (id(self.view), cols, rows)
        if key != self._key:
            self._strips = [] if self.view is None or cols < 2 or rows < 2 else self.draw(self.view, cols, rows, self.rich_style)
            self._key = key
        return self._strips

    def lines(self) -> list[str]:
        """The current picture as plain text."""
        return text_of(self.strips())

    def render_line(self, y: int) -> Strip:
        strips = self.strips()
        if y < len(strips):
            return strips[y]
        return Strip.blank(self.size.width, self.rich_style)
