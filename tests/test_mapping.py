"""Flashes → MIDI events: note pairing, caps, velocities, voices, input and clock.

Most properties run over random flash sequences (hypothesis) in every mode and split; each can fail if
the mapper leaves a note sounding, overlaps a note, plays off the scale or breaks a cap.
"""

import sys
import tomllib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from firefly_midi import params as P
from firefly_midi import presets
from firefly_midi.events import EventBuffer
from firefly_midi.inputs import ClockIn, InputMap
from firefly_midi.mapping import Mapper
from firefly_midi.swarm import Swarm
from firefly_midi.voicing import SCALE_STEPS, scale_notes, voice_notes

NOTE_ON, NOTE_OFF = 0x90, 0x80


# ----------------------------------------------------------------------------------------------- helpers
def make(n=24, **mapping):
    """A small grid swarm (so every split works) and a mapper with ``mapping`` overrides."""
    values = {"swarm.n": n, "swarm.topology": "grid", "swarm.neighbors": 1, "swarm.freq_dist": "uniform", "swarm.freq_spread_hz": 0.3}
    values.update({k if "." in k else f"mapping.{k}": v for k, v in mapping.items()})
    swarm = Swarm(values)
    return Mapper(swarm.values, swarm)


def drive(mapper, flashes, ticks, order=None, start=0, panic=True):
    """Tick the mapper from ``start`` for ``ticks`` ticks with ``flashes`` {tick: (ids, times)}, then panic.

    Returns [(tick, [(time, bytes), ...]), ...], the panic as tick None.
    """
    empty_ids, empty_times = np.zeros(0, dtype=np.int64), np.zeros(0)
    out = []
    for k in range(start, start + ticks):
        ids, times = flashes.get(k, (empty_ids, empty_times))
        r = order(k) if order else min(1.0, ids.size / mapper.swarm.n)
        if mapper.tick(k, ids, times, r):
            out.append((k, mapper.events.as_list()))
    if panic and mapper.panic(start + ticks):
        out.append((None, mapper.events.as_list()))
    return out


def note_ons(stream):
    return [(t, m) for _, events in stream for t, m in events if m[0] & 0xF0 == NOTE_ON and m[2] > 0]


def assert_well_formed(stream, dt):
    """Events in time order inside their tick, every on paired with one off, no overlapping same notes."""
    sounding = {}
    for k, events in stream:
        times = [t for t, _ in events]
        assert times == sorted(times), "events of one tick must be in time order"
        if k is not None:
            assert all(k * dt - 1e-12 <= t < (k + 1) * dt + 1e-12 for t in times), "an event outside its tick"
        for t, m in events:
            key = (m[0] & 0x0F, m[1]) if len(m) == 3 else None
            if m[0] & 0xF0 == NOTE_ON and m[2] > 0:
                assert key not in sounding, f"note {key} started again while sounding"
                sounding[key] = t
            elif m[0] & 0xF0 == NOTE_OFF or (m[0] & 0xF0 == NOTE_ON and m[2] == 0):
                assert key in sounding, f"note-off {key} without a note-on"
                assert t >= sounding.pop(key)
    assert not sounding, f"still sounding after panic: {sorted(sounding)}"


def in_scale(note, scale, root):
    return root <= note <= 127 and (note - root) % 12 in SCALE_STEPS[scale]


