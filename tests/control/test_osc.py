"""OSC mirrors the commands, with the socket's checks, over UDP."""

from __future__ import annotations

import socket

import pytest

from firefly_midi.control import request

from .support import N, eventually


def test_osc_mirrors_the_commands(path, daemon):
    from pythonosc.osc_message import OscMessage
    from pythonosc.osc_message_builder import build_msg

    from firefly_midi.osc import serve_osc

    with serve_osc(daemon, port=0) as osc:
        assert osc.address[0] == "127.0.0.1"
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(2.0)

        def send(address, *values):
            peer.sendto(build_msg(address, list(values)).dgram, osc.address)

        def answer():
            message = OscMessage(peer.recv(65536))
            return message.address, list(message.params)

        send("/firefly/set", "swarm.coupling", 0.3)
        eventually(lambda: request(path, "get", key="swarm.coupling") == pytest.approx(0.3))
        send("/firefly/param/swarm/coupling", 0.2)
        eventually(lambda: request(path, "get", key="swarm.coupling") == pytest.approx(0.2))
        send("/firefly/get", "swarm.n")
        assert answer() == ("/firefly/value", ["swarm.n", N])
        send("/firefly/set", "swarm.coupling", 1000.0)
        address, (code, message) = answer()
        assert address == "/firefly/error" and code == "bad_param" and "swarm.coupling" in message
        send("/firefly/pasue")
        address, (code, message) = answer()
        assert code == "unknown_command" and "pause" in message
        send("/firefly/forward")
        assert answer()[1][0] == "bad_argument"
        send("/firefly/learn", "swarm.model")  # every command OSC offers is an address: learn too
        address, (code, message) = answer()
        assert address == "/firefly/error" and code == "bad_param" and "swarm.model" in message
        send("/firefly/status")
        assert answer()[1][0] == "unknown_command", "status does not fit an OSC message: the socket only"
        peer.sendto(b"not OSC at all", osc.address)
        send("/firefly/get", "swarm.n")
        assert answer() == ("/firefly/value", ["swarm.n", N])  # the garbage was ignored
        peer.close()
