"""Benchmarks on the synthetic-identities world: held-out evaluation (``synth``), the
train-then-evaluate pipeline (``pipeline``) and the written report (``report``)."""
