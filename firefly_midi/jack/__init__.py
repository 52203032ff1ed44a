"""A native JACK MIDI client whose process callback is compiled (numba cfunc): see docs/jack-native.md."""
