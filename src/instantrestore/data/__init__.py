"""Data layer: synthetic identities (``synthetic``, a package), degradations (``degradations``),
identity folders on disk (``folders``) and their landmark side files (``landmark_files``), the
training item and its reference draws (``items``), the datasets (``datasets``), the fixed
test-set writer (``testset``) and pixel probes (``probes``)."""
