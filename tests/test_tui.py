"""The TUI, driven with Textual's pilot against a fake daemon that follows the control protocol (version 1).

The fake serves scripted telemetry frames and records every request; it answers commands as
/tmp/protocol.md says the daemon does (results, and error replies with code and message).
"""

from __future__ import annotations

import asyncio
import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firefly_midi import params as P
from firefly_midi.params import plain
from firefly_midi.tui.app import FORWARD_S, make_app
from firefly_midi.tui.model import FrameModel
from firefly_midi.tui.widgets import braille
from firefly_midi.tui.widgets.grid_view import GridView
from firefly_midi.tui.widgets.help_screen import HelpScreen
from firefly_midi.tui.widgets.param_editor import ParamEditor
from firefly_midi.tui.widgets.phase_circle import PhaseCircle, draw_phase_circle
from firefly_midi.tui.widgets.preset_picker import PresetPicker
from firefly_midi.tui.widgets.raster import Raster
from firefly_midi.tui.widgets.status_panel import StatusPanel

try:  # the real error type once firefly_midi.control exists; the TUI only reads .code and .message
    from firefly_midi.control import ControlError
except ImportError:

    class ControlError(Exception):  # type: ignore[no-redef]
        def __init__(self, code: str, message: str):
            super().__init__(f"{code}: {message}")
            self.code, self.message = code, message


SIZE = (150, 48)


# ----------------------------------------------------------------------------------------------------- the fake
def frame(seq: int = 1, t: float = 1.0, phase: Any = (), *, n: int | None = None, stride: int = 1, grid=None, flashes=(), **extra):
    """A telemetry frame with every field of protocol version 1."""
    quantised = [-1 if math.isnan(p) else min(65535, int(p * 65536)) for p in phase]
    base = {
        "frame": seq,
        "time_s": t,
        "preset": "test-preset",
        "paused": False,
        "n": n if n is not None else len(quantised) * stride,
        "stride": stride,
        "phase": quantised,
        "grid": list(grid) if grid else None,
        "flashes": [list(f) for f in flashes],
        "order_parameter": 0.5,
        "tempo_bpm": 61.5,
        "nominal_tempo_bpm": 60.0,
        "drift_bpm": 1.5,
        "notes_out": 10 * seq,
        "flashes_in": 3,
        "dropped_in": 1,
        "dropped_frames": 0,
        "lateness_us": {"p50": 12.0, "p99": 80.0, "p99.9": 150.0, "max": 2500.0},
        "skipped_ticks": 0,
        "ports": {"state": "open", "backend": "alsa", "ports": ["firefly-midi:out"], "problem": None},
    }
    base.update(extra)
    return base


class FakeDaemon:
    """State shared by the clients of one fake daemon: up or down, recorded requests, frame queues."""

    def __init__(self, up: bool = True):
        self.up = up
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.values = {k: plain(v) for k, v in P.defaults().items()}
        self.presets = {"calm": "/presets/calm.toml", "storm": "/presets/storm.toml"}
        self.streams: list[asyncio.Queue] = []
        self.connects = 0

    def client(self) -> FakeClient:
        return FakeClient(self)

    def push(self, item: dict[str, Any]) -> None:
        for queue in self.streams:
            queue.put_nowait(item)

    def crash(self) -> None:
        """The daemon goes away: every stream ends with a reset connection, new connections are refused."""
        self.up = False
        for queue in self.streams:
            queue.put_nowait(None)
        self.streams.clear()

    def commands(self, *names: str) -> list[tuple[str, dict[str, Any]]]:
        return [r for r in self.requests if not names or r[0] in names]


