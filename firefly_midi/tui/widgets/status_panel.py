"""StatusPanel: connection, preset, counters, tick lateness and ports, as text."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from firefly_midi.tui.model import NATIVE_COUNTERS, NATIVE_LOSSES, StatusView


def _us(value: Any) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "–"
    return f"{value / 1000:.2f} ms" if value >= 1000 else f"{value:.0f} µs"


def _lateness(recent: dict[str, Any], total: dict[str, Any]) -> str:
    """The tick's lateness of the last seconds, what it does now (a daemon too old to send them:
    the run's); the ticks row has the run's p99.  Short: the panel is ~45 columns wide."""
    late = recent or total
    return f"p50 {_us(late.get('p50'))} · p99 {_us(late.get('p99'))} · max {_us(late.get('max'))}"


def _notes(v: StatusView) -> str:
    """Notes the swarm played, and the MIDI messages no port took (played while none was open)."""
    unsent = int(v.ports.get("unsent", 0) or 0)
    return f"{v.notes_out:,} played · {v.notes_per_s:.1f}/s" + (f" · {unsent:,} unsent" if unsent else "")


def _ports(ports: dict[str, Any]) -> Text:
    """The MIDI ports, in red unless they are open: a musician must see at once that nothing plays out."""
    if not ports:
        return Text("–")
    names = ", ".join(str(p) for p in ports.get("ports") or ()) or "no MIDI port"
    text = f"{ports.get('state', '?')} · {names}"
    if ports.get("problem"):
        text += f" · {ports['problem']}"
    return Text(text, style="green" if ports.get("state") == "open" else "bold red")


def _native(native: dict[str, Any]) -> Text:
    """The native JACK client's counters (docs/jack-native.md), short (the row has ~55 columns):
    yellow once an event was late or lost."""
    late, xruns, tx, rx, _, reflex = (int(native.get(key, 0) or 0) for key in NATIVE_COUNTERS)
    text = f"late {late:,} · xruns {xruns:,} · lost tx {tx:,} rx {rx:,} · reflex {reflex:,}"  # sysex: in ctl status
    return Text(text, style="yellow" if any(native.get(key) for key in NATIVE_LOSSES) else "")


def _engine(v: StatusView) -> Text:
    """While the kernels compile (a fresh install), the numpy engine plays: say so, and for how long."""
    state, seconds = v.kernels.get("state", "compiling"), float(v.kernels.get("seconds", 0.0) or 0.0)
    return Text(f"numpy · kernels {state} {seconds:.0f} s", style="yellow")


def _tempo(v: StatusView) -> Text | str:
    """The swarm's tempo; following a drummer: the drummer's, the band's (the clock's) and the phase error."""
    follow = v.follow
    if not follow:
        return f"{v.tempo_bpm:.1f} bpm · nominal {v.nominal_tempo_bpm:.1f} · drift {v.drift_bpm:+.1f}"
    tempi = f"drummer {_bpm(follow.get('drummer_bpm'))} · band {_bpm(follow.get('band_bpm'))} bpm"
    if not follow.get("locked"):
        return Text(f"listening · {tempi}", style="yellow")
    return f"{tempi} · phase {follow.get('phase_error_ms') or 0.0:+.0f} ms"


def _bpm(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


class StatusPanel(Widget):
    """Holds the connection state (``connection``, ``connected``) and the latest ``StatusView``."""

    DEFAULT_CSS = "StatusPanel { height: 13; }"  # 11 rows and the border; a 12th on the native JACK backend
    connection: reactive[str] = reactive("connecting…")
    connected: reactive[bool] = reactive(False)
    view: reactive[StatusView] = reactive(StatusView)

    def watch_connected(self, connected: bool) -> None:
        self.set_class(not connected, "-disconnected")

    def watch_view(self, view: StatusView) -> None:
        self.styles.height = 14 if view.ports.get("native") else 13  # room for the jack row (render)

    def render(self) -> Text:
        v = self.view
        state = ("paused", "bold yellow") if v.paused else ("playing", "green")
        shown = f"{v.n:,} fireflies" + (f" · showing 1/{v.stride}" if v.stride > 1 else "")
        if v.grid:
            shown += f" · grid {v.grid[0]}×{v.grid[1]}"
        late = v.lateness_us
        rows: list[tuple[str, Text | str]] = [
            ("daemon", Text(self.connection, style="bold green" if self.connected else "bold red")),
            ("midi", _ports(v.ports)),
            ("preset", Text.assemble((v.preset or "–", "bold"), "  ", state)),
            ("swarm", shown),
            ("time", f"{v.time_s:,.1f} s · r {v.order_parameter:.3f}"),
            ("tempo", _tempo(v)),
            ("notes", _notes(v)),
            ("input", f"{v.flashes_in:,} flashes in · {v.dropped_in:,} dropped"),
            ("lateness", _lateness(v.lateness_recent_us, late)),
            ("ticks", f"{v.skipped_ticks:,} skipped · run p99 {_us(late.get('p99'))}"),
            ("frames", f"{v.frames:,} · {v.dropped_frames:,} dropped · {v.flashes_lost:,} flashes lost"),
        ]
        if v.engine == "numpy":  # in the frames' row: the panel has no line to spare, and this lasts a minute
            rows[-1] = ("engine", _engine(v))
        if v.ports.get("native"):  # the native JACK backend counts what it could not play on time, or at all
            rows.insert(2, ("jack", _native(v.ports["native"])))
        # One row a line, cut with an ellipsis: a long socket path or port problem wrapping onto a
        # second line pushed the last rows out of the panel.
        width = self.content_size.width or 200
        lines = []
        for label, value in rows:
            line = Text.assemble((f"{label:<9}", "dim"), value)
            line.truncate(width, overflow="ellipsis")
            lines.append(line)
        return Text("\n").join(lines)

    def text(self) -> str:
        """The panel as plain text (tests read it)."""
        from rich.console import Console

        console = Console(width=max(40, self.size.width or 80), record=True, file=None, color_system=None)
        with console.capture() as capture:
            console.print(self.render())
        return capture.get()
