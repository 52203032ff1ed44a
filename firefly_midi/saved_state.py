"""What the daemon should be playing once every queued change is applied, and the file that keeps it.

Control threads (the socket, OSC) change it through ``change`` and ``replace``; the daemon's main
thread adds what MIDI learn made on the tick (``learned``) and the ports' connections.  A lock makes
each read-modify-write whole, so a ``set`` racing a MIDI learn cannot drop the binding.  The tick
thread never touches this: it plays ``Player.values`` and reports learned bindings through a queue.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from firefly_midi import automation, presets
from firefly_midi import params as P

log = logging.getLogger("firefly_midi.daemon")


class SavedState:
    """The wanted values, the preset they started from, the port connections; written to ``path``."""

    def __init__(self, values: dict[str, Any], preset: str = "", path: Path | None = None):
        P.check_consistency(values)
        self._values = dict(values)
        self._lock = threading.Lock()
        self.preset = preset
        self.path = path  # None: kept nowhere
        self.connections: list[list[str]] = []  # [our port, other port]: restored on start

    @property
    def values(self) -> dict[str, Any]:
        """A copy of the wanted values, safe to read from any thread."""
        with self._lock:
            return dict(self._values)

    def change(self, key: str, value: Any) -> dict[str, Any]:
        """Check ``key = value`` against the wanted values, keep it and return the new values (ParamError if bad)."""
        value = P.check(key, value)
        with self._lock:
            trial = dict(self._values, **{key: value})
            P.check_consistency(trial)
            self._values = trial
        self.save()
        return trial

    def replace(self, values: dict[str, Any], preset: str) -> None:
        """A whole new parameter set (a preset switch); the connections stay."""
        P.check_consistency(values)
        with self._lock:
            self._values, self.preset = dict(values), preset
        self.save()

    def learned(self, bindings: tuple[automation.Binding, ...]) -> None:
        """MIDI learn made ``bindings`` on the tick: keep them with the other changes."""
        with self._lock:
            self._values = dict(self._values, learn=bindings)
        self.save()

    def keep_connections(self, connections: list[list[str]]) -> bool:
        """Keep the ports' current connections; True when they changed (and were written)."""
        if connections == self.connections:
            return False
        self.connections = connections
        self.save()
        return True

    def save(self) -> None:
        """Write the preset, the tweaks on top of it and the connections, so a restart resumes them."""
        if self.path is None:
            return
        with self._lock:
            preset, values = self.preset, self._values
        try:
            presets.save_state(self.path, preset, values, self.connections)
        except OSError as exc:
            log.warning("could not keep the state in %s: %s", self.path, exc)
