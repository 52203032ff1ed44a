"""The numpy engine (swarm/plain.py) plays what the kernels play, and hands over to them mid-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_daemon import Tap, wait_for

from firefly_midi import interpreted, note_kernels, presets
from firefly_midi.daemon import Daemon
from firefly_midi.events import EventBuffer
from firefly_midi.lifecycle import warm_up
from firefly_midi.mapping import SLOTS
from firefly_midi.player import Player
from firefly_midi.render import write_render
from firefly_midi.simulate import simulate
from firefly_midi.swarm import Swarm, plain

SHIPPED = sorted(presets.available())
TICKS = 2500


def _pair(name: str) -> tuple[Swarm, Swarm]:
    values = presets.resolve(name)
    return Swarm(values), Swarm(values, engine="numpy")


@pytest.mark.parametrize("name", SHIPPED)
def test_the_numpy_engine_steps_as_the_kernels_do(name):
    """Every shipped preset, an external flash included: the same flashes, tick by tick, and the
    same phases to rounding (the kernels' sums run in another order under fast-math)."""
    compiled, numpy_ = _pair(name)
    assert not plain.uncovered(compiled.values)
    for k in range(TICKS):
        if k == 700:
            compiled.inject(0.25, 1.0)
            numpy_.inject(0.25, 1.0)
        assert compiled.step() == numpy_.step(), f"tick {k}"
        assert np.array_equal(compiled.flashes()[0], numpy_.flashes()[0]), f"tick {k}"
    np.testing.assert_allclose(numpy_.state.phase, compiled.state.phase, atol=1e-9)
    np.testing.assert_allclose(numpy_.state.freq, compiled.state.freq, rtol=1e-12)
    assert numpy_.order_parameter() == pytest.approx(compiled.order_parameter(), abs=1e-9)
    assert compiled._rng.tolist() == numpy_._rng.tolist()  # the generator drew as often


@pytest.mark.parametrize("name", ["pulse-sine", "ermentrout-800", "kuramoto-adaptive", "grid-waves"])
def test_a_handover_mid_run_keeps_the_swarm_and_the_music(name):
    """Numpy for a while, then the compiled kernels from a tick boundary on: the same arrays go on,
    so r, the phases, the pending deliveries and the notes continue as if compiled all along."""
    values = presets.resolve(name)
    reference, handed = Player(values), Player(values, engine="numpy")
    buffers = (handed.swarm.state.phase, handed.swarm.state.freq, handed.swarm._dq_to, handed.swarm._rng)
    heard, played = [], []
    for k in range(3000):
        if k == 1500:
            assert handed.engine == "numpy"
            r_before, phase_before = handed.swarm.order_parameter(), handed.swarm.state.phase.copy()
            handed.use_engine("compiled")
            assert np.array_equal(handed.swarm.state.phase, phase_before, equal_nan=True)  # nothing moved
            assert handed.swarm.order_parameter() == pytest.approx(r_before, abs=1e-12)
        for player, out in ((reference, heard), (handed, played)):
            player.tick(k)
            out += [(round(t, 9), message) for t, message in player.events.as_list()]
    assert handed.engine == "compiled" and handed.mapper.kernels.plan_bursts is reference.mapper.kernels.plan_bursts
    after = (handed.swarm.state.phase, handed.swarm.state.freq, handed.swarm._dq_to, handed.swarm._rng)
    assert all(a is b for a, b in zip(buffers, after, strict=True))
    assert played == heard and heard
    np.testing.assert_allclose(handed.swarm.state.phase, reference.swarm.state.phase, atol=1e-9)
    assert handed.r == pytest.approx(reference.r, abs=1e-9)


def test_offline_runs_record_the_same_on_both_engines():
    """simulate's path (Swarm.run with a recorder) on numpy gives the kernels' counts and samples."""
    from firefly_midi.swarm.metrics import Recorder

    values = presets.resolve("ermentrout-800")
    out = []
    for engine in ("compiled", "numpy"):
        swarm, rec = Swarm(values, engine=engine), Recorder.for_run(2000, values["swarm.n"], 0.001, raster=True)
        swarm.run(2000, rec)
        out.append(rec)
    assert np.array_equal(out[0].counts, out[1].counts)
    np.testing.assert_allclose(out[0].samples[: out[0].rows()], out[1].samples[: out[1].rows()], atol=1e-9)
    assert np.array_equal(out[0].raster()[1], out[1].raster()[1])


def test_what_the_numpy_engine_cannot_play_waits_for_the_kernels():
    values = presets.resolve("pulse-sine", ["swarm.delay_ms=20"])
    assert "delayed coupling" in plain.uncovered(values)
    with pytest.raises(ValueError, match="compiled kernels"):
        Swarm(values, engine="numpy")


def test_a_change_the_numpy_engine_cannot_play_is_refused_until_the_kernels_are_in():
    """A knob or an automation on numpy keeps the old value (logged); a ``set`` says why in its error."""
    player = Player(presets.resolve("pulse-sine"), engine="numpy")
    player.apply_if_valid("swarm.delay_ms", 20.0)
    assert player.values["swarm.delay_ms"] == 0.0 and player.swarm.engine == "numpy"
    daemon = Daemon(presets.resolve("pulse-sine"), "pulse-sine", engine="numpy")
    with pytest.raises(ValueError, match="once the kernels have compiled"):
        daemon.set("swarm.delay_ms", 20.0)
    assert daemon.saved.values["swarm.delay_ms"] == 0.0
    daemon.set("swarm.coupling", 0.2)  # anything it can play goes through
    assert daemon.saved.values["swarm.coupling"] == 0.2


def test_the_daemon_hands_over_and_stops_its_compiler():
    """A daemon told to start on numpy plays at once, says so in its status, hands over when its
    child has the kernels, and stops the child (busy with the other presets' kernels) when it stops."""
    warm_up(presets.resolve("pulse-sine"), quiet=True)  # a fresh CI cache compiles here, as any test's would, not in a child
    daemon = Daemon(presets.resolve("pulse-sine"), "pulse-sine", engine="numpy")
    daemon.ports = Tap()
    assert daemon.player.engine == "numpy"
    daemon.start()
    try:
        kernels = daemon.status()["kernels"]
        assert kernels["state"] in ("compiling", "loading", "ready") and "left" in kernels
        assert wait_for(lambda: daemon.swarm.ticks > 100, timeout=30)
        assert wait_for(lambda: daemon.status()["engine"] == "compiled", timeout=400)
        assert daemon.status()["kernels"]["state"] == "ready"
        pid = daemon.engines.compiler.child_pid
    finally:
        daemon.stop()
    assert not _running(pid)
    assert daemon.swarm.ticks > 100 and daemon.errors == 0


def test_a_preset_switched_to_before_the_handover_plays_on_and_is_handed_over_too():
    """A switch while numpy plays builds numpy parts; the handover then loads what they need (the
    delayed kernels here, where the start had none) and hands them over."""
    for name in ("pulse-sine", "ermentrout-800"):
        warm_up(presets.resolve(name), quiet=True)  # a fresh CI cache compiles here, not in a child
    daemon = Daemon(presets.resolve("pulse-sine"), "pulse-sine", engine="numpy")
    daemon.ports = Tap()
    daemon.start()
    try:
        daemon.load_preset("ermentrout-800")
        assert wait_for(lambda: daemon.preset == "ermentrout-800" and daemon.values["swarm.delay_ms"] > 0, timeout=30)
        assert wait_for(lambda: daemon.status()["engine"] == "compiled", timeout=400)
        ticks = daemon.swarm.ticks
        assert wait_for(lambda: daemon.swarm.ticks > ticks + 100, timeout=30)
    finally:
        daemon.stop()
    assert daemon.swarm.engine == "compiled" and daemon.mapper.kernels.plan_bursts.__class__.__name__ == "CPUDispatcher"
    assert daemon.errors == 0


def test_a_compiler_that_fails_leaves_the_numpy_engine_playing(monkeypatch):
    """A child that ends without "ready" (a broken toolchain, say): failed, said so, nothing handed over."""
    from firefly_midi import handover

    def failing(values):
        return subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    monkeypatch.setattr(handover, "spawn_compiler", failing)
    handed = []
    compiler = handover.KernelCompiler(presets.resolve("pulse-sine"), lambda: handed.append(1))
    compiler.start()
    assert compiler.finished.wait(60)
    assert compiler.status()["state"] == "failed" and "numpy engine plays on" in compiler.status()["left"]
    assert not compiler.loaded.is_set() and not handed


def _running(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # not Linux: ask the OS
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


@pytest.mark.parametrize("command", ["simulate", "render"])
def test_a_fresh_install_simulates_and_renders_on_numpy_with_the_kernels_results(command, tmp_path):
    """An empty kernel cache: simulate and render say they run on numpy, compile nothing, and report
    what the compiled kernels report."""
    args = [command, "--preset", "ermentrout-800", "--seconds", "2", "--json"]
    args += ["--output", str(tmp_path / "fresh.mid")] if command == "render" else []
    env = {**os.environ, "FIREFLY_MIDI_CACHE_DIR": str(tmp_path / "empty")}
    fresh = subprocess.run([sys.executable, "-m", "firefly_midi", *args], env=env, capture_output=True, text=True, timeout=120)
    assert fresh.returncode == 0, fresh.stderr
    assert "numpy engine" in fresh.stderr
    assert not list((tmp_path / "empty").rglob("*.nbi"))  # nothing compiled
    report, values = json.loads(fresh.stdout), presets.resolve("ermentrout-800")
    if command == "simulate":
        expected = simulate(values, 2.0)[0]
    else:
        expected = write_render(values, 2.0, tmp_path / "compiled.mid")
        assert (tmp_path / "fresh.mid").read_bytes() == (tmp_path / "compiled.mid").read_bytes()
    shared = [key for key, value in expected.items() if isinstance(value, float | int) and key not in ("wall_s", "realtime_factor")]
    assert shared
    for key in shared:
        assert report[key] == pytest.approx(expected[key], abs=1e-6), key


def test_ctl_status_says_the_numpy_engine_plays_while_the_kernels_compile():
    from firefly_midi.ctl import format_status

    compiling = format_status({"engine": "numpy", "kernels": {"state": "compiling", "seconds": 12.3}})
    assert "engine     numpy while the kernels compile (compiling, 12 s so far)" in compiling
    assert "numpy" not in format_status({"engine": "compiled", "kernels": {"state": "ready", "seconds": 80.0}})


@settings(max_examples=60, deadline=None)
@given(
    sounding=st.dictionaries(st.integers(0, SLOTS - 1), st.tuples(st.floats(0.0, 10.0), st.floats(0.0, 10.0)), max_size=60),
    end=st.floats(0.0, 10.0),
    room=st.integers(0, 40),
)
def test_the_mappers_numpy_twins_do_what_its_kernels_do(sounding, end, room):
    """collect_due_offs and oldest_sounding, numpy against numba: the same events, slots and answers."""
    results = []
    kernels = (note_kernels.collect_due_offs, note_kernels.oldest_sounding)
    for collect, oldest in (kernels, (interpreted.collect_due_offs, interpreted.oldest_sounding)):
        off, starts, events = np.full(SLOTS, np.inf), np.zeros(SLOTS), EventBuffer(capacity=40)
        for slot, (off_at, on_at) in sounding.items():
            off[slot], starts[slot] = off_at, on_at
        answer = collect(off, end, events.time_s, events.status, events.data1, events.data2, events.size, 40 - room)
        results.append((tuple(answer), off, events.time_s.copy(), events.status.copy(), events.data1.copy(), oldest(off, starts)))
    kernel, twin = results
    assert kernel[0] == twin[0] and kernel[-1] == twin[-1]
    for a, b in zip(kernel[1:-1], twin[1:-1], strict=True):
        assert np.array_equal(a, b)


def test_an_interpreted_kernel_compiles_nothing_and_answers_as_the_kernel():
    """interpreted() runs a kernel's Python, its calls to other kernels interpreted too."""
    cum = np.array([0, 3, 5, 9, 14, 20, 26, 30], dtype=np.int64)
    fresh = interpreted.interpreted(note_kernels.whole_cycles_hz)
    assert not isinstance(fresh, type(note_kernels.whole_cycles_hz))
    assert fresh(cum, 7, 8, 4, 0.001) == note_kernels.whole_cycles_hz(cum, 7, 8, 4, 0.001) > 0.0


COLD_START = """
import json, logging, sys, time
logging.basicConfig(level=logging.INFO)
sys.path.insert(0, sys.argv[1])
from test_daemon import Tap
from firefly_midi import presets
from firefly_midi.daemon import Daemon
daemon = Daemon(presets.resolve("pulse-sine"), "pulse-sine")
daemon.ports = Tap()
daemon.start()
notes_on_numpy = 0
while daemon.status()["engine"] == "numpy" and daemon.status()["kernels"]["state"] != "failed":
    notes_on_numpy = daemon.mapper.notes_out
    time.sleep(0.1)
ticks = daemon.swarm.ticks
while daemon.swarm.ticks < ticks + 500:
    time.sleep(0.05)
child = daemon.engines.compiler.child_pid
daemon.stop()
print(json.dumps({"notes_on_numpy": notes_on_numpy, "status": daemon.status(), "child": child}))
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_cold_start_plays_on_numpy_until_its_own_compile_takes_over(tmp_path):
    """An empty kernel cache, in a process of its own: the daemon plays notes before anything is
    compiled, its child compiles, the compiled kernels take over, and the child ends with it."""
    env = {**os.environ, "FIREFLY_MIDI_CACHE_DIR": str(tmp_path / "empty")}
    tests = os.path.dirname(__file__)
    done = subprocess.run([sys.executable, "-c", COLD_START, tests], env=env, capture_output=True, text=True, timeout=880)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["notes_on_numpy"] > 0
    assert result["status"]["engine"] == "compiled" and result["status"]["kernels"]["state"] == "ready"
    assert result["status"]["errors"] == 0 and result["status"]["lost_ticks"] == 0
    assert "took over" in done.stderr
    assert not _running(result["child"])