class FakeClient:
    """The ControlClient interface: connect, request, subscribe, close."""

    def __init__(self, daemon: FakeDaemon):
        self.daemon = daemon
        self.hello: dict[str, Any] | None = None

    async def connect(self) -> None:
        if not self.daemon.up:
            raise ConnectionRefusedError(111, "Connection refused")
        self.daemon.connects += 1
        self.hello = {"hello": "firefly-midi", "protocol": 1, "version": "0.1.0"}

    async def close(self) -> None:
        self.hello = None

    async def request(self, cmd: str, **args: Any) -> Any:
        if self.hello is None or not self.daemon.up:
            raise ConnectionResetError("connection lost")
        self.daemon.requests.append((cmd, args))
        await asyncio.sleep(0)
        d = self.daemon
        if cmd == "get":
            return d.values[args["key"]] if "key" in args else dict(d.values)
        if cmd == "set":
            try:
                value = P.check(args["key"], args["value"])
                P.check_consistency({**P.defaults(), **{k: P.check(k, v) for k, v in d.values.items()}, args["key"]: value})
            except P.ParamError as exc:
                raise ControlError("bad_param", str(exc)) from None
            d.values[args["key"]] = plain(value)
            return plain(value)
        if cmd == "presets":
            return dict(d.presets)
        if cmd == "preset":
            if args.get("name") not in d.presets:
                raise ControlError("not_found", f"no preset named {args.get('name')!r}")
            return {"preset": args["name"]}
        if cmd == "save":
            return {"path": f"/user/presets/{args['name']}.toml"}
        if cmd == "forward":
            seconds = args.get("seconds")
            if not isinstance(seconds, int | float) or not 0 < seconds <= 600:
                raise ControlError("bad_argument", "forward needs 0 < seconds <= 600")
            return {"seconds": seconds}
        if cmd in ("pause", "resume", "reset", "panic", "stop", "unsubscribe"):
            return {}
        raise ControlError("unknown_command", f"unknown command {cmd!r}")

    async def subscribe(self, fps: int = 30, points: int = 2048):
        if self.hello is None:
            raise ConnectionResetError("connection lost")
        self.daemon.requests.append(("subscribe", {"fps": fps, "points": points}))
        queue: asyncio.Queue = asyncio.Queue()
        self.daemon.streams.append(queue)
        while True:
            item = await queue.get()
            if item is None:
                raise ConnectionResetError(104, "Connection reset by peer")
            yield item


# -------------------------------------------------------------------------------------------------- helpers
async def until(pilot, predicate: Callable[[], Any], timeout: float = 3.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.01)


def run(test: Callable[..., Any], daemon: FakeDaemon | None = None, **options: Any) -> FakeDaemon:
    """Run ``test(app, pilot, daemon)`` inside a headless app connected to a fake daemon."""
    daemon = daemon or FakeDaemon()
    options.setdefault("backoff", (0.02, 0.05))

    async def main() -> None:
        app = make_app(daemon.client, **options)
        async with app.run_test(size=SIZE) as pilot:
            if daemon.up:
                await until(pilot, lambda: daemon.streams, what="the subscription")
            await test(app, pilot, daemon)

    asyncio.run(main())
    return daemon


async def show(pilot, daemon: FakeDaemon, item: dict[str, Any]) -> None:
    """Push one frame and wait until the screen has drawn it."""
    app = pilot.app
    daemon.push(item)
    await until(pilot, lambda: app.status_panel.view.time_s == item["time_s"], what=f"frame {item['frame']} on screen")
    await pilot.pause()


def spread(count: int) -> list[float]:
    return list(np.arange(count) / count)


# --------------------------------------------------------------------------------------------------- the model
def test_model_keeps_bounded_history_and_clears_on_reset():
    model = FrameModel(history_s=5.0, raster_s=2.0, raster_bins=100)
    for k in range(1, 301):
        t = k / 30
        model.ingest(frame(k, t, spread(8), flashes=[(k % 8, t - 0.01)], order_parameter=min(1.0, t / 10)))
    r = model.order_parameter()
    assert r.t[0] >= model.time_s - 5.0 - 1e-9 and r.t[-1] == pytest.approx(10.0)
    assert r.y[-1] == pytest.approx(1.0)
    tempo = model.tempo()
    assert tempo.reference == 60.0 and tempo.last == 61.5
    raster = model.raster()
    assert raster.image.shape == (8, 100) and raster.image.any()
    assert model.status().notes_per_s == pytest.approx(300.0, rel=0.05)  # 10 notes per frame at 30 frames/s
    model.ingest(frame(301, 0.1, spread(8)))  # time went backwards: reset
    assert model.order_parameter().t.size == 1
    assert not model.raster().image.any()


