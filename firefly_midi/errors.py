"""The error root: every error firefly-midi raises on purpose derives from ``FireflyError`` and also
from the built-in it means, so callers can catch either (as python-rtmidi's ``InvalidPortError(RtMidiError,
ValueError)`` does)."""

from __future__ import annotations


class FireflyError(Exception):
    """Base of every error firefly-midi raises on purpose."""
