"""The JACK server under our ports: is it there, does it run its cycles, who is connected to us.

rtmidi's JACK clients are never told when the server goes away, so a watch notices it two ways
(either alone can miss it, docs/reliability.md): a silent JACK-Client client whose shutdown callback
fires, and, on Linux, the server's listening socket in /proc/net/unix, which disappears when the
server dies and comes back with another inode when a new server takes its name.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

log = logging.getLogger("firefly_midi.ports")


def jack_server_socket() -> str | None:
    """The inode of the JACK server's listening socket (jack2 on Linux), or None when not found."""
    server = os.environ.get("JACK_DEFAULT_SERVER") or "default"
    path = os.path.join(os.environ.get("JACK_TMPDIR", "/dev/shm"), f"jack_{server}_{os.getuid()}_0")
    try:
        with open("/proc/net/unix") as table:
            for line in table:
                fields = line.split()
                if len(fields) == 8 and fields[7] == path and fields[3] == "00010000":  # __SO_ACCEPTCON: listening
                    return fields[6]
    except OSError:
        return None
    return None


def server_gone(server: str | None, wait_s: float = 0.0) -> bool:
    """Whether the JACK server whose socket was ``server`` has died (or been replaced) since.

    ``wait_s``: after a call into libjack failed, look that long: a jackd killed outright breaks its
    clients' connections before its listening socket leaves /proc/net/unix.
    """
    if server is None:
        return False
    deadline = time.monotonic() + wait_s
    while jack_server_socket() == server:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def frames_between(first: int, last: int) -> int:
    """Frames from JACK frame time ``first`` to ``last``: jack_nframes_t is 32 bits and wraps."""
    return (last - first) % 2**32


