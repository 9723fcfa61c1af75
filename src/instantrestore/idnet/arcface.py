"""ArcFace's iresnet (insightface ``arcface_torch``) for real faces, loading user-supplied weights.

Architecture (Deng et al., ArcFace, CVPR 2019, "improved residual" network, as published by
insightface): 3x3 conv (64) - BN - PReLU at 112x112, then 4 stages of ``IBasicBlock``
(BN - conv3x3 - BN - PReLU - conv3x3 - BN, plus a shortcut), widths 64/128/256/512, the first block
of every stage with stride 2 and a 1x1-conv + BN shortcut; then BN, dropout, flatten of the 7x7
grid, FC to 512 and a BatchNorm1d ("features"). Blocks per stage: r18 [2,2,2,2], r34 [3,4,6,3],
r50 [3,4,14,3], r100 [3,13,30,3]. Parameter names follow insightface's, so its released
state dicts (converted to safetensors) load as they are.

Input: 112x112 RGB in [-1, 1] (insightface normalises pixels with (x / 255 - 0.5) / 0.5, the same).
The network was trained on faces aligned with insightface's 5-point template; an FFHQ-aligned face
shows more forehead and chin, so ``crop`` = ``ARCFACE_CROP`` = (32, 35, 220, 223) / 256 of the side
(x0, y0, x1, y1), pSp/e4e's ``IDLoss`` practice for FFHQ-aligned faces (a 188 px window of a 256 crop,
then resized to 112).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..faces.identity import ARCFACE_CROP
from ..utils.tensor_io import load_tensors

ARCFACE_ARCHS: dict[str, tuple[int, int, int, int]] = {
    "r18": (2, 2, 2, 2), "r34": (3, 4, 6, 3), "r50": (3, 4, 14, 3), "r100": (3, 13, 30, 3)}
_BN_EPS = 1e-5


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """bn1 - conv1 - bn2 - prelu - conv2 (stride) - bn3, + shortcut (``downsample`` when the shape changes)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=_BN_EPS)
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=_BN_EPS)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=_BN_EPS)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes, eps=_BN_EPS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """ArcFace iresnet: [B, 3, 112, 112] RGB in [-1, 1] -> [B, 512] float32 embeddings
    (L2-normalised when ``l2_normalize``; the raw ``features`` output otherwise).

    Attributes for the identity loss: ``input_size`` = 112 and ``crop`` (see module docs).
    """

    input_size = 112

    def __init__(self, layers: tuple[int, int, int, int], embedding_dim: int = 512, dropout: float = 0.0,
                 l2_normalize: bool = True, crop: tuple[float, float, float, float] | None = ARCFACE_CROP):
        super().__init__()
        self.l2_normalize, self.crop = l2_normalize, crop
        self.conv1 = _conv3x3(3, 64)
        self.bn1 = nn.BatchNorm2d(64, eps=_BN_EPS)
        self.prelu = nn.PReLU(64)
        inplanes = 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            stage = [IBasicBlock(inplanes, planes, stride=2)] + [IBasicBlock(planes, planes) for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*stage))
            inplanes = planes
        self.bn2 = nn.BatchNorm2d(512, eps=_BN_EPS)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(512 * 7 * 7, embedding_dim)
        self.features = nn.BatchNorm1d(embedding_dim, eps=_BN_EPS)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad_(False)  # fixed scale, as trained by insightface

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (112, 112):
            raise ValueError(f"ArcFace iresnet expects 112x112 inputs, got {tuple(x.shape[-2:])}; crop/resize first")
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.features(self.fc(self.dropout(torch.flatten(self.bn2(x), 1))))
        return F.normalize(x, dim=-1) if self.l2_normalize else x


def build_arcface(arch: str = "r50", l2_normalize: bool = True) -> IResNet:
    """An iresnet ``arch`` (r18, r34, r50, r100) with random weights, in eval mode."""
    if arch not in ARCFACE_ARCHS:
        raise ValueError(f"unknown ArcFace architecture {arch!r}; choose one of {sorted(ARCFACE_ARCHS)}")
    return IResNet(ARCFACE_ARCHS[arch], l2_normalize=l2_normalize).eval()


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # DataParallel / DDP checkpoints prefix every key with "module."
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def load_arcface(path: str | Path, arch: str = "r50", trust_pickle: bool = False,
                 l2_normalize: bool = True) -> IResNet:
    """ArcFace iresnet ``arch`` with weights from ``path``, frozen, in eval mode.

    ``path``: a ``.safetensors`` state dict with insightface's parameter names (e.g. converted from
    insightface's ``backbone.pth``), or a pickle (``.pth``/``.pt``/``.bin``) only with
    ``trust_pickle=True``. Raises ``UntrustedPickleError`` for an untrusted pickle, FileNotFoundError
    for a missing file and ValueError listing missing/unexpected/mis-shaped keys (usually the
    wrong ``arch``). The module maps [B, 3, 112, 112] RGB in [-1, 1] to [B, 512] and carries
    ``input_size`` = 112 and ``crop`` = ``ARCFACE_CROP``.
    """
    network = build_arcface(arch, l2_normalize)
    state = _strip_prefix(load_tensors(path, trust_pickle=trust_pickle))
    expected = network.state_dict()
    # num_batches_tracked only matters in training; some exported checkpoints drop it
    missing = sorted(k for k in set(expected) - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - set(expected))
    mis_shaped = sorted(f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
                        if k in state and state[k].shape != v.shape)
    if missing or unexpected or mis_shaped:
        def show(items: list[str]) -> str:
            return f"{len(items)} {items[:8]}{' ...' if len(items) > 8 else ''}"
        raise ValueError(f"{path}: not an ArcFace iresnet-{arch[1:]} state dict (try another arch: "
                         f"{sorted(ARCFACE_ARCHS)}): missing {show(missing)}; unexpected {show(unexpected)}; "
                         f"wrong shape {show(mis_shaped)}")
    network.load_state_dict({**expected, **state})
    return network.requires_grad_(False)
