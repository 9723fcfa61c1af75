"""Training losses of InstantRestore (paper eq. 1-3, 7-8) and two options from related work: the
hard-example identity loss of "Reference-Guided Identity Preserving Face Restoration" and the
masked face alignment of HonestFace."""
from .adversarial import (Discriminator, discriminator_adversarial_loss, frozen,
                          generator_adversarial_loss)
from .config import LandmarkAttentionConfig, LossWeights, resolve_layers
from .objective import RestorationLoss
from .masked_face_lpips import FaceAlignmentConfig, MaskedFaceAlignmentLoss, landmark_heatmap_mask
from .identity import IdentityLoss, identity_distance
from .landmark_attention import ideal_attention, landmark_attention_loss, landmark_targets
from .landmark_attention_official import official_choices, official_landmark_attention_loss, official_targets
from .reconstruction import LossUnavailable, LPIPSLoss, MSSSIMLoss, l1_loss, l2_loss, ms_ssim_settings

__all__ = [
    "Discriminator", "FaceAlignmentConfig", "IdentityLoss", "LandmarkAttentionConfig", "LossUnavailable",
    "LossWeights", "LPIPSLoss", "MaskedFaceAlignmentLoss", "MSSSIMLoss", "RestorationLoss",
    "discriminator_adversarial_loss", "frozen", "generator_adversarial_loss", "ideal_attention",
    "identity_distance", "l1_loss", "l2_loss", "landmark_attention_loss", "landmark_heatmap_mask",
    "landmark_targets", "ms_ssim_settings", "official_choices", "official_landmark_attention_loss",
    "official_targets", "resolve_layers",
]