class JackWatch:
    """Notices the JACK server going away or standing still, and lists and restores connections."""

    LOOK_EVERY_S = 0.5
    PACE_WINDOW_S = 0.25  # the server's pace is measured over windows this long at least
    STALL_KEPT_S = 2.5  # a stall counts this long after: longer than the heartbeat takes to call an input deaf
    RESTORE_FOR_S = 30.0  # a connection to restore whose other port is not there yet is tried this long

    def __init__(self, client: Any, server_socket: str | None = None):
        self.client = client
        self._pace: tuple[float, int] | None = None  # (monotonic, the server's last cycle's first frame)
        self._stalled_until = 0.0
        self._samplerate = 0  # set by start(), with the client
        self.pace = 1.0  # frames the server ran in the last window, over those its sample rate asks for
        self.gone = threading.Event()
        self.listener_joined = threading.Event()  # something was connected to our output (told by JACK)
        # the server the ports opened on, seen before they opened: if it died since, alive() says so
        self.server_socket = server_socket or jack_server_socket()
        self._next_look = 0.0
        self._pending: list[list[str]] = []  # connections to restore once their other port appears
        self._pending_until = 0.0
        self.graph_changed_at = time.monotonic()  # a port or client came, went, (dis)connected: see wait_quiet

    @classmethod
    def start(cls, name: str, server_socket: str | None = None, output: str | None = None) -> JackWatch:
        """A watch on the server the ports just opened on; its JACK client is optional (the socket
        look still works without it, but connections cannot be listed or restored, nor a new
        connection to ``output``, our output port, noticed)."""
        watch = cls(None, server_socket)
        try:
            import jack

            client = jack.Client(f"{name}-watch", no_start_server=True)
            client.set_shutdown_callback(lambda status, reason: watch.gone.set())

            def changed(*_: Any) -> None:  # on JACK's notification thread
                watch.graph_changed_at = time.monotonic()

            def connected(a: Any, b: Any, connect: bool) -> None:
                changed()
                if connect and output is not None and output in (getattr(a, "name", None), getattr(b, "name", None)):
                    watch.listener_joined.set()

            client.set_port_connect_callback(connected, only_available=False)
            client.set_port_registration_callback(changed, only_available=False)
            client.set_client_registration_callback(changed)
            client.activate()
            client.get_ports()  # JACK-Client keeps the ports it has seen, so the callback gets them (its docs)
            watch._samplerate = client.samplerate
            watch.client = client
        except Exception as exc:  # no JACK-Client or libjack, or jack.JackError: a busy or dying server
            log.warning("no JACK client to watch the server (%s): port connections are not kept", exc)
        if watch.client is None and watch.server_socket is None:
            log.warning("a lost JACK server will not be noticed")
        return watch

    def alive(self) -> bool:
        if self.gone.is_set():
            return False
        if self.server_socket is None or time.monotonic() < self._next_look:
            return True
        self._next_look = time.monotonic() + self.LOOK_EVERY_S
        if jack_server_socket() != self.server_socket:
            self.gone.set()
            return False
        return True

    def stalled(self) -> bool:
        """True while, or shortly after, the server ran under half the cycles its sample rate asks for.

        A synchronous jack2 waiting on a client that died stops its cycles for seconds, and every
        client hears nothing meanwhile: that is no sign of a deaf input.  Opening a client then
        blocks in libjack too, with python-rtmidi holding the GIL.  ``jack_last_frame_time`` reads
        the server's shared memory: no round trip.  Called every housekeeping pass.
        """
        if self.client is None or self.gone.is_set():
            return False
        now, frame = time.monotonic(), self.client.last_frame_time
        if self._pace is None:
            self._pace = (now, frame)
        elif now - self._pace[0] >= self.PACE_WINDOW_S:
            (then, first), self._pace = self._pace, (now, frame)
            self.pace = frames_between(first, frame) / (self._samplerate * (now - then) or 1.0)
            if self.pace < 0.5:
                self._stalled_until = now + self.STALL_KEPT_S
        return now < self._stalled_until

    def wait_quiet(self, quiet_s: float = 0.05, timeout_s: float = 0.5) -> None:
        """Wait until no port or client has come, gone or been (dis)connected for ``quiet_s``.

        Before our rtmidi ports close: each such change sends every client latency notifications,
        and libjack handles them racing against a port's unregistering (rtmidi.close_quietly)."""
        if self.client is None or self.gone.is_set():
            return
        deadline = time.monotonic() + timeout_s
        while (now := time.monotonic()) - self.graph_changed_at < quiet_s and now < deadline:
            time.sleep(0.005)

    def wait_cycles(self, cycles: int, timeout_s: float) -> bool:
        """Wait until the server has run ``cycles`` more cycles; False if it did not within ``timeout_s``."""
        if self.client is None or self.gone.is_set():
            return False
        client = self.client
        first, needed = client.last_frame_time, cycles * client.blocksize
        deadline = time.monotonic() + timeout_s
        while frames_between(first, client.last_frame_time) < needed:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.0005)
        return True

    def cycle_s(self) -> float:
        """The server's period in seconds (0.0: unknown)."""
        if self.client is None or self.gone.is_set() or not self._samplerate:
            return 0.0
        try:
            return self.client.blocksize / self._samplerate
        except Exception:  # jack.JackError: a dying server
            return 0.0

    def realtime(self) -> bool | None:
        """Whether the server runs with real-time priority (None: unknown)."""
        if self.client is None:
            return None
        try:
            return bool(self.client.realtime)
        except Exception:  # jack.JackError: a dying server
            return None

    def connections(self, ours: list[str]) -> list[list[str]] | None:
        """[our port, other port] for every connection of ``ours``; None if the server would not say."""
        if self.client is None:  # no JACK-Client: return before importing it
            return None
        import jack

        pairs = []
        try:
            for name in ours:
                port = self.client.get_port_by_name(name)
                pairs.extend([name, other.name] for other in self.client.get_all_connections(port))
        except jack.JackError:
            return None
        return None if self.gone.is_set() else sorted(pairs)

    def restore(self, pairs: list[list[str]], ours: list[str]) -> int:
        """Make the connections in ``pairs`` that are missing; those whose other port is not there
        yet are tried again for RESTORE_FOR_S, whenever ``kept_connections`` looks (a synth started
        with the server may come back after us).  Returns how many were made now."""
        made = self.connect(pairs)
        if made:
            log.info("restored %d port connection(s)", made)
        current = self.connections(ours) or []
        self._pending = [pair for pair in pairs if pair not in current]
        self._pending_until = time.monotonic() + self.RESTORE_FOR_S
        return made

    def kept_connections(self, ours: list[str]) -> list[list[str]] | None:
        """``connections(ours)`` and the restores still waiting; a waiting one is tried first."""
        pairs = self.connections(ours)
        if pairs is None:
            return None
        waiting = time.monotonic() < self._pending_until
        if self._pending and waiting and self.connect(self._pending):
            log.info("restored a port connection whose other port came back")
            pairs = self.connections(ours) or pairs
        self._pending = [pair for pair in self._pending if pair not in pairs] if waiting else []
        return sorted(pairs + self._pending)

    def connect(self, pairs: list[list[str]]) -> int:
        """Make the connections that are missing and possible; returns how many were made."""
        if self.client is None:
            return 0
        import jack

        made = 0
        for ours, theirs in pairs:
            try:
                port = self.client.get_port_by_name(ours)
                source, destination = (ours, theirs) if port.is_output else (theirs, ours)
                if theirs not in {p.name for p in self.client.get_all_connections(port)}:
                    self.client.connect(source, destination)
                    made += 1
            except jack.JackError as exc:  # the other side is not there (yet): nothing to restore
                log.debug("could not restore %s <-> %s: %s", ours, theirs, exc)
        return made

    def close(self) -> None:
        if self.client is not None and not self.gone.is_set():
            try:
                self.client.deactivate()
                self.client.close()
            except Exception as exc:
                log.debug("closing the JACK watch failed: %s", exc)
