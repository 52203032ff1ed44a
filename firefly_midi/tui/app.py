"""The Textual app: layout, keys and the glue between the connection, the model and the widgets.

``make_app(client_factory)`` builds it (tests pass a fake client); ``run_tui(socket_path)`` runs it
against a daemon through ``firefly_midi.control.ControlClient``.  The app is a separate process from
the daemon: it only reads telemetry frames and sends commands over the control socket.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer
from textual.worker import Worker

from firefly_midi.tui.connection import Client, Connection, ConnectionChanged, FrameArrived, describe_error
from firefly_midi.tui.model import FrameModel
from firefly_midi.tui.widgets.grid_view import GridView
from firefly_midi.tui.widgets.help_screen import HelpScreen
from firefly_midi.tui.widgets.param_editor import ParamEditor
from firefly_midi.tui.widgets.phase_circle import PhaseCircle
from firefly_midi.tui.widgets.plot import Plot
from firefly_midi.tui.widgets.preset_picker import PresetPicker
from firefly_midi.tui.widgets.raster import Raster
from firefly_midi.tui.widgets.status_panel import StatusPanel

FORWARD_S = 10.0


class FireflyApp(App[int]):
    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "firefly-midi"
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("p", "pause", "pause/resume"),
        Binding("r", "reset", "reset"),
        Binding("f", "forward", f"forward {FORWARD_S:g} s"),
        Binding("exclamation_mark,x", "panic", "panic"),
        Binding("l", "presets", "load preset"),
        Binding("s", "save", "save preset"),
        Binding("e", "edit", "parameters"),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
        Binding("escape", "leave", "leave the editor", show=False),
    ]
    HELP_EXTRA: ClassVar[list[tuple[str, str]]] = [
        ("↑ ↓ / click", "parameters: choose a row"),
        ("enter", "parameters: edit the value, enter again to set it"),
        ("tab", "move between the table and the value field"),
    ]

    def __init__(
        self,
        client_factory: Callable[[], Client],
        *,
        stop_daemon_on_quit: bool = False,
        target: str = "",
        fps: int = 30,
        points: int = 2048,
        backoff: tuple[float, float] = (0.25, 5.0),
    ):
        super().__init__()
        self.model = FrameModel()
        self.connection = Connection(self, client_factory, self.model, fps, points, backoff, target)
        self.stop_daemon_on_quit = stop_daemon_on_quit
        self._preset: str | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield PhaseCircle(id="circle")
                yield GridView(id="grid")
                yield Raster(id="raster")
            with Vertical(id="right"):
                yield Plot("r", digits=3, id="r-plot")
                yield Plot("tempo", " bpm", digits=1, id="tempo-plot")
                yield StatusPanel(id="status")
            yield ParamEditor(id="editor")
        yield Footer()

    def on_mount(self) -> None:
        self.circle, self.grid = self.query_one(PhaseCircle), self.query_one(GridView)
        self.raster, self.status_panel = self.query_one(Raster), self.query_one(StatusPanel)
        self.r_plot, self.tempo_plot = self.query_one("#r-plot", Plot), self.query_one("#tempo-plot", Plot)
        self.editor = self.query_one(ParamEditor)
        self.circle.border_title = "phases"
        self.grid.border_title = "phases (grid)"
        self.raster.border_title = "flashes"
        self.status_panel.border_title = "status"
        self.run_worker(self.connection.run(), name="connection", group="connection", exclusive=True)

    # ------------------------------------------------------------------------------------------- messages
    def on_frame_arrived(self, message: FrameArrived) -> None:
        if not self.is_running:
            return
        model = self.model
        phases = model.phases()
        grid = phases is not None and phases.grid is not None
        self.set_class(grid, "-grid")
        (self.grid if grid else self.circle).view = phases
        self.raster.view = model.raster()
        self.r_plot.view = model.order_parameter()
        self.tempo_plot.view = model.tempo()
        status = model.status()
        self.status_panel.view = status
        if status.preset != self._preset:
            self._preset = status.preset
            self.sub_title = status.preset
            self.send("get", then=self._got_values)

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        panel = self.status_panel
        panel.connection, panel.connected = message.text, message.connected
        if message.connected:
            self.send("get", then=self._got_values)

    def _got_values(self, values: Any) -> None:
        if isinstance(values, dict):
            self.editor.values = values

    def on_param_editor_set_requested(self, message: ParamEditor.SetRequested) -> None:
        editor = self.editor

        def done(value: Any) -> None:
            editor.values = {**editor.values, message.key: value}
            editor.error = ""
            self.notify(f"{message.key} = {value}", timeout=2)

        def failed(exc: BaseException) -> None:
            editor.error = describe_error(exc)

        self.send("set", then=done, failed=failed, key=message.key, value=message.value)

    # -------------------------------------------------------------------------------------------- requests
    def send(
        self, cmd: str, *, then: Callable[[Any], Any] | None = None, failed: Callable[[BaseException], Any] | None = None, **args: Any
    ) -> Worker[None]:
        """Send ``cmd`` in a worker (the screen never waits on the daemon); ``then`` gets the result."""

        async def exchange() -> None:
            try:
                result = await self.connection.request(cmd, **args)
            except Exception as exc:
                if failed is not None:
                    failed(exc)
                else:
                    self.notify(describe_error(exc), title=f"{cmd} failed", severity="error")
                return
            if then is not None:
                outcome = then(result)
                if asyncio.iscoroutine(outcome):
                    await outcome

        return self.run_worker(exchange(), group="requests")

    # ---------------------------------------------------------------------------------------------- actions
    def action_pause(self) -> None:
        self.send("resume" if self.model.status().paused else "pause")

    def action_reset(self) -> None:
        self.send("reset", then=lambda _: self.notify("swarm reset", timeout=2))

    def action_forward(self) -> None:
        self.send("forward", seconds=FORWARD_S, then=lambda r: self.notify(f"forwarded {r.get('seconds', FORWARD_S)} s", timeout=2))

    def action_panic(self) -> None:
        self.send("panic", then=lambda _: self.notify("all notes off", timeout=2))

    def action_presets(self, save: bool = False) -> None:
        async def pick(names: Any) -> None:
            await self.push_screen(PresetPicker(list(names or ()), self.model.status().preset, save), self._picked)

        self.send("presets", then=pick)

    def action_save(self) -> None:
        self.action_presets(save=True)

    def _picked(self, choice: tuple[str, str] | None) -> None:
        if choice is None:
            return
        what, name = choice
        if what == "load":
            self.send("preset", name=name, then=lambda _: self.notify(f"preset {name}", timeout=2))
        else:
            self.send("save", name=name, then=lambda r: self.notify(f"saved {r.get('path', name)}", timeout=3))

    def action_edit(self) -> None:
        editor = self.editor
        if self.has_class("-editing") and editor.has_focus_within:
            self.action_leave()
            return
        self.add_class("-editing")
        editor.query_one("#param-table").focus()

    def action_leave(self) -> None:
        self.remove_class("-editing")
        self.set_focus(None)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.BINDINGS, self.HELP_EXTRA))

    async def action_quit(self) -> None:
        if self.stop_daemon_on_quit and self.connection.connected:
            try:
                await asyncio.wait_for(self.connection.request("stop"), 2.0)
            except Exception as exc:
                self.log.warning(f"stop failed: {describe_error(exc)}")
        self.exit(0)


def make_app(client_factory: Callable[[], Client], **options: Any) -> FireflyApp:
    """The app, talking to daemons through clients from ``client_factory`` (one per connection attempt)."""
    return FireflyApp(client_factory, **options)


def run_tui(socket_path: Path | None, stop_daemon_on_quit: bool = False) -> int:
    """Attach to the daemon at ``socket_path`` (default: the protocol's path) until the user quits."""
    from firefly_midi.control import ControlClient, command_name, default_socket_path

    path = Path(socket_path) if socket_path is not None else default_socket_path()
    app = make_app(lambda: ControlClient(path), stop_daemon_on_quit=stop_daemon_on_quit, target=os.fspath(path))
    app.run()
    if not stop_daemon_on_quit and app.return_code in (0, None):
        print(f"the swarm is still playing in the background; `{command_name()} ctl stop` stops it", file=sys.stderr)
    return app.return_code or 0
