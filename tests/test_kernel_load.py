"""The handover's loading: the compiler child names the overloads, the daemon loads them one by one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_daemon import Tap, wait_for

from firefly_midi import kernel_load, presets
from firefly_midi.daemon import Daemon
from firefly_midi.lifecycle import warm_up

# A fresh interpreter (this one has the kernels loaded already): the child's list, loaded paced,
# must be all that warm_up then needs (it loads nothing more), each load after one pace() call.
FRESH = """
import json, sys
from firefly_midi import kernel_load, presets
from firefly_midi.handover import _end, _prepare_numba, _read_until_ready, spawn_compiler
from firefly_midi.lifecycle import kernels_loaded, warm_up
values = presets.resolve(sys.argv[1])
_prepare_numba()
child = spawn_compiler(values)
try:
    overloads = _read_until_ready(child.stdout)
finally:
    _end(child)
paces = []
loaded = kernel_load.load_paced(overloads, lambda: paces.append(1))
before = sorted(map(repr, kernel_load.needed()))
ready = kernels_loaded(values)
warm_up(values, quiet=True)
print(json.dumps({"named": len(overloads), "loaded": loaded, "paces": len(paces), "ready": ready,
                  "same": before == sorted(map(repr, kernel_load.needed()))}))
"""


@pytest.mark.parametrize("name", ["pulse-sine", "ermentrout-800"])
def test_the_child_names_every_overload_warm_up_needs_and_each_loads_after_a_tick(name):
    warm_up(presets.resolve(name), quiet=True)  # the cache has them (a fresh CI cache compiles here)
    done = subprocess.run([sys.executable, "-c", FRESH, name], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["named"] > 0 and out["loaded"] == out["named"] == out["paces"]
    assert out["ready"] and out["same"]


def test_the_overloads_line_round_trips():
    warm_up(presets.resolve("pulse-sine"), quiet=True)
    overloads = kernel_load.needed()
    assert overloads
    line = kernel_load.encode(overloads)
    assert "\n" not in line and kernel_load.decode(line) == overloads


def test_numba_unpickles_in_python_while_loading_and_in_c_after():
    from numba.core import caching

    kept = caching.pickle
    with kernel_load.interruptible_unpickling():
        assert caching.pickle is not kept
        assert caching.pickle.loads(kept.dumps(("a", 1))) == ("a", 1)
    assert caching.pickle is kept


def test_the_daemon_hands_over_mid_run_with_the_swarm_going_on():
    """A real daemon on numpy hands over to the kernels its child named: the swarm's time and
    its buffers go on through it (no reset: the tick count keeps growing, r stays a measure)."""
    values = presets.resolve("ermentrout-800")
    warm_up(values, quiet=True)
    daemon = Daemon(values, "ermentrout-800", engine="numpy")
    daemon.ports = Tap()
    phase = daemon.swarm.state.phase
    daemon.start()
    try:
        assert wait_for(lambda: daemon.swarm.ticks > 200, timeout=30)
        assert wait_for(lambda: daemon.status()["engine"] == "compiled", timeout=400)
        at_handover = daemon.swarm.ticks
        assert wait_for(lambda: daemon.swarm.ticks > at_handover + 200, timeout=30)
    finally:
        daemon.stop()
    assert daemon.swarm.state.phase is phase  # the same buffers, stepped on by the kernels
    assert at_handover > 200 and daemon.errors == 0
    assert 0.0 <= daemon.player.r <= 1.0
    sent = [m for _, m in daemon.ports.log if m[0] & 0xF0 == 0x90 and m[2] > 0]
    assert sent  # it played on both engines
