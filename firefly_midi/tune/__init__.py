"""The preset tuner: evolve a preset's parameters toward measured targets, headless.

``spec`` says what a run depends on, ``space`` maps the varied keys onto a unit cube, ``fitness``
scores what a run measured against the targets, ``prior`` starts the search where the models put
the target tempo, ``cma`` (CMA-ES), ``ga`` (microbial GA) and ``es`` (OpenAI-style evolution
strategies) search, ``standings`` checks the best on hold-out seeds, ``stopping`` says when to stop,
and ``tuner`` runs it all in parallel with checkpoints and writes the best preset found.
"""
