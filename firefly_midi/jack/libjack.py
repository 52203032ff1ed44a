"""libjack's setup side through ctypes: open, register, set callbacks, activate, connect, close.

None of this runs on JACK's real-time thread.  The callbacks handed over are numba cfuncs
(process.py), passed as plain addresses, so no ctypes callback (and no GIL) is ever involved.
"""

from __future__ import annotations

import ctypes
import functools

from firefly_midi.jack.binding import JackUnavailable, libjack_path

MIDI_TYPE = b"8 bit raw midi"
PORT_IS_INPUT, PORT_IS_OUTPUT = 0x1, 0x2
NO_START_SERVER, USE_EXACT_NAME = 0x01, 0x02
NAME_NOT_UNIQUE = 0x04  # a jack_status_t bit: another client has the name
SERVER_FAILED = 0x10  # could not connect to the server
ALREADY_CONNECTED = 17  # jack_connect's EEXIST

_p, _i, _u, _s = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_char_p
_SIGNATURES = {
    # jack_client_open is variadic; its optional server name is read only under JackServerName
    "jack_client_open": (_p, [_s, _i, ctypes.POINTER(_i)]),
    "jack_client_close": (_i, [_p]),
    "jack_get_client_name": (_s, [_p]),
    "jack_port_register": (_p, [_p, _s, _s, ctypes.c_ulong, ctypes.c_ulong]),
    "jack_port_name": (_s, [_p]),
    "jack_set_process_callback": (_i, [_p, _p, _p]),
    "jack_set_xrun_callback": (_i, [_p, _p, _p]),
    "jack_on_shutdown": (None, [_p, _p, _p]),
    "jack_activate": (_i, [_p]),
    "jack_deactivate": (_i, [_p]),
    "jack_connect": (_i, [_p, _s, _s]),
    "jack_disconnect": (_i, [_p, _s, _s]),
    "jack_get_sample_rate": (_u, [_p]),
    "jack_get_buffer_size": (_u, [_p]),
    "jack_is_realtime": (_i, [_p]),
    "jack_get_time": (ctypes.c_uint64, []),
    "jack_get_ports": (ctypes.POINTER(_s), [_p, _s, _s, ctypes.c_ulong]),
    "jack_free": (None, [_p]),
}


@functools.cache
def lib() -> ctypes.CDLL:
    """libjack with the argument and result types of the functions used here."""
    try:
        library = ctypes.CDLL(libjack_path())
    except OSError as error:
        raise JackUnavailable(f"could not load libjack: {error}") from error
    for name, (result, arguments) in _SIGNATURES.items():
        function = getattr(library, name)
        function.restype = result
        function.argtypes = arguments
    return library


@functools.cache
def libc() -> ctypes.CDLL:
    library = ctypes.CDLL(None, use_errno=True)
    library.mlock.argtypes = library.munlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return library


def mlock(address: int, size: int) -> bool:
    """Lock the pages in RAM; False where the limit (RLIMIT_MEMLOCK) or the platform refuses."""
    try:
        return libc().mlock(address, size) == 0
    except AttributeError:  # no mlock in this C library
        return False


def munlock(address: int, size: int) -> None:
    with_munlock = getattr(libc(), "munlock", None)
    if with_munlock is not None:
        with_munlock(address, size)


def open_client(name: str) -> int:
    """A new client of the running server under exactly ``name``; never starts a server."""
    status = ctypes.c_int(0)
    client = lib().jack_client_open(name.encode(), NO_START_SERVER | USE_EXACT_NAME, ctypes.byref(status))
    if not client:
        if status.value & NAME_NOT_UNIQUE:
            raise JackUnavailable(f"another JACK client is already called {name!r}")
        if status.value & SERVER_FAILED:
            raise JackUnavailable("no JACK server is running (start jackd, or PipeWire's JACK)")
        raise JackUnavailable(f"jack_client_open({name!r}) failed, status 0x{status.value:x}")
    return client


def register_midi_port(client: int, name: str, flags: int) -> int:
    port = lib().jack_port_register(client, name.encode(), MIDI_TYPE, flags, 0)
    if not port:
        raise JackUnavailable(f"could not register the MIDI port {name!r}")
    return port


def port_name(port: int) -> str:
    return lib().jack_port_name(port).decode()


def midi_ports(client: int, flags: int) -> list[str]:
    """The full names of the server's MIDI ports with ``flags`` (PORT_IS_INPUT or PORT_IS_OUTPUT)."""
    names = lib().jack_get_ports(client, None, MIDI_TYPE, flags)
    if not names:
        return []
    try:
        found, index = [], 0
        while names[index] is not None:
            found.append(names[index].decode())
            index += 1
        return found
    finally:
        lib().jack_free(ctypes.cast(names, ctypes.c_void_p))
