"""Train a synthetic-world face-recognition network with the ArcFace margin loss, and measure it.

Data: clean renders of ``instantrestore.data.synthetic`` (pose, expression, lighting, colour
cast, glasses vary per photo), rendered once at ``render_size`` and area-resized to
``input_size`` into a uint8 tensor cache. Training identities come from world ``world_seed``;
verification is measured on *other people*: identities of world ``heldout_world_seed``.

Augmentation is deliberately mild (a few pixels of shift, a per-channel colour gain): no blur,
because the evaluation network must see fine identity details (marks, iris colour), and no
horizontal flip, because faces here are asymmetric by identity (marks, heterochromia).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data.synthetic import IRIS_PALETTE, Identity, get_world_style, render, sample_identity
from ..utils.files import atomic_write_text
from ..utils.images import uint8_to_tensor
from .networks import ArcMarginHead, IdentityNetwork, build_identity_network, save_identity_network

METRICS_NAME = "metrics.json"


@dataclass(frozen=True)
class IdentityTrainConfig:
    """Everything a ``train-id`` run depends on; the same config gives the same weights (same machine)."""

    arch: str = "cnn-a"
    seed: int = 0                      # weights, batch order, augmentation, dropout
    world_seed: int = 0                # training identities: people of this synthetic world
    world_style: str = "classic"       # how their marks look (data.synthetic.WORLD_STYLES)
    identities: int = 800
    images_per_identity: int = 8
    steps: int = 600
    batch_size: int = 64
    lr: float = 2e-3                   # AdamW, linear warm-up then cosine decay to 0
    weight_decay: float = 5e-4
    input_size: int = 64               # network input side (multiple of 16)
    render_size: int = 128             # photos are rendered here, then area-resized to input_size
    embedding_dim: int = 128
    margin: float = 0.3                # ArcFace additive angular margin m (radians)
    scale: float = 32.0                # ArcFace logit scale s
    warmup_fraction: float = 0.05
    shift_px: int = 2                  # augmentation: random translation up to this many input pixels
    color_gain: float = 0.08           # augmentation: per-channel gain in [1 - g, 1 + g]
    detail_twins: float = 0.0          # fraction of identities given a twin class (``detail_twin``)
    heldout_world_seed: int | None = None   # None: world_seed + 1
    heldout_identities: int = 200
    heldout_images_per_identity: int = 4

    def validate(self) -> None:
        get_world_style(self.world_style)  # ValueError naming the styles
        if self.identities < 2 or self.images_per_identity < 1:
            raise ValueError("need at least 2 identities and 1 image per identity to train")
        if self.heldout_identities < 2 or self.heldout_images_per_identity < 2:
            raise ValueError("held-out verification needs >= 2 identities with >= 2 photos each")
        if not 0.0 <= self.detail_twins <= 1.0:
            raise ValueError(f"detail_twins is a fraction in [0, 1], got {self.detail_twins}")
        if self.steps < 1 or self.batch_size < 2:
            raise ValueError("steps must be >= 1 and batch_size >= 2")
        held = self.world_seed + 1 if self.heldout_world_seed is None else self.heldout_world_seed
        if held == self.world_seed:
            raise ValueError("heldout_world_seed must differ from world_seed (held-out people must be new)")
        build_identity_network(self.arch, self.embedding_dim, self.input_size)  # arch / size errors early


# ------------------------------------------------------------------ data cache

def _far_iris(color: tuple[int, int, int]) -> tuple[int, int, int]:
    return max(IRIS_PALETTE.values(), key=lambda c: sum((a - b) ** 2 for a, b in zip(c, color)))


def _edited_photo(person: Identity, input_size: int, render_size: int, index: int = 0) -> np.ndarray:
    img = render(person, index, render_size).image
    return cv2.resize(img, (input_size, input_size), interpolation=cv2.INTER_AREA) if render_size != input_size else img


def detail_twin(person: Identity) -> Identity:
    """The same face with its marks mirrored left-right and each iris recoloured to a distant palette colour.

    Mirrored marks stay valid (face outline, nose, mouth and glasses are symmetric) and differ from
    the original constellation: told apart only by marks and iris colour.
    """
    marks = tuple(replace(m, x=1.0 - m.x) for m in person.marks)
    return replace(person, marks=marks, iris_colors=tuple(_far_iris(c) for c in person.iris_colors))


def render_faces(world_seed: int, identities: int, images_per_identity: int, input_size: int,
                 render_size: int = 128, progress: bool = False, desc: str = "render",
                 twins: int = 0, style: str = "classic") -> tuple[torch.Tensor, torch.Tensor]:
    """Clean photos of identities 0..N-1 of ``world_seed``, photos 0..M-1 each, then ``twins``
    extra classes N..N+T-1: ``detail_twin`` of identities 0..T-1 (same photo parameters).

    Returns (images uint8 [(N+T)*M, 3, S, S] RGB, labels int64 [(N+T)*M]), class-major order.
    """
    people = [sample_identity(world_seed, i, style) for i in range(identities)]
    people += [detail_twin(p) for p in people[:twins]]
    out = np.empty((len(people) * images_per_identity, input_size, input_size, 3), np.uint8)
    with tqdm(total=len(out), desc=desc, disable=not progress, unit="img") as bar:
        for i, person in enumerate(people):
            for j in range(images_per_identity):
                out[i * images_per_identity + j] = _edited_photo(person, input_size, render_size, j)
                bar.update()
    labels = torch.arange(len(people)).repeat_interleave(images_per_identity)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous(), labels


def augment(images: torch.Tensor, shift_px: int, color_gain: float, generator: torch.Generator) -> torch.Tensor:
    """Mild photometric/geometric jitter of uint8 [B, 3, S, S] -> float32 [B, 3, S, S] in [-1, 1].

    Random integer translation in [-shift_px, shift_px] (edge pixels replicated) and a per-channel
    gain in [1 - color_gain, 1 + color_gain] on [0, 1] intensities (clipped).
    """
    x = images.float() / 255.0
    b, _, s, _ = x.shape
    if shift_px > 0:
        padded = F.pad(x, (shift_px,) * 4, mode="replicate")
        offsets = torch.randint(0, 2 * shift_px + 1, (b, 2), generator=generator)
        x = torch.stack([padded[k, :, oy:oy + s, ox:ox + s] for k, (oy, ox) in enumerate(offsets.tolist())])
    if color_gain > 0:
        gain = 1.0 + (torch.rand(b, 3, 1, 1, generator=generator) * 2 - 1) * color_gain
        x = (x * gain).clamp(0, 1)
    return x * 2.0 - 1.0


# ------------------------------------------------------------------ evaluation

@torch.no_grad()
def embed_all(network: torch.nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """uint8 [N, 3, S, S] -> L2-normalised embeddings [N, D] (network in eval mode)."""
    was_training = network.training
    network.eval()
    out = torch.cat([F.normalize(network(uint8_to_tensor(images[i:i + batch_size].permute(0, 2, 3, 1))), dim=-1)
                     for i in range(0, len(images), batch_size)])
    network.train(was_training)
    return out


def verification_metrics(embeddings: torch.Tensor, labels: torch.Tensor, images_per_identity: int) -> dict:
    """Held-out verification figures from embeddings [N, D] of identity-major photos.

    - mean_cos_same / mean_cos_diff: mean cosine over all same-identity (distinct photos) and
      all different-identity pairs; separation = their difference.
    - top1: nearest-gallery identification, gallery = photo 0 of every identity, probes = the rest.
    - pair_accuracy / threshold: best balanced accuracy (mean of same- and different-pair rates)
      of "cos >= threshold" over all pairs, and that threshold (a same-person threshold for R).
    """
    sim = embeddings @ embeddings.T
    same = labels[:, None] == labels[None, :]
    off_diag = ~torch.eye(len(labels), dtype=torch.bool)
    cos_same, cos_diff = sim[same & off_diag], sim[~same]
    gallery = torch.arange(0, len(labels), images_per_identity)
    probe = torch.tensor([k for k in range(len(labels)) if k % images_per_identity])
    nearest = gallery[sim[probe][:, gallery].argmax(1)]
    top1 = (labels[nearest] == labels[probe]).float().mean()
    thresholds = torch.linspace(-1, 1, 401)
    tpr = (cos_same[None, :] >= thresholds[:, None]).float().mean(1)
    tnr = (cos_diff[None, :] < thresholds[:, None]).float().mean(1)
    balanced = (tpr + tnr) / 2
    best = int(balanced.argmax())
    return {"mean_cos_same": float(cos_same.mean()), "mean_cos_diff": float(cos_diff.mean()),
            "separation": float(cos_same.mean() - cos_diff.mean()), "top1": float(top1),
            "pair_accuracy": float(balanced[best]), "threshold": float(thresholds[best]),
            "heldout_identities": int(len(gallery)), "heldout_images_per_identity": images_per_identity}


def detail_sensitivity(network: torch.nn.Module, world_seed: int, identities: int, input_size: int,
                       render_size: int = 128, style: str = "classic") -> dict:
    """How much the embedding moves when only a fine identity detail changes (photo 0 of each person).

    - cos_marks_removed: mean cos(photo, same photo without the person's marks);
    - cos_iris_changed: mean cos(photo, same photo with both irises recoloured to a distant palette colour).
    1.0 means blind to the detail; compare with mean_cos_same (another photo of the same person).
    """
    photos = {"original": [], "marks_removed": [], "iris_changed": []}
    for i in range(identities):
        person = sample_identity(world_seed, i, style)
        iris = _far_iris(person.iris_colors[0])
        for key, edited in (("original", person), ("marks_removed", replace(person, marks=())),
                            ("iris_changed", replace(person, iris_colors=(iris, iris)))):
            photos[key].append(_edited_photo(edited, input_size, render_size))
    emb = {k: embed_all(network, torch.from_numpy(np.stack(v)).permute(0, 3, 1, 2)) for k, v in photos.items()}
    return {"cos_marks_removed": float((emb["original"] * emb["marks_removed"]).sum(1).mean()),
            "cos_iris_changed": float((emb["original"] * emb["iris_changed"]).sum(1).mean())}


# ------------------------------------------------------------------ training

def _lr_factor(step: int, steps: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def train_identity_network(config: IdentityTrainConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Train ``config.arch`` on synthetic identities, save it to ``out_dir``, return held-out metrics.

    Writes ``out_dir/model.safetensors``, ``out_dir/config.json`` (loadable by
    ``load_identity_network``) and ``out_dir/metrics.json``, each atomically. Returned dict:
    ``verification_metrics`` and ``detail_sensitivity`` of the held-out world plus ``final_loss``, ``train_top1`` (last 10%
    of steps, margin-free batch accuracy), ``seconds`` (wall time incl. rendering).
    """
    config.validate()
    start = time.perf_counter()
    heldout_seed = config.world_seed + 1 if config.heldout_world_seed is None else config.heldout_world_seed
    twins = round(config.detail_twins * config.identities)
    images, labels = render_faces(config.world_seed, config.identities, config.images_per_identity,
                                  config.input_size, config.render_size, progress, "render train", twins,
                                  config.world_style)
    held_images, held_labels = render_faces(heldout_seed, config.heldout_identities,
                                            config.heldout_images_per_identity, config.input_size,
                                            config.render_size, progress, "render held-out", style=config.world_style)
    # all randomness (init, dropout, order, augmentation) derives from config.seed; global state is restored
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        backbone = build_identity_network(config.arch, config.embedding_dim, config.input_size)
        head = ArcMarginHead(config.embedding_dim, config.identities + twins, config.scale, config.margin)
        generator = torch.Generator().manual_seed(config.seed)
        params = list(backbone.parameters()) + list(head.parameters())
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        warmup = max(1, round(config.warmup_fraction * config.steps))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, config.steps, warmup))
        backbone.train()
        order, cursor = torch.randperm(len(images), generator=generator), 0
        recent_loss, recent_hits, recent_n = [], 0, 0
        bar = tqdm(range(config.steps), desc=f"train-id {config.arch}", disable=not progress)
        for step in bar:
            if cursor + config.batch_size > len(order):
                order, cursor = torch.randperm(len(images), generator=generator), 0
            index = order[cursor:cursor + config.batch_size]
            cursor += config.batch_size
            x = augment(images[index], config.shift_px, config.color_gain, generator)
            embeddings = backbone(x)
            loss = F.cross_entropy(head(embeddings, labels[index]), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss = loss.detach()
            if step >= config.steps - max(1, config.steps // 10):
                recent_loss.append(float(loss))
                recent_hits += int((head.cosine(embeddings.detach()).argmax(1) == labels[index]).sum())
                recent_n += len(index)
            if step % 10 == 0 or step == config.steps - 1:
                bar.set_postfix(loss=f"{float(loss):.3f}")
    network = IdentityNetwork(backbone, config.arch, config.input_size, config.embedding_dim).eval()
    metrics = verification_metrics(embed_all(network, held_images), held_labels, config.heldout_images_per_identity)
    metrics.update(detail_sensitivity(network, heldout_seed, min(config.heldout_identities, 100),
                                      config.input_size, config.render_size, config.world_style))
    metrics.update(final_loss=float(np.mean(recent_loss)), train_top1=recent_hits / max(1, recent_n),
                   heldout_world_seed=heldout_seed, seconds=round(time.perf_counter() - start, 1))
    out_dir = Path(out_dir)
    save_identity_network(network, out_dir, extra=asdict(config))
    atomic_write_text(out_dir / METRICS_NAME, json.dumps(metrics, indent=2))
    return metrics
