"""OSC control: the commands of the control socket as OSC messages over UDP (off unless asked for).

``serve_osc(daemon, port=9000)`` listens on 127.0.0.1 (UDP has no owner check: bind another host
only on a network you trust).  Every message runs the same command, with the same checks, as its
socket twin (docs/control.md):

    /firefly/set swarm.coupling 0.2      /firefly/get swarm.n          /firefly/preset grid-waves
    /firefly/save my-take                /firefly/pause  /firefly/resume  /firefly/reset
    /firefly/forward 10                  /firefly/panic  /firefly/stop
    /firefly/param/swarm/coupling 0.2    (a fader's address names the key: same as /firefly/set)

Errors go back to the sender as ``/firefly/error code message`` (and are logged); ``get`` answers
``/firefly/value key value``.  Other commands answer nothing, so a fader sending 100 messages a
second gets no echo.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

from firefly_midi.control import Commands

log = logging.getLogger("firefly_midi.osc")

PREFIX = "/firefly"
# address → (command, its positional arguments in order)
MESSAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "set": ("set", ("key", "value")),
    "get": ("get", ("key",)),
    "preset": ("preset", ("name",)),
    "save": ("save", ("name",)),
    "pause": ("pause", ()),
    "resume": ("resume", ()),
    "reset": ("reset", ()),
    "forward": ("forward", ("seconds",)),
    "panic": ("panic", ()),
    "stop": ("stop", ()),
}


class OscServer(Commands):
    """A UDP OSC server on its own thread: ``start()``, ``close()``; ``address`` is (host, port) bound."""

    def __init__(self, daemon: Any, host: str = "127.0.0.1", port: int = 9000):
        super().__init__(daemon)
        dispatcher = Dispatcher(strict_timing=False)  # a bundle timed for later must not hold the thread
        dispatcher.map(f"{PREFIX}/param/*", self._on_param, needs_reply_address=True)
        dispatcher.set_default_handler(self._on_message, needs_reply_address=True)
        self._server = BlockingOSCUDPServer((host, port), dispatcher)
        self.address: tuple[str, int] = self._server.server_address[:2]
        self._thread: threading.Thread | None = None
        self.errors = 0

    def start(self) -> OscServer:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="firefly-osc", daemon=True)
        self._thread.start()
        log.info("OSC control on udp://%s:%d (%s/...)", *self.address, PREFIX)
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(2.0)
        self._server.server_close()

    def __enter__(self) -> OscServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------ messages
    def _on_message(self, sender: tuple[str, int], address: str, *values: Any) -> tuple | None:
        name = address[len(PREFIX) + 1 :] if address.startswith(PREFIX + "/") else None
        if name not in MESSAGES:
            return self._fail(sender, "unknown_command", f"unknown OSC address {address!r}; known: {', '.join(MESSAGES)} under {PREFIX}/")
        cmd, names = MESSAGES[name]
        if len(values) > len(names) or (cmd != "get" and len(values) < len(names)):
            return self._fail(
                sender, "bad_argument", f"{address} takes {len(names)} argument(s) ({', '.join(names) or 'none'}), got {len(values)}"
            )
        return self._run(sender, {"cmd": cmd, **dict(zip(names, values, strict=False))})

    def _on_param(self, sender: tuple[str, int], address: str, *values: Any) -> tuple | None:
        key = address[len(PREFIX + "/param/") :].replace("/", ".")
        if len(values) != 1:
            return self._fail(sender, "bad_argument", f"{address} takes one value, got {len(values)}")
        return self._run(sender, {"cmd": "set", "key": key, "value": values[0]})

    def _run(self, sender: tuple[str, int], request: dict[str, Any]) -> tuple | None:
        reply = self.execute(request)
        if not reply["ok"]:
            return self._fail(sender, reply["error"]["code"], reply["error"]["message"])
        if request["cmd"] == "get":
            result = reply["result"]
            if "key" in request:
                return (f"{PREFIX}/value", request["key"], _osc_value(result))
            return None  # every parameter does not fit a message: ask the control socket
        return None

    def _fail(self, sender: tuple[str, int], code: str, message: str) -> tuple:
        self.errors += 1
        log.warning("OSC from %s:%d: %s", *sender[:2], message)
        return (f"{PREFIX}/error", code, message)


def _osc_value(value: Any) -> Any:
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def serve_osc(daemon: Any, host: str = "127.0.0.1", port: int = 9000) -> OscServer:
    """Bind the OSC port now (OSError if taken); ``start()`` the result to serve."""
    return OscServer(daemon, host, port)