@st.composite
def scenarios(draw):
    """Mapping parameters over every mode and split, and a random flash sequence."""
    n = draw(st.integers(1, 40))
    root = draw(st.integers(0, 110))
    mapping = {
        "mode": draw(st.sampled_from(["voices", "per_firefly", "density"])),
        "split": draw(st.sampled_from(["id", "frequency", "region"])),
        "voices": draw(st.integers(1, 20)),
        "scale": draw(st.sampled_from(P.SCALES)),
        "root": root,
        "octaves": draw(st.integers(1, min(8, (127 - root) // 12))),
        "channels": tuple(draw(st.lists(st.integers(1, 16), min_size=1, max_size=4))),
        "velocity_curve": draw(st.sampled_from(["linear", "soft", "hard", "fixed"])),
        "note_ms": draw(st.floats(1.0, 800.0)),
        "note_fraction": draw(st.sampled_from([0.0, 0.0, 0.1, 0.7, 2.5])),
        "max_notes_per_tick": draw(st.integers(1, 6)),
        "max_notes_per_s": draw(st.integers(1, 60)),
        "cc_order": draw(st.sampled_from([-1, 1, 74])),
        "clock_out": draw(st.booleans()),
        "swarm.freq_hz": draw(st.sampled_from([0.5, 1.0, 4.0])),
    }
    low = draw(st.integers(1, 127))
    mapping["velocity_min"], mapping["velocity_max"] = low, draw(st.integers(low, 127))
    flashes, k = {}, 0
    for _ in range(draw(st.integers(0, 30))):
        k += draw(st.integers(0, 150))
        ids = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
        times = draw(st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=len(ids), max_size=len(ids)))
        flashes[k] = (np.array(ids, dtype=np.int64), np.array(times))
        k += 1
    return n, mapping, flashes, k + draw(st.integers(0, 1500))


# ----------------------------------------------------------------------------------------------- properties
@given(scenarios())
def test_random_flashes_give_well_formed_capped_notes_in_the_scale(scenario):
    n, mapping, flashes, ticks = scenario
    mapper = make(n, **mapping)
    stream = drive(mapper, flashes, ticks)
    assert_well_formed(stream, mapper.dt)

    ons = note_ons(stream)
    assert len(ons) == mapper.notes_out
    scale, root, octaves = mapping["scale"], mapping["root"], mapping["octaves"]
    top = 127 if mapping["mode"] == "voices" and mapping["voices"] > len(scale_notes(scale, root, octaves)) else root + 12 * octaves
    for _, (status, note, velocity) in ons:
        assert in_scale(note, scale, root) and note <= top
        assert mapping["mode"] != "density" or note == root
        assert (status & 0x0F) + 1 in mapping["channels"]
        assert mapping["velocity_min"] <= velocity <= mapping["velocity_max"]
        assert mapping["velocity_curve"] != "fixed" or velocity == mapping["velocity_max"]

    per_tick = {}
    for k, events in stream:
        per_tick[k] = sum(1 for _, m in events if m[0] & 0xF0 == NOTE_ON)
    assert max(per_tick.values(), default=0) <= mapping["max_notes_per_tick"]
    on_times = np.array([t for t, _ in ons])
    allowed = mapper.bucket_capacity + mapping["max_notes_per_s"] * (1.0 + mapper.dt) + 1e-9
    for t in on_times:
        assert np.count_nonzero((on_times >= t) & (on_times < t + 1.0)) <= allowed

    # The excess is counted, not queued: without caps exactly dropped_notes more notes play.
    free = make(n, **{**mapping, "max_notes_per_tick": 128, "max_notes_per_s": 10_000})
    drive(free, flashes, ticks)
    assert free.dropped_notes == 0
    assert mapper.notes_out + mapper.dropped_notes == free.notes_out
    assert drive(make(n, **mapping), flashes, ticks) == stream, "same flashes, same events"


@given(st.lists(st.lists(st.integers(-300, 300), max_size=5), max_size=30), st.sampled_from(["all", "voice"]))
def test_input_never_raises_and_accepts_only_matching_note_ons(messages, target):
    mapper = make(16, mode="voices", voices=4)
    swarm = RecordingSwarm()
    inputs = InputMap({**mapper.values, "input.target": target}, mapper)
    for message in [*messages, [], [0x90], b"\x90\x3c", "abc", None, 3.5, [0x90, 60.0, 100], {0: 0x90}]:
        expected = (
            isinstance(message, list)
            and len(message) == 3
            and all(isinstance(b, int) for b in message)
            and 0x90 <= message[0] <= 0x9F
            and 0 <= message[1] <= 127
            and 0 < message[2] <= 127
        )
        assert inputs.apply(message, 0.5, swarm) is expected
    assert inputs.counts.flashes == len(swarm.calls)
    assert inputs.counts.flashes + inputs.counts.ignored == len(messages) + 8


# ----------------------------------------------------------------------------------------------- musical rules
def burst(ids, start_tick, width_ticks):
    """Flashes of ``ids`` spread evenly over ``width_ticks`` ticks from ``start_tick``."""
    out = {}
    for j, i in enumerate(ids):
        k = start_tick + j * width_ticks // len(ids)
        prev = out.get(k, (np.zeros(0, dtype=np.int64), np.zeros(0)))
        out[k] = (np.append(prev[0], i).astype(np.int64), np.append(prev[1], 0.5))
    return out


class SteadyTempo:
    """A tempo that stays put, so the hold-off is known whatever the synthetic flashes add up to."""

    n_live, hz = 100, 1.0

    def update(self, flash_count):
        pass


def test_growing_bursts_play_a_crescendo_one_beat_late():
    swarm = Swarm({"swarm.n": 100})
    mapper = Mapper({"mapping.mode": "density", "mapping.velocity_min": 20, "mapping.velocity_max": 120}, swarm, tempo=SteadyTempo())
    flashes = {}
    sizes = [10, 20, 40, 60, 80, 100]
    for beat, size in enumerate(sizes):
        flashes.update(burst(list(range(size)), 1000 * beat + 100, 30))
    ons = note_ons(drive(mapper, flashes, 6500))
    assert len(ons) == len(sizes), "one note per burst, however spread the burst"
    velocities = [m[2] for _, m in ons]
    assert velocities == sorted(velocities) and velocities[-1] > velocities[1]
    # Each note carries the share of the previous complete burst.
    assert velocities[2:] == [round(20 + 100 * s / 100) for s in sizes[1:-1]]


def test_a_synchronising_swarm_gets_louder():
    values = presets.resolve("pulse-sine", ["mapping.mode=voices", "mapping.voices=4", "mapping.velocity_curve=linear"])
    swarm = Swarm(values)
    mapper = Mapper(values, swarm)
    velocities = []
    for k in range(int(30 / swarm.dt)):
        swarm.step()
        mapper.tick(k, *swarm.flashes(), 0.0)
        velocities += [(k * swarm.dt, m[2]) for _, m in mapper.events.as_list() if m[0] & 0xF0 == NOTE_ON]
    early = np.mean([v for t, v in velocities if t < 5])
    late = np.mean([v for t, v in velocities if t > 25])
    assert late > early + 30


def test_frequency_split_puts_slow_fireflies_on_low_notes():
    mapper = make(60, mode="voices", split="frequency", voices=5)
    natural = mapper.swarm.state.natural
    lay = mapper.layout
    for v in range(4):
        assert natural[lay.voice_of == v].max() <= natural[lay.voice_of == v + 1].min()
        assert lay.note[v] < lay.note[v + 1]
    slowest, fastest = int(np.argmin(natural)), int(np.argmax(natural))
    flashes = {10: (np.array([fastest]), np.array([0.0])), 3000: (np.array([slowest]), np.array([0.0]))}
    (_, high), (_, low) = note_ons(drive(mapper, flashes, 4000))
    assert low[1] < high[1] and low[1] == lay.note.min()


def test_region_split_tiles_the_grid_into_squares():
    mapper = make(100, mode="voices", split="region", voices=4)  # a 10 x 10 lattice
    rows, cols = np.divmod(np.arange(100), 10)
    for v in range(4):
        members = mapper.layout.voice_of == v
        assert members.sum() == 25
        assert np.ptp(rows[members]) == 4 and np.ptp(cols[members]) == 4
    six = make(100, mode="voices", split="region", voices=6)
    assert sorted(np.bincount(six.layout.voice_of)) == [15, 15, 15, 15, 20, 20]


def test_voice_notes_spread_and_wrap_below_128():
    assert voice_notes("major", 60, 1, 2) == [60, 72]
    assert voice_notes("pentatonic", 48, 2, 11) == scale_notes("pentatonic", 48, 2)
    many = voice_notes("chromatic", 100, 1, 40)
    assert max(many) == 127 and many[28] == 100, "past 127 the voices wrap back to the root"
    assert set(SCALE_STEPS) == set(P.SCALES)


def test_retrigger_ends_the_sounding_note_first():
    mapper = make(4, mode="density", note_ms=5000.0, **{"swarm.freq_hz": 1.0})
    flashes = {100: (np.array([0]), np.array([0.25])), 1200: (np.array([1]), np.array([0.5]))}
    stream = drive(mapper, flashes, 1500)
    assert_well_formed(stream, mapper.dt)
    events = dict(stream)[1200]
    assert [m[0] & 0xF0 for _, m in events] == [NOTE_OFF, NOTE_ON]
    assert events[0][0] == events[1][0] == pytest.approx(1200.5 * mapper.dt)


def test_full_pending_table_ends_the_oldest_note_early():
    swarm = Swarm({"swarm.n": 8})
    mapper = Mapper({"mapping.mode": "per_firefly", "mapping.note_ms": 5000.0, "mapping.scale": "chromatic"}, swarm, pending_capacity=3)
    flashes = {10 * i: (np.array([i]), np.array([0.0])) for i in range(6)}
    stream = drive(mapper, flashes, 100)
    assert_well_formed(stream, mapper.dt)
    assert mapper.dropped_notes == 0 and mapper.notes_out == 6
    ended = [(k, m[1]) for k, events in stream if k is not None for _, m in events if m[0] & 0xF0 == NOTE_OFF]
    assert ended == [(30, 48), (40, 49), (50, 50)], "each new note ends the oldest one"


def test_panic_ends_everything_and_silences_every_channel_used():
    mapper = make(8, mode="per_firefly", channels=(2, 5), note_ms=10_000.0, clock_out=True)
    for k in range(5):
        mapper.tick(k, np.array([k], dtype=np.int64), np.array([0.0]), 0.0)
    assert mapper.sounding == 5
    mapper.panic(5)
    events = mapper.events.as_list()
    offs = [m for _, m in events if m[0] & 0xF0 == NOTE_OFF]
    all_off = [m for _, m in events if m[0] & 0xF0 == 0xB0 and m[1] == 123]
    assert len(offs) == 5 and {m[0] & 0x0F for m in all_off} == {1, 4}
    assert events[-1][1] == [0xFC]
    assert mapper.sounding == 0 and mapper.panic(6) == 2, "a second panic has only the All Notes Off left"


def test_live_update_keeps_sounding_notes_paired():
    mapper = make(24, mode="voices", voices=4, note_ms=300.0)
    stream = drive(mapper, {10: (np.arange(24), np.linspace(0, 0.9, 24))}, 50, panic=False)
    assert mapper.sounding == 4
    mapper.update({"mapping.voices": 7, "mapping.scale": "blues", "mapping.channels": (3,)})
    assert mapper.layout.voices == 7 and mapper.sounding == 4
    stream += drive(mapper, {1000: (np.arange(24), np.zeros(24))}, 2000, start=50)
    assert_well_formed([(None, [e for _, events in stream for e in events])], mapper.dt)


def test_order_parameter_cc_is_sent_on_change_at_most_every_10_ms():
    mapper = make(8, cc_order=1, cc_channel=3)
    stream = drive(mapper, {}, 200, order=lambda k: k / 200)
    cc = [(t, m) for _, events in stream for t, m in events if m[0] == 0xB2 and m[1] == 1]
    gaps = np.diff([t for t, _ in cc])
    assert len(cc) == 20 and gaps.min() >= 0.01 - 1e-9
    assert [m[2] for _, m in cc] == sorted({m[2] for _, m in cc})


def test_clock_out_sends_24_evenly_spaced_clocks_per_beat():
    mapper = make(8, clock_out=True, **{"swarm.freq_hz": 2.0})
    stream = drive(mapper, {}, 10_000)
    events = [(t, m) for _, evs in stream for t, m in evs]
    assert events[0] == (0.0, [0xFA]) and events[-1][1] == [0xFC]
    clocks = np.array([t for t, m in events if m == [0xF8]])
    assert abs(len(clocks) - 24 * 2 * 10) <= 1
    gaps = np.diff(clocks)
    assert gaps.mean() == pytest.approx(1 / 48, rel=1e-9) and gaps.std() < 1e-9


def test_clock_out_follows_the_live_tempo():
    mapper = make(10, clock_out=True, **{"swarm.freq_hz": 1.0})
    flashes = {}
    for beat in range(12):
        flashes.update(burst(list(range(10)), 500 * beat, 20))  # 2 Hz bursts, against 1 Hz nominal
    stream = drive(mapper, flashes, 6000)
    clocks = np.array([t for _, evs in stream for t, m in evs if m == [0xF8]])
    assert np.diff(clocks[clocks > 5.0]).mean() == pytest.approx(1 / 48, rel=0.01)


def test_quiet_ticks_allocate_nothing():
    mapper = make(50, mode="voices", voices=6, cc_order=7, clock_out=True, note_ms=2.0)
    ids, times = np.arange(50, dtype=np.int64), np.linspace(0, 0.99, 50)
    none_ids, none_times = ids[:0], times[:0]
    for k in range(3000):  # warm up: compile, notes on and off, clock running
        mapper.tick(k, ids if k % 1000 == 0 else none_ids, times if k % 1000 == 0 else none_times, 0.5)
    before = sys.getallocatedblocks()
    for k in range(3000, 13_000):
        mapper.tick(k, none_ids, none_times, 0.5)
    assert sys.getallocatedblocks() - before < 20


def test_event_buffer_counts_overflow_and_reuses_messages():
    buf = EventBuffer(2)
    assert buf.push(0.0, 0x90, 60, 100) and buf.push(0.1, 0xF8, size=1)
    assert not buf.push(0.2, 0x80, 60, 0)
    assert buf.count == 2 and buf.overflow == 1
    first = buf.message(0)
    assert first == [0x90, 60, 100] and buf.message(0) is first and buf.message(1) == [0xF8]


# ----------------------------------------------------------------------------------------------- input
class RecordingSwarm:
    def __init__(self):
        self.calls = []

    def inject(self, time_frac, strength, targets=None):
        self.calls.append((time_frac, strength, None if targets is None else targets.tolist()))
        return True


def test_input_channel_and_note_filters():
    mapper = make(8)
    values = {**mapper.values, "input.channels": (2,), "input.note_min": 40, "input.note_max": 80, "input.velocity_scaled": True}
    inputs, swarm = InputMap(values, mapper), RecordingSwarm()
    assert inputs.apply([0x91, 60, 127], 0.25, swarm)  # channel 2
    assert not inputs.apply([0x90, 60, 127], 0.25, swarm)  # channel 1
    assert not inputs.apply([0x91, 39, 127], 0.25, swarm)
    assert not inputs.apply([0x91, 81, 127], 0.25, swarm)
    assert not inputs.apply([0x91, 60, 0], 0.25, swarm), "velocity 0 is a note-off"
    assert not inputs.apply([0x81, 60, 64], 0.25, swarm)
    assert inputs.apply([0x91, 40, 64], 0.75, swarm)
    assert swarm.calls == [(0.25, 1.0, None), (0.75, pytest.approx(64 / 127), None)]
    inputs.update({**values, "input.enabled": False})
    assert not inputs.apply([0x91, 60, 127], 0.25, swarm)


def test_input_voice_target_is_the_nearest_voice():
    mapper = make(40, mode="voices", voices=4, scale="major", root=60, octaves=1)
    notes = mapper.layout.note.tolist()
    assert notes == [60, 64, 69, 72]
    inputs, swarm = InputMap({**mapper.values, "input.target": "voice"}, mapper), RecordingSwarm()
    for note in range(128):
        assert inputs.apply([0x90, note, 100], 0.0, swarm)
        voice = min(range(4), key=lambda v: (abs(notes[v] - note), notes[v]))
        assert swarm.calls[-1][2] == np.flatnonzero(mapper.layout.voice_of == voice).tolist()
    assert inputs.apply([0x90, 62, 100], 0.0, swarm) and swarm.calls[-1][2] == list(range(10)), "a tie goes to the lower note"


def test_input_counts_what_the_swarm_refuses():
    class FullSwarm(RecordingSwarm):
        def inject(self, time_frac, strength, targets=None):
            return False

    inputs = InputMap(make(8).values, make(8))
    assert not inputs.apply([0x90, 60, 100], 0.0, FullSwarm())
    assert inputs.counts.dropped == 1 and inputs.counts.flashes == 0


def test_clock_in_measures_the_tempo_and_resets():
    clock = ClockIn()
    interval = 0.5 / 24  # 120 BPM
    for i in range(23):
        clock.feed(10.0 + i * interval)
    assert clock.tempo_hz() is None
    clock.feed(10.0 + 23 * interval)
    assert clock.tempo_hz() == pytest.approx(2.0)
    assert clock.tempo_hz(now=13.0) is None, "silent for over 2 s"
    for i in range(30):  # a late clock and some jitter do not move the median
        clock.feed(11.0 + i * interval + (0.004 if i == 7 else 0.0))
    assert clock.tempo_hz() == pytest.approx(2.0)
    clock.stop()
    assert clock.tempo_hz() is None
    for i in range(24):
        assert clock.handle([0xF8], 20.0 + i * interval)
    assert clock.tempo_hz() == pytest.approx(2.0)
    assert clock.handle([0xFC], 21.0) and clock.tempo_hz() is None
    assert not clock.handle([0x90, 60, 1], 21.0) and not clock.handle([], 21.0) and not clock.handle(None, 21.0)


# ----------------------------------------------------------------------------------------------- presets
@pytest.mark.parametrize("name", sorted(path.stem for path in presets.shipped_dir().glob("*.toml")))
def test_every_shipped_preset_maps_and_plays(name):
    path = presets.shipped_dir() / f"{name}.toml"
    assert "mapping" in tomllib.loads(path.read_text())
    values = presets.resolve(name)
    swarm = Swarm(values)
    mapper = Mapper(values, swarm)
    stream = []
    for k in range(int(6 / swarm.dt)):
        swarm.step()
        if mapper.tick(k, *swarm.flashes(), 0.5):
            stream.append((k, mapper.events.as_list()))
    mapper.panic(int(6 / swarm.dt))
    stream.append((None, mapper.events.as_list()))
    assert_well_formed(stream, swarm.dt)
    assert mapper.notes_out > 0
