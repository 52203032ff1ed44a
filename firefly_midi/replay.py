"""Record a live session, replay it offline: ``daemon --record FILE``, ``render --replay FILE``.

The player is pure and dates its input on swarm time, so what it played is fixed by its start
values, the messages it heard (each with its tick and its fraction of the tick), the ticks the clock
skipped, and the commands applied between ticks.  A recording keeps exactly those, as JSON lines:

    {"recording": 1, "preset": ..., "seed": ..., "values": {...}}      the header: what the player started with
    {"k": 12, "m": [153, 36, 100], "f": 0.25}                          a message heard in tick 12
    {"k": 40, "jump": 35}                                              the clock went from tick 35 to 40
    {"k": 90, "do": "set", "args": ["follow.notes", [36, 38]]}        a command applied before tick 90
    {"k": 2000, "end": true}                                           the last tick played

The tick thread only writes into a preallocated ring (messages) and a deque (commands and skipped
ticks, both rare and already allocating); the main thread drains them to the file.  ``replay`` plays
a recording through a fresh Player tick by tick, as the daemon did: same notes, same order, same
clock (``tests/test_replay.py`` compares with what the daemon sent).
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import IO, Any

import numpy as np

from firefly_midi import params as P
from firefly_midi.errors import FireflyError
from firefly_midi.player import InputSource, Player, build_parts
from firefly_midi.swarm import Swarm

CAPACITY = 1 << 16  # messages the ring holds between two drains (every 50 ms): a flood is counted as lost


class RecordingError(FireflyError, ValueError):
    """A recording file that cannot be replayed."""


class SessionLog:
    """The tick thread's side: what the player heard and what was done to it (single producer)."""

    def __init__(self, capacity: int = CAPACITY):
        self.k = np.zeros(capacity, dtype=np.int64)
        self.frac = np.zeros(capacity, dtype=np.float64)
        self.data = np.zeros((capacity, 3), dtype=np.int64)
        self.size = np.zeros(capacity, dtype=np.int64)
        self.written = 0  # messages pushed so far (the drain reads up to here)
        self.lost = 0  # messages the ring had no room for, or longer than three bytes
        self.actions: deque[tuple[int, str, Any]] = deque()  # (tick, what, payload): commands and jumps
        self.tick_k = -1  # the tick being played, or the last one played
        self.at = 0  # the tick a command applied now goes before

    def start_tick(self, k: int) -> None:
        """Tick ``k`` begins (before its commands)."""
        if k != self.tick_k + 1:
            self.actions.append((k, "jump", self.tick_k))
        self.tick_k = self.at = k

    def end_tick(self) -> None:
        """Tick ``tick_k`` is played: what is done from now on goes before the next one."""
        self.at = self.tick_k + 1

    def push(self, message: list[int], frac: float, read: int) -> None:
        i = self.written
        if i - read >= self.k.size or not 1 <= len(message) <= 3:
            self.lost += 1
            return
        j = i % self.k.size
        self.k[j], self.frac[j], self.size[j] = self.tick_k, frac, len(message)
        for b in range(len(message)):
            self.data[j, b] = message[b]
        self.written = i + 1

    def did(self, what: str, *args: Any) -> None:
        """A command applied to the player now, JSON-ready ``args`` (called on the tick thread)."""
        self.actions.append((self.at, what, args))


class RecordingInput:
    """An input source that logs what it hands the player."""

    def __init__(self, source: InputSource, log: SessionLog, recorder: Recorder):
        self.source, self.log, self.recorder = source, log, recorder

    def poll(self) -> tuple[list[int], float] | None:
        item = self.source.poll()
        if item is not None:
            self.log.push(item[0], item[1], self.recorder.read)
        return item


