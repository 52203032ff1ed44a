"""The terminal UI: a Textual app that attaches to a running daemon over the control socket.

``firefly_midi.tui.app.run_tui`` runs it; ``firefly_midi.tui.app.make_app`` builds it for tests.
Nothing is imported here, so importing the package costs nothing.
"""
