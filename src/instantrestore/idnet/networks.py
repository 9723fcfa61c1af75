"""Small face-recognition networks for the synthetic-identities world, the ArcFace margin head,
and saving/loading a trained network.

Two deliberately different architectures, so that the network the generator is trained
against (identity loss) is not the one that judges it (evaluation), as the paper does with
ArcFace vs CurricularFace:

- ``cnn-a``: plain VGG-style CNN (conv-BN-ReLU, max-pool downsampling, widths 32/64/128),
  flattened spatial features -> FC -> BN (position-aware, like ArcFace's output head).
- ``resnet-b``: residual network (pre-activation blocks with PReLU, strided-conv downsampling,
  widths 40/80/144) pooled by a global depthwise convolution (MobileFaceNet's GDC) -> FC -> BN.

Both map [B, 3, S, S] RGB in [-1, 1] (S = ``input_size``, a multiple of 16) to raw embeddings
[B, D]; ``IdentityNetwork`` wraps one for use as R: L2-normalised output, ``input_size``,
``crop=None`` (synthetic photos are already the face crop the network was trained on).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..utils.files import atomic_write_text
from ..utils.tensor_io import PICKLE_SUFFIXES, load_tensors, save_tensors

IDNET_FORMAT = "instantrestore.idnet/1"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


# ------------------------------------------------------------------ architectures

def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class PlainCNN(nn.Module):
    """``cnn-a``: strided 4x4 stem conv (sees every pixel at half the cost of a full-resolution
    stage), then 3x3 conv-BN-ReLU stages with 2x2 max-pool, widths (32, 64, 128); the (S/16)^2
    grid is flattened so the embedding knows *where* a detail is (marks, each eye's iris)."""

    def __init__(self, embedding_dim: int, input_size: int, widths=(32, 64, 128)):
        super().__init__()
        w1, w2, w3 = widths
        layers = ([nn.Conv2d(3, w1, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(w1), nn.ReLU(inplace=True)]
                  + _conv_bn_relu(w1, w1) + [nn.MaxPool2d(2)]
                  + _conv_bn_relu(w1, w2) + _conv_bn_relu(w2, w2) + [nn.MaxPool2d(2)]
                  + _conv_bn_relu(w2, w3) + [nn.MaxPool2d(2)])
        self.features = nn.Sequential(*layers)
        grid = input_size // 16
        self.head = nn.Sequential(nn.BatchNorm2d(w3), nn.Dropout(0.1), nn.Flatten(),
                                  nn.Linear(w3 * grid * grid, embedding_dim), nn.BatchNorm1d(embedding_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _ResidualBlock(nn.Module):
    """BN-conv-BN-PReLU-conv-BN (+ 1x1 strided shortcut when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.PReLU(cout), nn.Conv2d(cout, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class ResidualNet(nn.Module):
    """``resnet-b``: strided 4x4 stem conv (24, PReLU), then residual stages of widths (40, 80, 144),
    each one stride-2 block + ``depth`` stride-1 blocks; pooled by a global depthwise conv over the
    (S/16)^2 grid (a learned per-channel spatial weighting, not a flatten), FC, BN."""

    def __init__(self, embedding_dim: int, input_size: int, stem: int = 24, widths=(40, 80, 144), depth=(0, 1, 0)):
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(3, stem, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(stem),
                                   nn.PReLU(stem)]
        cin = stem
        for w, extra in zip(widths, depth):
            blocks.append(_ResidualBlock(cin, w, 2))
            blocks += [_ResidualBlock(w, w, 1) for _ in range(extra)]
            cin = w
        blocks.append(nn.BatchNorm2d(cin))
        self.features = nn.Sequential(*blocks)
        grid = input_size // 16
        self.head = nn.Sequential(nn.Conv2d(cin, cin, grid, groups=cin, bias=False), nn.BatchNorm2d(cin),
                                  nn.Flatten(), nn.Linear(cin, embedding_dim), nn.BatchNorm1d(embedding_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


ARCHITECTURES = {"cnn-a": PlainCNN, "resnet-b": ResidualNet}


def build_identity_network(arch: str, embedding_dim: int = 128, input_size: int = 64) -> nn.Module:
    """A randomly initialised backbone ``arch`` mapping [B, 3, S, S] in [-1, 1] -> raw [B, D] float32.

    Seed the weights by building inside ``torch.random.fork_rng()`` + ``torch.manual_seed``.
    Raises ValueError for an unknown ``arch`` or an ``input_size`` that is not a positive multiple of 16.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown identity network architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    if input_size < 16 or input_size % 16:
        raise ValueError(f"input_size must be a positive multiple of 16 (4 stride-2 stages), got {input_size}")
    if embedding_dim < 1:
        raise ValueError(f"embedding_dim must be positive, got {embedding_dim}")
    return ARCHITECTURES[arch](embedding_dim, input_size)


class IdentityNetwork(nn.Module):
    """R for the identity loss: backbone + L2 normalisation.

    forward: [B, 3, S, S] RGB in [-1, 1] -> [B, D] unit-length float32 (differentiable in the
    input). ``input_size`` = S; ``crop`` = None (feed the whole synthetic face crop, resized).
    """

    def __init__(self, backbone: nn.Module, arch: str, input_size: int, embedding_dim: int):
        super().__init__()
        self.backbone = backbone
        self.arch, self.input_size, self.embedding_dim = arch, int(input_size), int(embedding_dim)
        self.crop: tuple[float, float, float, float] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"identity network {self.arch} expects {self.input_size}x{self.input_size} inputs, "
                             f"got {tuple(x.shape[-2:])}; resize (and crop) before calling it")
        return F.normalize(self.backbone(x), dim=-1)


# ------------------------------------------------------------------ ArcFace margin head

class ArcMarginHead(nn.Module):
    """ArcFace additive angular margin (Deng et al. 2019, eq. 3) over ``num_classes`` class centres.

    logits[i, j] = s * cos(theta_ij + m * [j == y_i]), theta_ij the angle between the normalised
    embedding i and centre j. Past theta + m > pi, cos(theta + m) stops decreasing; there the
    target logit is s * (cos(theta) - m * sin(m)) instead (monotone, the usual fix).
    """

    def __init__(self, embedding_dim: int, num_classes: int, scale: float = 32.0, margin: float = 0.3):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.normal_(self.weight, std=0.01)
        self.scale, self.margin = float(scale), float(margin)

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """[B, D] raw embeddings -> [B, C] cosine to every class centre."""
        return F.normalize(embeddings, dim=-1) @ F.normalize(self.weight, dim=-1).T

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """[B, D] embeddings, [B] int64 labels -> [B, C] margin logits (feed to cross-entropy)."""
        cos = self.cosine(embeddings).clamp(-1.0, 1.0)
        sin = (1.0 - cos.square()).clamp_min(1e-9).sqrt()
        cos_m = cos * math.cos(self.margin) - sin * math.sin(self.margin)  # cos(theta + m)
        cos_m = torch.where(cos > math.cos(math.pi - self.margin), cos_m, cos - self.margin * math.sin(self.margin))
        target = F.one_hot(labels, cos.shape[1]).bool()
        return self.scale * torch.where(target, cos_m, cos)


# ------------------------------------------------------------------ save / load

def save_identity_network(network: IdentityNetwork, out_dir: str | Path, extra: dict | None = None) -> None:
    """Write ``out_dir/model.safetensors`` (backbone weights) and ``out_dir/config.json`` atomically.

    ``extra`` (JSON-serialisable, e.g. the training config) is stored under ``"training"``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_tensors(network.backbone.state_dict(), out_dir / WEIGHTS_NAME, metadata={"format": IDNET_FORMAT})
    config = {"format": IDNET_FORMAT, "arch": network.arch, "embedding_dim": network.embedding_dim,
              "input_size": network.input_size, "training": extra or {}}
    atomic_write_text(out_dir / CONFIG_NAME, json.dumps(config, indent=2))


def load_identity_network(path: str | Path, trust_pickle: bool = False) -> IdentityNetwork:
    """Rebuild a saved network from its folder (config.json + model.safetensors), frozen, in eval mode.

    ``path`` is the folder or a file inside it. A folder holding only a pickle (model.pt/.pth/.bin)
    is read only with ``trust_pickle=True``. Returns an ``IdentityNetwork`` (L2-normalised output,
    parameters with requires_grad False, gradients still flow to the input).
    """
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder}: no {CONFIG_NAME}; not an identity network folder (see `instantrestore train-id`)")
    config = json.loads(config_path.read_text())
    if config.get("format") != IDNET_FORMAT:
        raise ValueError(f"{config_path}: format {config.get('format')!r} is not {IDNET_FORMAT!r}")
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        pickles = [folder / f"model{suffix}" for suffix in PICKLE_SUFFIXES if (folder / f"model{suffix}").is_file()]
        if not pickles:
            raise FileNotFoundError(f"{folder}: no {WEIGHTS_NAME}")
        weights = pickles[0]
    state = load_tensors(weights, trust_pickle=trust_pickle)
    backbone = build_identity_network(config["arch"], config["embedding_dim"], config["input_size"])
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{weights}: does not match architecture {config['arch']!r}: "
                         f"missing {sorted(missing)[:10]}, unexpected {sorted(unexpected)[:10]}")
    network = IdentityNetwork(backbone, config["arch"], config["input_size"], config["embedding_dim"])
    return network.eval().requires_grad_(False)