def test_model_marks_silenced_fireflies_and_circular_mean():
    model = FrameModel()
    model.ingest(frame(1, 1.0, [0.95, 0.05, float("nan")], n=3))
    view = model.phases()
    assert np.isnan(view.phase[2])
    assert min(view.mean_phase, 1.0 - view.mean_phase) < 1e-3  # the circular mean of 0.95 and 0.05 is 0, not 0.5


# -------------------------------------------------------------------------------------------------- pictures
def test_circle_draws_more_dots_for_spread_phases():
    async def test(app, pilot, daemon):
        circle = app.query_one(PhaseCircle)
        await show(pilot, daemon, frame(1, 1.0, [0.3] * 400))
        synced = circle.lines()
        assert any("⠀" < ch <= "⣿" for line in synced for ch in line)
        await show(pilot, daemon, frame(2, 2.0, spread(400)))
        spread_out = circle.lines()
        nobody = replace(circle.view, phase=np.zeros(0, np.float32), ids=np.zeros(0, np.int64))
        guide = braille.dot_count(braille.text_of(draw_phase_circle(nobody, *circle.size)))
        assert braille.dot_count(spread_out) - guide > 4 * (braille.dot_count(synced) - guide)
        assert circle.display and not app.query_one(GridView).display

    run(test)


def test_grid_topology_draws_its_lattice():
    async def test(app, pilot, daemon):
        rows, cols = 20, 40
        gradient = [(c / cols) for _ in range(rows) for c in range(cols)]
        await show(pilot, daemon, frame(1, 1.0, gradient, grid=(rows, cols), n=rows * cols))
        grid = app.query_one(GridView)
        assert grid.display and not app.query_one(PhaseCircle).display
        lines = grid.lines()
        drawn = [line for line in lines if "▀" in line]
        widths = {line.count("▀") for line in drawn}
        assert len(widths) == 1  # a rectangle
        width = widths.pop()
        assert width == pytest.approx(2 * len(drawn) * cols / rows, rel=0.1)  # two lattice rows per text row
        colours = {seg.style.color for strip in grid.strips() for seg in strip if seg.text.strip()}
        assert len(colours) >= 8  # brightness follows the phase across the lattice

    run(test)


def test_raster_scrolls_left_as_time_passes():
    def rightmost(lines: list[str]) -> int:
        return max((max(i for i, ch in enumerate(line) if ch != " ") for line in lines if line.strip()), default=-1)

    async def test(app, pilot, daemon):
        raster = app.query_one(Raster)
        await show(pilot, daemon, frame(1, 5.0, spread(50), flashes=[(i, 4.99) for i in range(0, 50, 5)]))
        first = rightmost(raster.lines())
        assert first >= raster.size.width - 2
        await show(pilot, daemon, frame(2, 7.0, spread(50)))
        second = rightmost(raster.lines())
        assert 0 < second < first - raster.size.width // 10
        rows_used = sum(1 for line in raster.lines() if line.strip())
        assert rows_used >= 5  # ten fireflies spread over the id axis

    run(test)


def test_the_status_shows_the_recent_lateness_and_the_runs_p99_beside_the_skipped_ticks():
    async def test(app, pilot, daemon):
        recent = {"p50": 9.0, "p99": 31.0, "max": 640.0, "count": 4000, "window_s": 4.2}
        await show(pilot, daemon, frame(3, 4.0, spread(10), lateness_recent_us=recent))
        text = app.query_one(StatusPanel).text()
        assert "lateness p50 9 µs · p99 31 µs · max 640 µs" in text, text
        assert "0 skipped · run p99 80 µs" in text, text

    run(test)


