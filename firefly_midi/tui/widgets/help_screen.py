"""HelpScreen: the keys, read from the app's bindings (no second list)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

# What the status panel's numbers mean, for a musician reading them for the first time.
LEGEND = (
    ("midi", "the MIDI ports: red when nothing can be heard (no port open, or the MIDI server is away)"),
    ("r", "synchrony: 0 = flashes scattered over the cycle, 1 = all flash together"),
    ("tempo", "flashes a second × 60, as the swarm plays now; nominal: the preset's; drift: the difference"),
    ("notes", "notes the swarm played; unsent: MIDI messages played while no port was open (nobody heard them)"),
    ("input", "incoming notes taken as flashes; dropped: past the per-tick cap (a flood)"),
    ("lateness", "how late the ticks started in the last 5 s or so; under a tick (1 ms) the timing is tight"),
    ("ticks", "ticks the clock missed (the machine was busy), stepped silently to keep time; run p99: lateness since start"),
    ("frames", "pictures sent to this screen; dropped ones only thin the picture, never the music"),
)

KEY_NAMES = {"question_mark": "?", "exclamation_mark": "!", "escape": "esc", "enter": "enter", "tab": "tab"}


def key_label(keys: str) -> str:
    return " / ".join(KEY_NAMES.get(k.strip(), k.strip()) for k in keys.split(","))


class HelpScreen(ModalScreen[None]):
    """Lists ``bindings`` (key, what it does); any of escape, ? or q closes it."""

    BINDINGS: ClassVar[list[Binding]] = [Binding("escape,question_mark,q", "dismiss", "close")]

    def __init__(self, bindings: Iterable[Binding], extra: Iterable[tuple[str, str]] = ()):
        super().__init__()
        self.rows = [(key_label(b.key), b.description) for b in bindings if b.description] + list(extra)
        self.legend = list(LEGEND)

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold yellow", no_wrap=True)
        table.add_column()
        for key, text in self.rows:
            table.add_row(key, text)
        legend = Table.grid(padding=(0, 2))
        legend.add_column(style="bold cyan", no_wrap=True)
        legend.add_column()
        for name, text in self.legend:
            legend.add_row(name, text)
        with Vertical(id="help"):
            yield Static(table)
            yield Static("\n[b]what the numbers say[/b]")
            yield Static(legend)
            yield Static("[dim]escape, ? or q closes this[/dim]")

    def on_mount(self) -> None:
        self.query_one("#help").border_title = "keys"

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
