"""A native JACK MIDI client whose process callback is compiled (numba cfunc): see docs/jack-native.md."""

from firefly_midi.swarm.kernels.cache import use_keyed_cache

use_keyed_cache()  # before any callback is decorated: they cache in a folder keyed on this package's modules
