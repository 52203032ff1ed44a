"""The TUI's widgets, one module each; drawing functions are pure and take an immutable view."""
