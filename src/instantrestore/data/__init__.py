"""Data layer: synthetic identities (``synthetic``), identity datasets and the training sampler
(``datasets``), and the fixed test-set writer (``testset``). Degradations live in
``instantrestore.data.degradations``."""
