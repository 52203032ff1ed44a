"""firefly-midi: a swarm of coupled oscillators that plays MIDI."""

__version__ = "0.1.0"