def test_the_status_says_the_numpy_engine_plays_while_the_kernels_compile():
    async def test(app, pilot, daemon):
        await show(pilot, daemon, frame(3, 4.0, spread(10), engine="numpy", kernels={"state": "compiling", "seconds": 12.4}))
        assert "engine   numpy · kernels compiling 12 s" in app.query_one(StatusPanel).text()
        await show(pilot, daemon, frame(3, 5.0, spread(10), engine="compiled", kernels={"state": "ready", "seconds": 40.0}))
        assert "numpy" not in app.query_one(StatusPanel).text()

    run(test)


def test_following_a_drummer_the_status_shows_his_tempo_the_bands_and_the_phase_error():
    async def test(app, pilot, daemon):
        listening = {"locked": False, "band_bpm": None, "drummer_bpm": None, "phase_error_ms": 0.0, "hits": 1, "relocks": 0}
        await show(pilot, daemon, frame(3, 4.0, spread(10), follow=listening))
        assert "listening · drummer – · band – bpm" in app.query_one(StatusPanel).text()
        locked = {"locked": True, "band_bpm": 111.9, "drummer_bpm": 112.3, "phase_error_ms": 3.4, "hits": 9, "relocks": 1}
        await show(pilot, daemon, frame(4, 5.0, spread(10), follow=locked))
        text = app.query_one(StatusPanel).text()
        assert "drummer 112.3 · band 111.9 bpm · phase +3 ms" in text, text

    run(test)


def test_plots_and_status_show_the_frame():
    async def test(app, pilot, daemon):
        await show(pilot, daemon, frame(3, 4.0, spread(10), flashes_in=7, dropped_in=2))
        text = app.query_one(StatusPanel).text()
        for expected in (
            "connected",
            "test-preset",
            "30 played",
            "7 flashes in",
            "2 dropped",
            "p50 12 µs",
            "p99 80 µs",
            "max 2.50 ms",
            "open",
        ):
            assert expected in text, expected
        assert "drift +1.5" in app.query_one("#tempo-plot").border_title
        assert "0.500" in app.query_one("#r-plot").border_title

    run(test)


# ------------------------------------------------------------------------------------------------ the editor
async def _edit(app, pilot, key: str, text: str) -> ParamEditor:
    await pilot.press("e")
    editor = app.query_one(ParamEditor)
    assert editor.display
    editor.edit(key)
    await pilot.pause()
    field = editor.query_one("#param-value")
    field.value = ""
    await pilot.press(*text)
    return editor


def test_invalid_value_shows_error_and_sends_nothing():
    async def test(app, pilot, daemon):
        editor = await _edit(app, pilot, "swarm.coupling", "500")
        await pilot.press("enter")
        await pilot.pause(0.05)
        assert "swarm.coupling must be a number in 0..100" in editor.error
        assert "0..100" in str(editor.query_one("#param-doc").render())
        assert not daemon.commands("set")

    run(test)


def test_valid_value_sends_set_and_shows_daemon_errors():
    async def test(app, pilot, daemon):
        editor = await _edit(app, pilot, "swarm.coupling", "0.5")
        assert editor.error == ""
        await pilot.press("enter")
        await until(pilot, lambda: daemon.commands("set"))
        assert daemon.commands("set") == [("set", {"key": "swarm.coupling", "value": 0.5})]
        await until(pilot, lambda: editor.values.get("swarm.coupling") == 0.5)
        # Passes the local check, refused by the daemon (a rule that spans keys): the reply is shown.
        editor = await _edit(app, pilot, "swarm.prc", "sawtooth")
        await pilot.press("enter")
        await until(pilot, lambda: editor.error, what="the daemon's error")
        assert "sawtooth" in editor.error and "kuramoto" in editor.error

    run(test)


# ------------------------------------------------------------------------------------------------------ keys
def test_keys_send_their_commands():
    async def test(app, pilot, daemon):
        await show(pilot, daemon, frame(1, 1.0, spread(10)))
        for key in ("p", "r", "f", "exclamation_mark", "x"):
            await pilot.press(key)
        await until(pilot, lambda: len(daemon.commands("pause", "reset", "forward", "panic")) == 5)
        await show(pilot, daemon, frame(2, 2.0, spread(10), paused=True))
        await pilot.press("p")
        await until(pilot, lambda: daemon.commands("resume"))
        assert daemon.commands("pause", "resume", "reset", "forward", "panic") == [
            ("pause", {}),
            ("reset", {}),
            ("forward", {"seconds": FORWARD_S}),
            ("panic", {}),
            ("panic", {}),
            ("resume", {}),
        ]

    run(test)


