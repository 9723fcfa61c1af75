"""The one-step generator: the public model (:mod:`.model`) and its method (:mod:`.one_step`),
its shared-image attention (:mod:`.attention`, :mod:`.adain`), adapters, noise draws, reference
caches and their key (:mod:`.fingerprints`), the backbone registry (:mod:`.backbones`), configs
and I/O."""