class Recorder:
    """The main thread's side: drains a SessionLog into the file."""

    def __init__(self, path: Path, preset: str, values: dict[str, Any], source: InputSource):
        """``source``: the input the player hears; it reads ``input``, which logs it on the way."""
        self.log = SessionLog()
        self.read = 0
        self.input = RecordingInput(source, self.log, self)
        self._file: IO[str] = path.open("w", encoding="utf-8")
        header = {"recording": 1, "preset": preset, "seed": values["swarm.seed"], "values": P.jsonable(values)}
        self._file.write(json.dumps(header) + "\n")

    def drain(self) -> None:
        log, out = self.log, self._file
        while log.actions:
            k, what, payload = log.actions.popleft()
            line = {"k": k, "jump": payload} if what == "jump" else {"k": k, "do": what, "args": list(payload)}
            out.write(json.dumps(line) + "\n")
        written = log.written
        for i in range(self.read, written):
            j = i % log.k.size
            message = [int(b) for b in log.data[j, : log.size[j]]]
            out.write(json.dumps({"k": int(log.k[j]), "m": message, "f": float(log.frac[j])}) + "\n")
        self.read = written
        out.flush()

    def close(self) -> None:
        if self._file.closed:
            return
        self.drain()
        self._file.write(json.dumps({"k": self.log.tick_k, "end": True, "lost": self.log.lost}) + "\n")
        self._file.close()


# ------------------------------------------------------------------------------------------------ replay
def load(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header and the lines of a recording, each line's tick in order (commands before messages)."""
    try:
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise RecordingError(f"{path}: not a recording ({exc})") from None
    if not lines or lines[0].get("recording") != 1:
        raise RecordingError(f"{path}: not a firefly-midi recording (no header)")
    body = sorted(lines[1:], key=lambda line: (line["k"], "m" in line))  # stable: commands, then messages
    return lines[0], body


def recorded_values(header: dict[str, Any]) -> dict[str, Any]:
    values = {key: P.check(key, value) for key, value in header["values"].items()}
    P.check_consistency(values)
    return values


class _Heard:
    """The messages of one tick, as the player polls them."""

    def __init__(self) -> None:
        self.items: deque[tuple[list[int], float]] = deque()

    def poll(self) -> tuple[list[int], float] | None:
        return self.items.popleft() if self.items else None


def replay(path: Path, values: dict[str, Any] | None = None) -> list[tuple[float, list[int]]]:
    """Every event the recorded session played, as (time_s, bytes); ``values``: play the same input
    and commands with other start values (another preset over the same drummer)."""
    header, body = load(path)
    player = Player(values or recorded_values(header))
    played: list[tuple[float, list[int]]] = []
    heard, k, i = _Heard(), 0, 0
    end = next((line["k"] for line in body if line.get("end")), max((line["k"] for line in body), default=-1))
    while k <= end:
        while i < len(body) and body[i]["k"] == k:
            line = body[i]
            if "m" in line:
                heard.items.append((line["m"], line["f"]))
            elif "do" in line:
                _collect(player, _do(player, line["do"], line["args"]), played)
            i += 1
        if i < len(body) and "jump" in body[i] and body[i]["k"] > k and body[i]["jump"] < k:
            k = body[i]["k"]  # the live clock skipped the ticks before this one
            continue
        _collect(player, player.tick(k, heard), played)
        k += 1
    _collect(player, player.silence(), played)
    return played


def _do(player: Player, what: str, args: list[Any]) -> int:
    """Apply one recorded command; returns how many events it left in ``player.events``."""
    if what == "set":
        key, value = args[0], P.check(args[0], args[1])
        if P.PARAMS[key].effect == "reshape":
            player.adopt(key, value, player.reshaped(key, value))
        else:
            player.apply(key, value)
    elif what == "load":
        player.swap(build_parts(recorded_values({"values": args[0]})))
    elif what in ("pause", "resume"):
        player.paused = what == "pause"
    elif what == "reseed":
        player.adopt("swarm.seed", args[0], Swarm({**player.values, "swarm.seed": args[0]}, threads=player.swarm.threads))
        player.mapper.tempo.reset()
    elif what == "forward":
        player.forward(args[0])
    elif what == "learn":
        player.arm_learn(args[0], args[1], args[2])
    elif what == "learnbeats":
        player.arm_note_learn(args[0], args[1])
    elif what == "latency":
        player.set_output_latency(args[0])
    elif what == "silence":
        return player.silence()
    elif what == "all_notes_off":
        return player.all_notes_off()
    else:
        raise RecordingError(f"unknown command {what!r} in the recording")
    return 0


def _collect(player: Player, count: int, out: list[tuple[float, list[int]]]) -> None:
    events = player.events
    out.extend((float(events.time_s[i]), list(events.message(i))) for i in range(count))
