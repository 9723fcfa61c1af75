"""Face-recognition networks R for the identity loss (paper eq. 1) and for evaluation.

- Real faces: ``load_arcface`` builds insightface's ArcFace iresnet (r18/r34/r50/r100) and loads
  user-supplied weights (``arcface.py``).
- Synthetic world: ``build_identity_network`` (``cnn-a``, ``resnet-b``), ``train_identity_network``
  (ArcFace margin loss on synthetic identities, held-out verification) and ``load_identity_network``
  (``networks.py``, ``train.py``); CLI ``instantrestore train-id``.

Every network maps [B, 3, S, S] RGB in [-1, 1] to L2-normalised [B, D] embeddings and carries
``input_size`` (S) and ``crop`` (fractions x0, y0, x1, y1 of the aligned face to cut before resizing, or None).
"""
from .arcface import ARCFACE_ARCHS, IResNet, build_arcface, load_arcface
from .networks import (ARCHITECTURES, ArcMarginHead, IdentityNetwork, build_identity_network,
                        load_identity_network, save_identity_network)
from .train import IdentityTrainConfig, train_identity_network, verification_metrics

__all__ = ["ARCFACE_ARCHS", "ARCHITECTURES", "ArcMarginHead", "IResNet", "IdentityNetwork", "IdentityTrainConfig",
           "build_arcface", "build_identity_network", "load_arcface", "load_identity_network",
           "save_identity_network", "train_identity_network", "verification_metrics"]
