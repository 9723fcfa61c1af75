"""The one-step generator: the model (:mod:`.model`), its shared-image attention
(:mod:`.attention`, :mod:`.adain`), adapters, noise draws, reference caches, configs and I/O."""
