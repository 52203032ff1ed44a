"""PresetPicker: pick a preset to load, or type a name to save the current parameters as one."""

from __future__ import annotations

import re
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


class PresetPicker(ModalScreen[tuple[str, str] | None]):
    """Dismisses with ("load", name), ("save", name) or None (escape)."""

    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "cancel", "cancel")]

    def __init__(self, names: list[str], current: str = "", save: bool = False):
        super().__init__()
        self.names, self.current, self.save = names, current, save

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Static("load a preset (enter):")
            yield OptionList(*(Option(name, id=name) for name in self.names), id="preset-list")
            yield Static("save the current parameters as (enter):")
            yield Input(value=self.current, placeholder="preset name", id="preset-name")
            yield Static(id="preset-error")

    def on_mount(self) -> None:
        self.query_one("#picker").border_title = "presets"
        options = self.query_one(OptionList)
        if self.current in self.names:
            options.highlighted = self.names.index(self.current)
        (self.query_one(Input) if self.save or not self.names else options).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(("load", str(event.option.id)))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        name = event.value.strip()
        if not NAME.fullmatch(name):
            self.query_one("#preset-error", Static).update("a name of letters, digits, '-', '_' or '.', starting with a letter or digit")
            return
        self.dismiss(("save", name))

    def action_cancel(self) -> None:
        self.dismiss(None)
