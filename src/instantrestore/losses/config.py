"""Loss configuration: the weights of paper eq. 8 and which attention layers LAS supervises.

Plain frozen dataclasses, read from a training YAML and passed down as values.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .landmark_attention import LAS_FORMS
from .landmark_attention_official import OFFICIAL_BATCH_MODES


@dataclass(frozen=True)
class LossWeights:
    """Loss weights; the defaults are the paper's (appendix A)."""

    lpips: float = 5.0
    ms_ssim: float = 1.0
    l1: float = 0.0
    l2: float = 0.0
    identity: float = 1.0
    hard_example_lambda: float | None = None  # None: plain ID; e.g. 0.6: hard-example ID (HID), see IdentityLoss
    adversarial: float = 0.5
    landmark_attention: float = 5000.0
    face_alignment: float = 0.0  # HonestFace's masked face alignment, off by default


@dataclass(frozen=True)
class LandmarkAttentionConfig:
    """Which layers LAS supervises and the shape of the ideal map (see landmark_attention.py).

    layers: None = every injected layer (the paper supervises "the attention maps at each
        layer"); otherwise layer names or their indices in ``injected_layers`` as strings.
    sigma: Gaussian std in tokens of each layer's key grid. 1 token keeps the target local (a
        facial part spans a few tokens even at SD-Turbo's coarsest 16x16 grid) yet smooth, as the
        paper asks, instead of a point-to-point match.
    radius: a query is supervised when it lies within this many tokens of a target landmark;
        1.5 covers the face along the landmark contours without claiming background or hair.
    points: landmark rows used; None = every finite row (68 iBUG + the synthetic marks).
    form: "mse" = the paper's eq. 7; "ce" = cross-entropy of the attention rows against the ideal
        rows (an option, not the paper's: its gradient does not vanish while attention is flat);
        "official" = the authors' code (``official_landmark_attention_loss``): one random captured
        layer and reference per step, unnormalised Gaussians of std grid / 32, global min-max
        normalisation; ``sigma`` and ``radius`` do not apply, ``points`` does.
    official_transpose: (form "official") reproduce their target's x/y swap, a bug in their code
        (the Gaussian's peak lands on the transposed key token); False puts it where the landmark is.
    official_batch: (form "official") "first" = their code: batch element 0's draw for the whole
        batch, normalised over the batch; "per_sample" = a draw per sample, mean of per-sample losses.
    """

    layers: tuple[str, ...] | None = None
    sigma: float = 1.0
    radius: float = 1.5
    points: tuple[int, ...] | None = None
    form: str = "mse"
    official_transpose: bool = True
    official_batch: str = "first"

    def __post_init__(self) -> None:
        if self.form not in LAS_FORMS:
            raise ValueError(f"landmark_attention.form must be one of {', '.join(LAS_FORMS)}, got {self.form!r}")
        if self.official_batch not in OFFICIAL_BATCH_MODES:
            raise ValueError(f"landmark_attention.official_batch must be one of {', '.join(OFFICIAL_BATCH_MODES)}, "
                             f"got {self.official_batch!r}")


def resolve_layers(requested: Sequence[str] | None, injected: Sequence[str]) -> list[str]:
    """Layer names (or indices as strings) -> injected layer names, in injected order."""
    if requested is None:
        return list(injected)
    chosen = set()
    for item in requested:
        if item in injected:
            chosen.add(item)
        elif item.lstrip("-").isdigit() and -len(injected) <= int(item) < len(injected):
            chosen.add(injected[int(item)])
        else:
            raise ValueError(f"landmark attention layer {item!r} is neither an injected layer name nor an "
                             f"index below {len(injected)}; injected layers: {list(injected)}")
    return [name for name in injected if name in chosen]
