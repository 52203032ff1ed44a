"""Who plays what: the scales, the voice notes, which firefly belongs to which voice.

Voice notes: the scale from ``root`` upward over ``octaves`` octaves plus the top root; V voices are
spread evenly across that list.  With more voices than notes the scale keeps going up, octave by
octave, and wraps back to the root rather than passing note 127.  Voices split the swarm by id
(contiguous ranges), by natural frequency (the slowest group plays the lowest note) or by grid region
(rectangular tiles as square as possible).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from firefly_midi.swarm import topology

SCALE_STEPS: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
    "whole_tone": (0, 2, 4, 6, 8, 10),
    "chromatic": tuple(range(12)),
}


# ----------------------------------------------------------------------------------------------- notes
def scale_notes(scale: str, root: int, octaves: int) -> list[int]:
    """The scale from ``root`` over ``octaves`` octaves, plus the top root."""
    steps = SCALE_STEPS[scale]
    return [root + 12 * o + s for o in range(octaves) for s in steps] + [root + 12 * octaves]


def scale_up_to_127(scale: str, root: int) -> list[int]:
    """Every note of the scale from ``root`` up to 127: where extra voices go."""
    steps = SCALE_STEPS[scale]
    return [n for o in range(11) for s in steps if (n := root + 12 * o + s) <= 127]


def voice_notes(scale: str, root: int, octaves: int, voices: int) -> list[int]:
    """V notes spread evenly over the scale range; more voices than notes climb on, then wrap."""
    notes = scale_notes(scale, root, octaves)
    if voices == 1:
        return [root]
    if voices <= len(notes):
        return [notes[round(v * (len(notes) - 1) / (voices - 1))] for v in range(voices)]
    climbing = scale_up_to_127(scale, root)
    return [climbing[v % len(climbing)] for v in range(voices)]


# ----------------------------------------------------------------------------------------------- voices
def tile_grid(voices: int, rows: int, cols: int) -> tuple[int, int]:
    """(tile rows, tile columns) multiplying to ``voices`` whose tiles are the most nearly square."""
    pairs = [(a, voices // a) for a in range(1, voices + 1) if voices % a == 0]
    return min(pairs, key=lambda ab: (abs(math.log((rows / ab[0]) / (cols / ab[1]))), ab[0]))


def voice_of_fireflies(values: dict[str, Any], natural: np.ndarray) -> np.ndarray:
    """Each firefly's voice index (int64), by ``mapping.mode`` and ``mapping.split``."""
    n = natural.size
    ids = np.arange(n, dtype=np.int64)
    mode, voices = values["mapping.mode"], values["mapping.voices"]
    if mode == "per_firefly":
        return ids
    if mode == "density":
        return np.zeros(n, dtype=np.int64)
    split = values["mapping.split"]
    if split == "frequency":  # slowest first, so the lowest notes go to the slowest fireflies
        out = np.empty(n, dtype=np.int64)
        out[np.argsort(natural, kind="stable")] = ids * voices // n
        return out
    if split == "region":
        rows, cols = topology.grid_shape(n)
        tile_rows, tile_cols = tile_grid(voices, rows, cols)
        return (ids // cols * tile_rows // rows) * tile_cols + (ids % cols * tile_cols // cols)
    return ids * voices // n


class Layout:
    """Who plays what: voice of each firefly, note, channel and size of each voice."""

    def __init__(self, values: dict[str, Any], natural: np.ndarray):
        mode = values["mapping.mode"]
        channels = [c - 1 for c in values["mapping.channels"]]
        scale, root, octaves = values["mapping.scale"], values["mapping.root"], values["mapping.octaves"]
        self.voice_of = voice_of_fireflies(values, natural)
        count = {"per_firefly": natural.size, "density": 1}.get(mode, values["mapping.voices"])
        if mode == "per_firefly":
            notes = np.array(scale_notes(scale, root, octaves), dtype=np.int64)
            self.note = notes[np.arange(count) % notes.size]
        else:
            self.note = np.array(voice_notes(scale, root, octaves, count), dtype=np.int64)
        self.channel = np.array(channels, dtype=np.int64)[np.arange(count) % len(channels)]
        self.size = np.bincount(self.voice_of, minlength=count).astype(np.int64)
        self.voices = count
        self._index_by_note(natural.size)

    def _index_by_note(self, n: int) -> None:
        """Fireflies grouped by the note they play, and the nearest played note to every note."""
        firefly_note = self.note[self.voice_of]
        order = np.argsort(firefly_note, kind="stable")
        played, starts = np.unique(firefly_note[order], return_index=True)
        bounds = [*starts.tolist(), n]
        self.members_by_note: list[np.ndarray | None] = [None] * 128
        for j, note in enumerate(played.tolist()):
            self.members_by_note[note] = np.ascontiguousarray(order[bounds[j] : bounds[j + 1]], dtype=np.int64)
        self.nearest_note = [int(played[np.argmin(np.abs(played - note))]) for note in range(128)] if n else [0] * 128

    def members_near(self, note: int) -> np.ndarray | None:
        """Ids of the fireflies playing the played note nearest ``note`` (the lower one on a tie)."""
        return self.members_by_note[self.nearest_note[note]]
