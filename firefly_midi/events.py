"""One tick's MIDI events: preallocated parallel arrays, in time order, never grown."""

from __future__ import annotations

import numpy as np

from firefly_midi.note_kernels import sort_events

EVENT_CAPACITY = 4096  # above the worst tick with the largest caps: 2048 offs + 3·128 + CC + clock


class EventBuffer:
    """Preallocated MIDI events of one tick: parallel arrays, in time order, never grown."""

    def __init__(self, capacity: int = EVENT_CAPACITY):
        self.time_s = np.zeros(capacity, dtype=np.float64)  # absolute swarm seconds
        self.status = np.zeros(capacity, dtype=np.uint8)
        self.data1 = np.zeros(capacity, dtype=np.uint8)
        self.data2 = np.zeros(capacity, dtype=np.uint8)
        self.size = np.zeros(capacity, dtype=np.uint8)  # 1..3 bytes
        self.count = 0
        self.overflow = 0
        self._messages = ([0], [0, 0], [0, 0, 0])  # one reusable list per message size
        self.sort_kernel = sort_events  # or its interpreted twin (Mapper.use_engine)

    @property
    def capacity(self) -> int:
        return self.time_s.size

    def clear(self) -> None:
        self.count = 0

    def push(self, time_s: float, status: int, data1: int = 0, data2: int = 0, size: int = 3) -> bool:
        """Append one event; False (and counted) when full."""
        i = self.count
        if i >= self.time_s.size:
            self.overflow += 1
            return False
        self.time_s[i] = time_s
        self.status[i] = status
        self.data1[i] = data1
        self.data2[i] = data2
        self.size[i] = size
        self.count = i + 1
        return True

    def message(self, i: int) -> list[int]:
        """Event i as a list of ints, in a reused list: valid until the next call of the same size."""
        size = int(self.size[i])
        out = self._messages[size - 1]
        out[0] = int(self.status[i])
        if size > 1:
            out[1] = int(self.data1[i])
        if size > 2:
            out[2] = int(self.data2[i])
        return out

    def sort(self) -> None:
        if self.count > 1:
            self.sort_kernel(self.time_s, self.status, self.data1, self.data2, self.size, self.count)

    def as_list(self) -> list[tuple[float, list[int]]]:
        """(time, bytes) of every event: for tests and offline use (allocates)."""
        return [(float(self.time_s[i]), list(self.message(i))) for i in range(self.count)]
