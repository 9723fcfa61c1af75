"""Benchmarks on the synthetic-identities world: held-out evaluation (``synth``), the
train-then-evaluate pipeline (``recipe``), the written report (``report``) and the one-case
``instantrestore demo`` (``demo``)."""
