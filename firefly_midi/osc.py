"""OSC control: the commands of the control socket as OSC messages over UDP (off unless asked for).

``serve_osc(daemon, port=9000)`` listens on 127.0.0.1 (UDP has no owner check: bind another host
only on a network you trust).  Every command of firefly_midi.control.commands.COMMANDS that OSC
offers is the address ``/firefly/<command>``, its arguments in order, with the same checks as on
the socket (docs/control.md has the table, from ``osc_markdown()``):

    /firefly/set swarm.coupling 0.2      /firefly/get swarm.n          /firefly/preset grid-waves
    /firefly/forward 10                  /firefly/pause                /firefly/learn swarm.coupling
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

from firefly_midi.control import COMMANDS, Command, Commands

log = logging.getLogger("firefly_midi.osc")

PREFIX = "/firefly"
PARAM = f"{PREFIX}/param"
OSC_COMMANDS: dict[str, Command] = {f"{PREFIX}/{c.name}": c for c in COMMANDS.values() if c.osc}


class OscServer:
    """A UDP OSC server on its own thread: ``start()``, ``close()``; ``address`` is (host, port) bound."""

    def __init__(self, daemon: Any, host: str = "127.0.0.1", port: int = 9000):
        self.commands = Commands(daemon)
        dispatcher = Dispatcher(strict_timing=False)  # a bundle timed for later must not hold the thread
        dispatcher.map(f"{PARAM}/*", self._on_param, needs_reply_address=True)
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
        command = OSC_COMMANDS.get(address)
        if command is None:
            known = ", ".join(c.name for c in OSC_COMMANDS.values())
            return self._fail(sender, "unknown_command", f"unknown OSC address {address!r}; known: {known} under {PREFIX}/")
        names = [arg.name for arg in command.args]
        needed = sum(arg.required for arg in command.args)
        if not needed <= len(values) <= len(names):
            count = f"{needed}..{len(names)}" if needed < len(names) else str(needed)
            return self._fail(
                sender, "bad_argument", f"{address} takes {count} argument(s) ({', '.join(names) or 'none'}), got {len(values)}"
            )
        return self._run(sender, {"cmd": command.name, **dict(zip(names, values, strict=False))})

    def _on_param(self, sender: tuple[str, int], address: str, *values: Any) -> tuple | None:
        key = address[len(PARAM) + 1 :].replace("/", ".")
        if len(values) != 1:
            return self._fail(sender, "bad_argument", f"{address} takes one value, got {len(values)}")
        return self._run(sender, {"cmd": "set", "key": key, "value": values[0]})

    def _run(self, sender: tuple[str, int], request: dict[str, Any]) -> tuple | None:
        reply = self.commands.execute(request)
        if not reply["ok"]:
            return self._fail(sender, reply["error"]["code"], reply["error"]["message"])
        if request["cmd"] == "get" and "key" in request:  # every parameter does not fit a message: ask the socket
            return (f"{PREFIX}/value", request["key"], _osc_value(reply["result"]))
        return None

    def _fail(self, sender: tuple[str, int], code: str, message: str) -> tuple:
        self.errors += 1
        log.warning("OSC from %s:%d: %s", *sender[:2], message)
        return (f"{PREFIX}/error", code, message)


def _osc_value(value: Any) -> Any:
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def osc_markdown() -> str:
    """The table of OSC addresses in docs/control.md."""
    rows = ["| address | arguments | same as |", "|---|---|---|"]
    for address, command in OSC_COMMANDS.items():
        args = ", ".join(arg.name if arg.required else f"[{arg.name}]" for arg in command.args) or "—"
        answer = f"; answered with `{PREFIX}/value key value`" if command.name == "get" else ""
        rows.append(f"| `{address}` | {args} | `{command.name}`{answer} |")
    rows.append(
        f"| `{PARAM}/<table>/<name>` | value | `set` of `<table>.<name>` (e.g. `{PARAM}/swarm/coupling 0.2`: one address per fader) |"
    )
    return "\n".join(rows)


def serve_osc(daemon: Any, host: str = "127.0.0.1", port: int = 9000) -> OscServer:
    """Bind the OSC port now (OSError if taken); ``start()`` the result to serve."""
    return OscServer(daemon, host, port)
