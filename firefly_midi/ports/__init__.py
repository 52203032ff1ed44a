"""MIDI ports: backends behind one small interface (``Backend``: public ``send``/``poll``, private
``_send``/``_poll``, as mido's ports), and ``Ports``, the supervisor that opens one, notices its
loss and reopens it.

Modules: base (the interface, PortConfig, errors), null (NullBackend, RecordingBackend), rtmidi
(ALSA, CoreMIDI, Windows, JACK), jack_native (the native JACK client: each event at its frame),
jack_rtmidi (rtmidi's JACK input kept hearing: probe, sysex guard), watch (JackWatch: the JACK
server's life, pace and connections), supervisor (Ports).
"""

from firefly_midi.ports.base import BACKENDS, Backend, Incoming, PortClosed, PortConfig, PortError, ServerGone
from firefly_midi.ports.jack_native import NativeJackBackend
from firefly_midi.ports.jack_rtmidi import END_OF_SYSEX, DeafCounts, JackRtMidiBackend
from firefly_midi.ports.null import NullBackend, RecordingBackend
from firefly_midi.ports.rtmidi import RtMidiBackend, platform_backends
from firefly_midi.ports.supervisor import Ports, PortState
from firefly_midi.ports.watch import JackWatch, jack_server_socket

__all__ = [
    "BACKENDS",
    "END_OF_SYSEX",
    "Backend",
    "DeafCounts",
    "Incoming",
    "JackRtMidiBackend",
    "JackWatch",
    "NativeJackBackend",
    "NullBackend",
    "PortClosed",
    "PortConfig",
    "PortError",
    "PortState",
    "Ports",
    "RecordingBackend",
    "RtMidiBackend",
    "ServerGone",
    "jack_server_socket",
    "platform_backends",
]
