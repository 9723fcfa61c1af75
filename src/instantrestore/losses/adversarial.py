"""Adversarial loss of paper eq. 2 with a DINOv2-backed discriminator, fine-tuned jointly.

    L_GAN = E_y[log D(y)] + E_x[log(1 - D(G(x)))]                                    (2)

With D(.) = sigmoid(logit), eq. 2's log form is trained as the *non-saturating* GAN
(Goodfellow et al.): the discriminator minimises softplus(-D(real)) + softplus(D(fake)), the
generator minimises softplus(-D(fake)) instead of log(1 - D(G(x))), whose gradient vanishes
exactly when D confidently rejects the fakes (the start of training). softplus on raw logits
is the numerically stable way to write the logs. ``"hinge"`` is offered as the common
alternative for ViT-feature discriminators (ADD, used by SD-Turbo's distillation).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import Dinov2Config, Dinov2Model

GAN_LOSSES = ("non_saturating", "hinge")
# DINOv2 was trained on ImageNet-normalised inputs.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_kind(kind: str) -> None:
    if kind not in GAN_LOSSES:
        raise ValueError(f"GAN loss must be one of {GAN_LOSSES}, not {kind!r}")


def generator_adversarial_loss(fake_logits: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    """Generator side of eq. 2 on discriminator logits of restored images ([B] or [B, K]) -> scalar.

    Lower when D scores the fakes as real (positive logits)."""
    _check_kind(kind)
    fake_logits = fake_logits.float()
    return F.softplus(-fake_logits).mean() if kind == "non_saturating" else -fake_logits.mean()


def discriminator_adversarial_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                                   kind: str = "non_saturating") -> torch.Tensor:
    """Discriminator side of eq. 2 (minimised by D) -> scalar; lower when real logits are high
    and fake logits low."""
    _check_kind(kind)
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if kind == "non_saturating":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Temporarily stop ``module``'s parameters from collecting gradients (the generator step:
    gradients still reach the images, but D's ``.grad`` stays untouched)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


class Discriminator(nn.Module):
    """D of eq. 2: a ``transformers`` Dinov2Model backbone plus light multi-level heads.

    For each chosen transformer block, the CLS token and the mean patch token are concatenated
    and scored by a small MLP (LayerNorm, Linear, GELU, Linear), so D sees global semantics and
    lower-level texture statistics. forward: [B, 3, H, W] in [-1, 1] -> logits [B, K], one per
    level. The input is resized (bilinear, antialiased) to ``input_size``, or, when None, to the
    nearest multiple of the patch size; DINOv2 interpolates its position embeddings.
    Backbone and heads all train (own optimizer in the trainer).
    """

    def __init__(self, backbone: Dinov2Model, layers: tuple[int, ...] | None = None, input_size: int | None = None,
                 head_hidden: int = 256, seed: int = 0):
        super().__init__()
        depth = backbone.config.num_hidden_layers
        if layers is None:  # up to 4 levels evenly spread, always ending with the last block
            count = min(4, depth)
            layers = tuple(sorted({round(depth * (i + 1) / count) for i in range(count)}))
        if not layers or any(not 1 <= i <= depth for i in layers):
            raise ValueError(f"discriminator layers must be block indices in 1..{depth}, got {layers}")
        self.backbone = backbone
        self.layers = tuple(layers)
        self.patch_size = int(backbone.config.patch_size)
        self.input_size = input_size
        width = 2 * backbone.config.hidden_size
        hidden = min(head_hidden, width)
        with torch.random.fork_rng(devices=[]):  # seeded head init without touching global RNG state
            torch.manual_seed(seed)
            self.heads = nn.ModuleList(
                nn.Sequential(nn.LayerNorm(width), nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, 1))
                for _ in self.layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_pretrained(cls, path_or_hub_id: str, layers: tuple[int, ...] | None = None, input_size: int | None = 224,
                        trust_pickle: bool = False, seed: int = 0, **kwargs) -> "Discriminator":
        """DINOv2 weights from a local folder or hub id (e.g. ``facebook/dinov2-small``); safetensors
        only unless ``trust_pickle``. Extra kwargs go to ``Dinov2Model.from_pretrained``."""
        backbone = Dinov2Model.from_pretrained(path_or_hub_id, use_safetensors=None if trust_pickle else True, **kwargs)
        return cls(backbone, layers=layers, input_size=input_size, seed=seed)

    @classmethod
    def from_config(cls, config: Dinov2Config, layers: tuple[int, ...] | None = None, input_size: int | None = None,
                    seed: int = 0) -> "Discriminator":
        """Randomly initialised backbone of the given config (seeded, global RNG untouched)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            backbone = Dinov2Model(config)
        return cls(backbone, layers=layers, input_size=input_size, seed=seed + 1)

    @classmethod
    def tiny(cls, seed: int = 0, input_size: int | None = None) -> "Discriminator":
        """A small random DINOv2 (2 blocks, width 32, 16 px patches) for CPU tests and the tiny recipe."""
        config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2,
                              patch_size=16, image_size=128, layerscale_value=1.0)
        return cls.from_config(config, input_size=input_size, seed=seed)

    def _resize(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        if self.input_size is not None:
            size = (self.input_size, self.input_size)
        else:
            size = tuple(max(self.patch_size, round(s / self.patch_size) * self.patch_size) for s in (h, w))
        if (h, w) == size:
            return images
        return F.interpolate(images, size=size, mode="bilinear", align_corners=False,
                             antialias=size[0] < h or size[1] < w)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, 3, H, W] in [-1, 1] -> logits [B, K] (K = len(self.layers)); > 0 means real."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"discriminator: expected [B, 3, H, W], got {tuple(images.shape)}")
        dtype = self.mean.dtype
        x = self._resize(images.to(dtype))
        x = ((x + 1) / 2 - self.mean) / self.std
        hidden = self.backbone(pixel_values=x, output_hidden_states=True).hidden_states
        logits = []
        for head, layer in zip(self.heads, self.layers):
            tokens = hidden[layer]  # [B, 1 + patches, C]; hidden[0] is the embedding output
            features = torch.cat([tokens[:, 0], tokens[:, 1:].mean(dim=1)], dim=-1)
            logits.append(head(features))
        return torch.cat(logits, dim=-1)
