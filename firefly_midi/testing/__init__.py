"""Helpers the tests and the benchmarks share (no pytest here: the benchmarks run without it)."""
