"""A MIDI peer in its own process, as a user's synth or drum machine would be: run as a script.

It opens JACK ports through mido's rtmidi backend, connects them to the daemon's ports (unless
``--no-connect``: a synth that waits for the daemon to connect it), optionally
plays a steady pulse of notes into the daemon, and prints every message it receives as one JSON line
``{"t": seconds since start, "m": [bytes]}``.  Once connected it touches ``--ready-file``.  It stops after ``--seconds`` or on SIGTERM, then
prints ``{"done": true}``.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time


def connect(source: str, destination: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(["jack_connect", source, destination], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"peer: could not connect {source} -> {destination}")
        time.sleep(0.05)


class PulseOut:
    """A JACK MIDI output port ``NAME:out`` through JACK-Client, not rtmidi: JACK clients that share one
    libjack in a process can open deaf (firefly_midi.ports.jack_rtmidi), and rtmidi's
    input above is one; JACK-Client loads a libjack of its own, whose only client this is."""

    def __init__(self, name: str):
        import queue

        import jack

        self.events: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self.client = jack.Client(name, no_start_server=True)
        port = self.client.midi_outports.register("out")

        @self.client.set_process_callback
        def process(frames: int) -> None:
            port.clear_buffer()
            while not self.events.empty():
                port.write_midi_event(0, self.events.get_nowait())

        self.client.activate()

    def send(self, message) -> None:
        self.events.put(bytes(message.bytes()))

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="peer")
    parser.add_argument("--daemon", default="firefly-midi", help="the daemon's JACK client name")
    parser.add_argument("--daemon-in", help="the daemon's input port (default: rtmidi's, DAEMON-in:in)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--pulse-bpm", type=float, default=0.0, help="send a note-on/off pulse at this tempo")
    parser.add_argument("--pulse-after", type=float, default=0.0, help="start the pulse this many seconds in")
    parser.add_argument("--pulse-note", type=int, default=60)
    parser.add_argument("--ready-file", help="touch this file once connected")
    parser.add_argument("--no-connect", action="store_true", help="open the ports, connect nothing: the daemon must")
    args = parser.parse_args()

    import mido

    backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK")
    inport = backend.open_input("in", virtual=True, client_name=args.name)
    outport = PulseOut(f"{args.name}-out") if args.pulse_bpm else None
    if not args.no_connect:
        connect(f"{args.daemon}:out", f"{args.name}:in")
    if outport is not None and not args.no_connect:
        connect(f"{args.name}-out:out", args.daemon_in or f"{args.daemon}-in:in")  # rtmidi: one JACK client per port

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    if args.ready_file:
        open(args.ready_file, "w").close()
    start = time.monotonic()
    next_pulse = start + args.pulse_after
    period = 60.0 / args.pulse_bpm if args.pulse_bpm else 0.0
    pulse_off = None
    while not stopping and time.monotonic() - start < args.seconds:
        now = time.monotonic()
        if outport is not None and now >= next_pulse:
            outport.send(mido.Message("note_on", note=args.pulse_note, velocity=110))
            print(json.dumps({"t": now - start, "sent": "note_on"}), flush=True)
            pulse_off, next_pulse = now + 0.05, next_pulse + period
        if pulse_off is not None and now >= pulse_off:
            outport.send(mido.Message("note_off", note=args.pulse_note))
            pulse_off = None
        for message in inport.iter_pending():
            print(json.dumps({"t": time.monotonic() - start, "m": message.bytes()}), flush=True)
        time.sleep(0.0005)
    for message in inport.iter_pending():
        print(json.dumps({"t": time.monotonic() - start, "m": message.bytes()}), flush=True)
    # Leave as a well-behaved client: a JACK client that exits without closing stalls a synchronous
    # server (the tests' jackd runs --sync) for seconds, and jack2 then drops other clients with it.
    if outport is not None:
        outport.close()
    inport.close()
    print(json.dumps({"done": True}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
