"""The fixed-tick loop: absolute deadlines, no drift, skipped ticks counted, lateness recorded."""

import os
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firefly_midi import clock as clock_module
from firefly_midi.clock import ADAPT_TICKS, MAX_SPIN_S, SPIN_S, Clock, Lateness, adapt_spin, ask_realtime, leave_realtime


def run_clock(tick_s: float, seconds: float, on_tick=lambda k: None) -> Clock:
    clock = Clock(tick_s, on_tick)
    clock.start()
    time.sleep(seconds)
    clock.stop()
    return clock


def test_ticks_follow_absolute_deadlines_without_drift():
    seen = []
    clock = run_clock(0.002, 1.0, seen.append)
    # k counts deadlines from the start, skipped ones included: the last k must match the wall time
    elapsed = time.monotonic() - clock.started_at
    assert seen[-1] == pytest.approx(elapsed / 0.002, abs=25)
    assert clock.ticks + clock.skipped == seen[-1] + 1
    assert seen == sorted(set(seen)), "tick numbers only go up"


class FakeTime:
    """A monotonic clock that moves 1 µs per reading and jumps on sleep: the loop's logic, without noise.

    ``overshoot`` (s) is added to every sleep, as a busy machine's scheduler does.
    """

    def __init__(self):
        self.now = 1000.0
        self.overshoot = 0.0

    def monotonic(self):
        self.now += 1e-6
        return self.now

    def sleep(self, seconds):
        self.now += seconds + self.overshoot


