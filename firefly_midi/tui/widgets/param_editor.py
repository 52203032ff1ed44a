"""ParamEditor: every parameter of the one table, grouped by preset table, with a value field.

The rows come from ``params.PARAMS`` (no key is listed here).  Enter (or a click) on a row puts its
value in the field; every keystroke is checked with ``params.check`` so a bad value is named at once
(with the allowed range); Enter sends a ``SetRequested`` message only for a value that passes.  The
app sends ``set`` and puts the daemon's reply, value or error, back into ``values`` / ``error``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.suggester import SuggestFromList
from textual.widgets import DataTable, Input, Static

from firefly_midi.params import PARAMS, Param, ParamError, check, plain


def show(param: Param, value: Any) -> str:
    """A value as the text the field accepts back."""
    if value is None:
        return ""
    if param.kind == "bool":
        return "true" if value else "false"
    if param.kind == "intlist":
        return ", ".join(str(v) for v in value)
    if param.kind in ("ramps", "bindings"):
        return json.dumps(plain(value))
    if param.kind == "float":
        return f"{value:g}" if isinstance(value, int | float) else str(value)
    return str(value)


def parse(key: str, text: str) -> Any:
    """The checked value of ``text`` for ``key`` (JSON for automation), or ParamError."""
    param = PARAMS[key]
    value: Any = text
    if param.kind in ("ramps", "bindings"):
        try:
            value = json.loads(text or "[]")
        except json.JSONDecodeError as exc:
            raise ParamError(f"{key} must be a JSON list of tables ({exc.msg})", key) from None
    return check(key, value)


class ParamEditor(Vertical):
    """Holds the daemon's ``values`` and the last ``error``; posts ``SetRequested`` for checked values."""

    @dataclass
    class SetRequested(Message):
        key: str
        value: Any

    values: reactive[dict[str, Any]] = reactive(dict, always_update=True)
    error: reactive[str] = reactive("")
    selected: reactive[str] = reactive(next(iter(PARAMS)))

    def compose(self) -> ComposeResult:
        table: DataTable[str] = DataTable(id="param-table", cursor_type="row", zebra_stripes=True)
        for label, width in (("table", 7), ("parameter", 18), ("value", 16), ("allowed", None)):
            table.add_column(label, key=label, width=width)
        group = None
        for key, param in PARAMS.items():
            prefix, _, name = key.rpartition(".")
            shown_group = prefix if prefix != group else ""
            group = prefix
            table.add_row(shown_group, name or key, "", _short_allowed(param), key=key)
        yield table
        yield Static(id="param-doc")
        yield Input(id="param-value", placeholder="value (enter to set)")
        yield Static(id="param-error")

    def on_mount(self) -> None:
        self.border_title = "parameters"
        self.watch_selected(self.selected)

    def watch_values(self, values: dict[str, Any]) -> None:
        table = self.query_one(DataTable)
        for key, value in values.items():
            if key in PARAMS and key in table.rows:
                table.update_cell(key, "value", _short(show(PARAMS[key], value), 16))
        field = self.query_one("#param-value", Input)
        if self.selected in values and not field.has_focus:
            field.value = show(PARAMS[self.selected], values[self.selected])

    def watch_selected(self, key: str) -> None:
        param = PARAMS[key]
        unit = f" [{param.unit}]" if param.unit else ""
        self.query_one("#param-doc", Static).update(f"[b]{key}[/b]{unit}: {param.doc}\n[dim]allowed: {param.allowed()}[/dim]")
        field = self.query_one("#param-value", Input)
        field.suggester = SuggestFromList(param.choices or (("true", "false") if param.kind == "bool" else ()), case_sensitive=False)
        field.value = show(param, self.values[key]) if key in self.values else ""
        self.error = ""

    def watch_error(self, error: str) -> None:
        self.query_one("#param-error", Static).update(error)
        self.set_class(bool(error), "-error")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value:
            self.selected = event.row_key.value

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.selected = event.row_key.value
        self.query_one("#param-value", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.error = self._problem(event.value) or ""

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        problem = self._problem(event.value)
        if problem:
            self.error = problem
            return
        self.post_message(self.SetRequested(self.selected, plain(parse(self.selected, event.value))))

    def _problem(self, text: str) -> str | None:
        try:
            parse(self.selected, text)
        except ParamError as exc:
            return str(exc)
        return None

    def edit(self, key: str) -> None:
        """Select ``key`` and put the cursor in the value field."""
        table = self.query_one(DataTable)
        table.move_cursor(row=table.get_row_index(key))
        self.selected = key
        self.query_one("#param-value", Input).focus()


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _short_allowed(param: Param) -> str:
    if param.kind in ("int", "float"):
        unit = f" {param.unit}" if param.unit else ""
        return f"{param.allowed().split(' in ')[-1]}{unit}"
    if param.kind == "choice":
        return "|".join(param.choices)
    return {"bool": "true|false", "note": "0..127 or C4", "intlist": "list of ints", "ramps": "JSON ramps"}.get(param.kind, "")
