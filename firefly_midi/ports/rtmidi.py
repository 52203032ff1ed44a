"""The python-rtmidi backend: ALSA, CoreMIDI, Windows MM, and JACK (see jack_rtmidi for its input).

The tick talks to python-rtmidi directly: ``send_message`` with a reused list, ``get_message``
polled once per tick.  Not callbacks: python-rtmidi runs them on JACK's real-time thread where
they must take the GIL, and under a heavy swarm kernel a callback design lost messages and stalled
for tens of ms, while polling lost none.  Not mido's port objects: they build a ``Message`` per event.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from firefly_midi.ports.base import Backend, Incoming, PortConfig, PortError

log = logging.getLogger("firefly_midi.ports")

DRAIN_S = 0.05  # a few JACK periods (1.3 ms at 64 frames; 21 ms at 1024 frames / 48 kHz)
INPUT_QUEUE = 4096  # messages rtmidi keeps for the tick between two polls
CLOSE_GAP_S = 0.03  # between closing two ports: see close_quietly


def rtmidi_errors() -> tuple[type[BaseException], ...]:
    """What python-rtmidi raises when a port cannot be made (its own errors, and C-level ones)."""
    import rtmidi

    return (rtmidi.RtMidiError, SystemError, RuntimeError, PortError)


def platform_backends(backend: str) -> list[str]:
    """The backends to try, in order: ``auto`` is the platform's own, then JACK if a server runs."""
    if backend != "auto":
        return [backend]
    if sys.platform.startswith("linux"):
        return ["alsa", "jack"]
    if sys.platform == "darwin":
        return ["coremidi", "jack"]
    if sys.platform.startswith("win"):
        return ["windows"]
    return ["jack"]


def api_of(kind: str) -> int:
    """python-rtmidi's API constant for a backend name; PortError if this build lacks it."""
    import rtmidi

    api = {
        "alsa": rtmidi.API_LINUX_ALSA,
        "jack": rtmidi.API_UNIX_JACK,
        "coremidi": rtmidi.API_MACOSX_CORE,
        "windows": rtmidi.API_WINDOWS_MM,
    }[kind]
    if api not in rtmidi.get_compiled_api():
        raise PortError(f"python-rtmidi was built without {kind} support")
    return api


def open_port(port: Any, name: str, connect_to: str | None, direction: str) -> None:
    """A virtual port called ``name``, or a port connected to the existing one matching ``connect_to``."""
    if connect_to is None:
        port.open_virtual_port(name)
        return
    available = port.get_ports()
    for index, existing in enumerate(available):
        if connect_to in existing:
            port.open_port(index, name)
            return
    listing = ", ".join(available) or "none"
    raise PortError(f"no MIDI {direction} port matching {connect_to!r}; available: {listing}")


def close_quietly(*ports: Any) -> None:
    """Close rtmidi ports, never raising: closing a port of a dead server must not stop a shutdown.

    A pause after each: unregistering a JACK port makes the server tell every client to recompute
    its latencies, and libjack walks a client's port list on its notification thread while
    ``jack_port_unregister`` edits that list, unlocked (jack2 #216; docs/reliability.md).  The next
    port closed before the notifications about the last one were handled can segfault the daemon.
    """
    closing = [port for port in ports if port is not None]
    for i, port in enumerate(closing):
        if i:
            time.sleep(CLOSE_GAP_S)
        try:
            port.close_port()
            port.delete()
        except Exception as exc:
            log.debug("closing a port failed: %s", exc)


def input_client(config: PortConfig, kind: str) -> str:
    """rtmidi makes one client per port; JACK wants unique client names, so the input's says so."""
    return f"{config.client}-in" if kind == "jack" else config.client


def open_input(config: PortConfig, kind: str) -> Any:
    """An rtmidi input on ``kind`` that drops sysex (never a flash; keeps a sysex flood out of the queue)."""
    import rtmidi

    inp = rtmidi.MidiIn(api_of(kind), input_client(config, kind), queue_size_limit=INPUT_QUEUE)
    try:
        inp.ignore_types(sysex=True, timing=not config.clock_in, active_sense=True)
        open_port(inp, config.in_name, config.connect_in, "input")
    except BaseException:
        close_quietly(inp)
        raise
    return inp


class RtMidiBackend(Backend):
    """An rtmidi output and optional input; ``open`` makes them, or raises PortError."""

    def __init__(self, kind: str, config: PortConfig, out: Any, inp: Any = None):
        super().__init__()
        self.kind, self.config, self.out, self.inp = kind, config, out, inp
        self.on_jack = kind == "jack"

    @classmethod
    def open(cls, kind: str, config: PortConfig) -> RtMidiBackend:
        """Output and input (if wanted) on ``kind``; nothing is kept open if either fails."""
        import rtmidi

        out = inp = None
        try:
            out = rtmidi.MidiOut(api_of(kind), config.client)
            open_port(out, config.out_name, config.connect_out, "output")
            inp = open_input(config, kind) if config.use_input else None
        except rtmidi_errors() as exc:
            close_quietly(out, inp)
            raise PortError(str(exc).strip() or type(exc).__name__) from None
        return cls(kind, config, out, inp)

    def names(self) -> list[str]:
        cfg = self.config
        names = [f"{cfg.client}:{cfg.out_name}"] if self.out is not None else []
        return names + ([f"{input_client(cfg, self.kind)}:{cfg.in_name}"] if self.inp is not None else [])

    def _send(self, message: Sequence[int], time_s: float | None) -> None:
        self.out.send_message(message)  # at once: rtmidi has no scheduling

    def _poll(self) -> Incoming | None:
        return self.inp.get_message() if self.inp is not None else None

    def _close(self) -> None:
        # rtmidi queues output for JACK's next cycle, and a port closed before it drops what is
        # queued: the last note-offs, of all messages
        if self.sent:
            time.sleep(DRAIN_S)
        ports, self.out, self.inp = (self.out, self.inp), None, None
        close_quietly(*ports)