def test_presets_load_and_save():
    async def test(app, pilot, daemon):
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, PresetPicker))
        app.screen.query_one("#preset-name").value = ""
        await pilot.press(*"my-take", "enter")
        await until(pilot, lambda: daemon.commands("save"))
        assert daemon.commands("save") == [("save", {"name": "my-take"})]
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, PresetPicker))
        await pilot.press("down", "enter")
        await until(pilot, lambda: daemon.commands("preset"))
        assert daemon.commands("preset")[0][1]["name"] in daemon.presets

    run(test)


def test_help_lists_the_keys():
    async def test(app, pilot, daemon):
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        keys = dict(app.screen.rows)
        for key in ("p", "r", "f", "! / x", "s", "l", "e", "?", "q"):
            assert key in keys, key
        shown = " ".join(str(w.render()) for w in app.screen.query("Static"))
        assert "what the numbers say" in shown
        legend = dict(app.screen.legend)  # the status panel's numbers, explained
        assert {"midi", "r", "tempo", "lateness", "ticks"} <= set(legend) and "synchrony" in legend["r"]
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))

    run(test)


@pytest.mark.parametrize("stop", [False, True])
def test_quit_leaves_the_daemon_playing_unless_asked(stop):
    async def test(app, pilot, daemon):
        await pilot.press("q")
        await until(pilot, lambda: app.return_code == 0, what="the exit")

    daemon = run(test, stop_daemon_on_quit=stop)
    assert bool(daemon.commands("stop")) is stop


# ------------------------------------------------------------------------------------------------- reconnect
def test_reconnects_when_the_daemon_comes_back():
    async def test(app, pilot, daemon):
        status = app.query_one(StatusPanel)
        await until(pilot, lambda: "disconnected — retrying" in status.connection)
        assert not status.connected
        daemon.up = True
        await until(pilot, lambda: status.connected, what="the first connection")
        await until(pilot, lambda: daemon.streams)
        await show(pilot, daemon, frame(1, 1.0, spread(10)))
        daemon.crash()
        await until(pilot, lambda: "disconnected — retrying" in status.connection, what="the loss")
        assert "connection reset" in status.connection.lower() or "reset" in status.connection
        daemon.up = True
        await until(pilot, lambda: status.connected and daemon.streams, what="the reconnection")
        await show(pilot, daemon, frame(2, 2.0, spread(10)))
        assert daemon.connects == 2 and len(daemon.commands("subscribe")) == 2

    # 0.5 s between tries: with 20 ms, a loaded machine's pilot saw the next try's "refused" first
    run(test, FakeDaemon(up=False), backoff=(0.5, 1.0))