def test_a_slow_tick_is_skipped_and_counted_never_burst(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(clock_module, "time", fake)
    calls = []

    def on_tick(k):
        calls.append((k, fake.now))
        if k == 20:
            fake.now += 0.0105  # this tick overran five 2 ms deadlines
        if k == 40:
            clock.stop()

    clock = Clock(0.002, on_tick)
    clock._loop()
    ks = [k for k, _ in calls]
    assert ks[:21] == list(range(21))
    assert ks[21] == 25, "ticks 21-24 passed during the overrun: skipped; 25 runs, late in its own slot"
    assert clock.skipped == 4
    start = clock.started_at
    for k, t in calls:
        allowed = 0.0006 if k == 25 else 0.00005
        assert start + k * 0.002 <= t < start + k * 0.002 + allowed, f"tick {k} ran off its own deadline"
    assert clock.lateness.max_s == pytest.approx(0.0005, abs=5e-5)


def test_lateness_percentiles_from_the_histogram():
    lateness = Lateness()
    for us in range(1, 1001):
        lateness.record(us * 1e-6)
    assert lateness.percentile_us(50) == pytest.approx(500, abs=2)
    assert lateness.percentile_us(99) == pytest.approx(990, abs=2)
    assert lateness.summary()["max"] == pytest.approx(1000)
    lateness.record(1.0)  # a whole second late lands in the overflow bin but keeps the max
    assert lateness.summary()["max"] == pytest.approx(1e6)


def test_recent_lateness_forgets_what_is_older_than_its_window():
    lateness, t0 = Lateness(), time.monotonic()
    half = Lateness.RECENT_S / 2
    for _ in range(1000):
        lateness.record(900e-6)  # a bad spell at the start
    lateness.roll(t0 + half)
    for _ in range(1000):
        lateness.record(10e-6)
    assert lateness.recent(t0 + half)["p99"] == pytest.approx(900, abs=2), "the spell is still in the window"
    lateness.roll(t0 + half + 0.1)  # too soon: nothing moves
    assert lateness.recent()["count"] == 2000
    lateness.roll(t0 + 2 * half)
    recent = lateness.recent(t0 + 2 * half)
    assert recent["count"] == 1000 and recent["p99"] == pytest.approx(10, abs=2) and recent["max"] == pytest.approx(10, abs=2)
    assert recent["window_s"] == pytest.approx(half)
    assert lateness.summary()["p99"] == pytest.approx(900, abs=2), "the run's figures keep the spell"
    lateness.reset()
    lateness.record(20e-6)
    assert lateness.recent()["count"] == 1 and lateness.recent()["p99"] == pytest.approx(20, abs=2), "a reset starts the window afresh"


def test_an_error_in_the_tick_stops_the_clock_and_is_kept():
    def boom(k):
        if k == 3:
            raise ValueError("boom")

    clock = Clock(0.001, boom)
    clock.start()
    time.sleep(0.1)
    assert not clock.running
    assert isinstance(clock.error, ValueError)


@given(st.floats(SPIN_S, MAX_SPIN_S), st.integers(0, 2000), st.integers(1, 2000))
def test_the_spin_stays_in_bounds_and_moves_the_way_late_sleeps_say(spin, late, wakes):
    late = min(late, wakes)
    new = adapt_spin(spin, late, wakes)
    assert SPIN_S <= new <= MAX_SPIN_S
    if late == 0:
        assert new <= spin
    elif late > 0.002 * wakes:
        assert new >= spin and (new > spin or spin == MAX_SPIN_S)


def test_the_spin_grows_while_sleeps_overshoot_and_shrinks_back_when_they_stop(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(clock_module, "time", fake)
    spins, late = {}, {}
    windows = 12

    def on_tick(k):
        fake.overshoot = 150e-6 if k < 5 * ADAPT_TICKS else 0.0  # sleeps 150 µs late, then on time
        spins[k] = clock.spin_s
        late[k] = fake.now - (clock.started_at + k * 0.001)
        if k == windows * ADAPT_TICKS:
            clock.stop()

    clock = Clock(0.001, on_tick)
    clock.realtime = True  # the spin adapts only on real-time scheduling (which _run asks for)
    clock._loop()
    grown = spins[3 * ADAPT_TICKS]
    assert grown > 150e-6, "three windows of late sleeps lengthened the spin past the overshoot"
    assert max(late[k] for k in range(10, ADAPT_TICKS)) > 40e-6, "before adapting, those ticks were late"
    assert max(late[k] for k in range(3 * ADAPT_TICKS + 10, 4 * ADAPT_TICKS)) < 5e-6, "once adapted, on time"
    assert SPIN_S <= spins[windows * ADAPT_TICKS] < grown, "on-time sleeps shorten it again"
    assert clock.late_wakes > 0


def _scheduler_of(thread: threading.Thread) -> int:
    return os.sched_getscheduler(thread.native_id)


@pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="no POSIX scheduling calls on this OS")
def test_the_tick_thread_runs_real_time_where_allowed_and_leaves_it_when_overloaded():
    probe = {}

    def try_realtime():
        probe["allowed"] = ask_realtime()
        leave_realtime()

    helper = threading.Thread(target=try_realtime)
    helper.start()
    helper.join()

    def busy(k):  # each tick overruns its 1 ms by far: an overloaded swarm, few ticks a second
        until = time.monotonic() + 0.02
        while time.monotonic() < until:
            pass

    clock = Clock(0.001, busy)
    clock.start()
    time.sleep(0.2)
    assert clock.realtime == probe["allowed"]
    assert (_scheduler_of(clock._thread) == os.SCHED_FIFO) == probe["allowed"]
    deadline = time.monotonic() + 10.0
    while probe["allowed"] and not clock.overloaded and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        if probe["allowed"]:
            assert clock.overloaded, "a tick that overruns every deadline gave real-time scheduling back"
            assert not clock.realtime and _scheduler_of(clock._thread) == os.SCHED_OTHER
        assert clock.stats()["realtime"] == clock.realtime
    finally:
        clock.stop()


def test_on_ordinary_scheduling_the_spin_stays_put(monkeypatch):
    fake = FakeTime()
    fake.overshoot = 150e-6
    monkeypatch.setattr(clock_module, "time", fake)

    def on_tick(k):
        if k == 3 * ADAPT_TICKS:
            clock.stop()

    clock = Clock(0.001, on_tick)
    clock._loop()
    assert clock.spin_s == SPIN_S and clock.late_wakes > 0
