"""The preset tuner: evolve a preset's parameters toward measured targets, headless.

``space`` maps the varied keys onto a unit cube, ``fitness`` scores what a run measured against the
targets, ``ga`` (microbial GA) and ``es`` (OpenAI-style evolution strategies) search, and ``tuner``
runs generations in parallel with checkpoints and writes the best preset found.
"""