# ------------------------------------------------------------------------------------------ the real daemon
@pytest.mark.slow  # a real daemon and its tick thread: 15 s here
def test_against_a_real_daemon(monkeypatch):
    """The app with ControlClient and a portless daemon in this process: frames show, keys and edits act."""
    control = pytest.importorskip("firefly_midi.control")
    from firefly_midi import presets
    from firefly_midi.daemon import Daemon
    from firefly_midi.ports import PortConfig

    monkeypatch.setenv("JACK_DEFAULT_SERVER", "firefly-no-such-server-tui")
    folder = Path(tempfile.mkdtemp(prefix="fftui-", dir="/tmp"))  # a Unix socket path must stay short
    sock = folder / "control.sock"
    # A long tick: the daemon's clock spins (holding the GIL) before each tick, and here it shares the process.
    values = presets.resolve("pulse-sine", ["swarm.n=600", "clock.tick_ms=20"])
    daemon = Daemon(values, "pulse-sine", PortConfig(backend="jack", use_input=False))
    daemon.start()
    server = control.serve(daemon, sock).start()

    async def main() -> None:
        app = make_app(lambda: control.ControlClient(sock), target=str(sock))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.model.frames >= 3, timeout=5.0, what="frames from the daemon")
            assert app.status_panel.connected and app.model.status().n == 600
            await pilot.press("p")
            await until(pilot, lambda: daemon.paused, what="the pause")
            await _edit(app, pilot, "swarm.coupling", "0.25")
            await pilot.press("enter")
            await until(pilot, lambda: app.editor.values.get("swarm.coupling") == 0.25, what="the set")
            assert app.editor.error == ""

    try:
        asyncio.run(main())
    finally:
        server.close()
        daemon.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_no_midi_port_is_shown_in_red_near_the_top_and_every_row_fits():
    problem = "no backend: alsa: cannot open the ALSA sequencer (/dev/snd/seq missing); jack: no JACK server is running " * 2
    ports = {"state": "none", "backend": None, "ports": [], "problem": problem, "unsent": 42}

    async def test(app, pilot, daemon):
        await show(pilot, daemon, frame(2, 3.0, spread(10), ports=ports))
        panel = app.query_one(StatusPanel)
        lines = panel.text().rstrip("\n").split("\n")
        assert len(lines) == 11 and lines[1].startswith("midi") and "no MIDI port" in lines[1]
        notes = next(line for line in lines if line.startswith("notes"))
        assert "played" in notes and "42 unsent" in notes, "notes nobody heard are not passed off as sent"
        assert lines[-1].startswith("frames"), "a long problem must not push the last rows out of the panel"
        assert all(len(line) <= panel.content_size.width for line in lines)
        midi = panel.render().split("\n")[1]
        assert any("red" in str(span.style) for span in midi.spans)

    run(test)


def test_on_the_native_jack_backend_a_row_shows_its_late_events_and_losses():
    native = {"late": 3, "xruns": 12, "tx_full": 0, "rx_overflow": 0, "sysex_dropped": 1, "sysex_unterminated": 1, "out_refused": 0}
    native["reflex"] = 7
    ports = {"state": "open", "backend": "jack-native", "ports": ["ffm:out", "ffm:in"], "problem": None, "late": 3, "native": native}

    async def test(app, pilot, daemon):
        panel = app.query_one(StatusPanel)
        quiet = {**native, "late": 0, "xruns": 0, "sysex_dropped": 0, "reflex": 0}
        await show(pilot, daemon, frame(2, 3.0, spread(10), ports={**ports, "native": quiet}))
        lines = panel.text().rstrip("\n").split("\n")
        assert lines[2].startswith("jack") and "late 0 · xruns 0 · lost tx 0 rx 0 · reflex 0" in lines[2], lines
        await show(pilot, daemon, frame(3, 4.0, spread(10), ports=ports))
        lines = panel.text().rstrip("\n").split("\n")
        assert "late 3 · xruns 12 · lost tx 0 rx 0 · reflex 7" in lines[2], lines
        assert any("yellow" in str(span.style) for span in panel.render().split("\n")[2].spans), "late events stand out"
        assert len(lines) == 12 and lines[-1].startswith("frames"), "the row pushes no other out of the panel"
        await pilot.pause()
        assert panel.size.height == 12, "the panel grew a line for it"
        await show(pilot, daemon, frame(4, 5.0, spread(10)))  # back on rtmidi (ALSA): no such row
        assert not [line for line in panel.text().split("\n") if line.startswith("jack")]

    run(test)


def test_ctl_status_shows_the_native_backends_counters():
    from firefly_midi.ctl import format_status

    native = {"late": 3, "xruns": 12, "tx_full": 0, "rx_overflow": 2, "sysex_dropped": 1, "reflex": 4}
    text = format_status({"ports": {"state": "open", "backend": "jack-native", "ports": ["ffm:out"], "native": native}})
    assert "jack       late 3, xruns 12, tx full 0, rx overflow 2, sysex dropped 1, reflex 4" in text, text
    assert "jack " not in format_status({"ports": {"state": "open", "backend": "jack", "ports": ["ffm:out"]}})
