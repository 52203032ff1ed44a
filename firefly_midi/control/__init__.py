"""The control plane: a Unix-socket, JSON-lines protocol (docs/control.md, version 1).

    protocol.py  the wire: limits, errors, encoding
    commands.py  the commands, declared once, and ``Commands`` (a request in, a reply out)
    sockets.py   the socket file: its default path, claiming it
    server.py    ``ControlServer``: the asyncio server of one daemon, on its own thread
    client.py    ``ControlClient`` (asyncio) and ``request()`` (blocking)
    launch.py    starting a daemon in the background for ``firefly-midi run``

The ``firefly-midi ctl`` command line is in ctl.py, the OSC mirror in osc.py.
"""

from firefly_midi.control.client import ControlClient, Subscription, request
from firefly_midi.control.commands import COMMANDS, Arg, Command, Commands, commands_markdown
from firefly_midi.control.launch import start_daemon_in_background, wait_for_daemon
from firefly_midi.control.protocol import (
    CLIENT_LINE_LIMIT,
    DEFAULT_FPS,
    DEFAULT_POINTS,
    ERROR_CODES,
    FRAME_BACKLOG,
    LINE_LIMIT,
    MAX_FLASHES_PER_FRAME,
    MAX_FORWARD_S,
    MAX_FPS,
    MAX_POINTS,
    MIN_FPS,
    MIN_POINTS,
    PROGRAM,
    PROTOCOL,
    REQUEST_FAULTS,
    BadArgument,
    BadRequest,
    ControlError,
    Disconnected,
    NoDaemonError,
    NoReply,
    SocketBusyError,
    command_name,
    encode,
)
from firefly_midi.control.server import ControlServer, serve
from firefly_midi.control.sockets import claim_socket, default_socket_path

__all__ = [
    "CLIENT_LINE_LIMIT",
    "COMMANDS",
    "DEFAULT_FPS",
    "DEFAULT_POINTS",
    "ERROR_CODES",
    "FRAME_BACKLOG",
    "LINE_LIMIT",
    "MAX_FLASHES_PER_FRAME",
    "MAX_FORWARD_S",
    "MAX_FPS",
    "MAX_POINTS",
    "MIN_FPS",
    "MIN_POINTS",
    "PROGRAM",
    "PROTOCOL",
    "REQUEST_FAULTS",
    "Arg",
    "BadArgument",
    "BadRequest",
    "Command",
    "Commands",
    "ControlClient",
    "ControlError",
    "ControlServer",
    "Disconnected",
    "NoDaemonError",
    "NoReply",
    "SocketBusyError",
    "Subscription",
    "claim_socket",
    "command_name",
    "commands_markdown",
    "default_socket_path",
    "encode",
    "request",
    "serve",
    "start_daemon_in_background",
    "wait_for_daemon",
]
