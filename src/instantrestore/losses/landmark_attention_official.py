"""The landmark attention loss as the authors' training code computes it (LAS form "official").

Not eq. 7 as written, but what their coach and dataset do, so that the weight 5000 means what it
means there: one random layer and reference per step, unnormalised Gaussians (std = grid side /
32) summed into the query row of each target landmark, prediction and target each min-max
normalised globally, one MSE over the landmark rows of all heads. docs/losses.md compares the
scale of this form with the paper's (``landmark_attention.py``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..generator.attention import CapturedAttention
from .landmark_attention import add_supervision_stats, grid_centres, point_subset

OFFICIAL_BATCH_MODES = ("first", "per_sample")

def official_tokens(xy: torch.Tensor, image_hw: tuple[int, int], grid_hw: tuple[int, int]) -> torch.Tensor:
    """Pixel (x, y) [..., 2] -> token (col, row) [..., 2] as their code maps it: floor(x / (W // w)),
    floor(y / (H // h)), integer pixels per token (not the half-open convention of token_grid).
    float32, NaN stays NaN; out-of-grid values are returned as they are."""
    step_x, step_y = image_hw[1] // grid_hw[1], image_hw[0] // grid_hw[0]
    if step_x < 1 or step_y < 1:
        raise ValueError(f"image {image_hw} is smaller than the token grid {grid_hw}")
    return torch.floor(xy.float() / xy.new_tensor([step_x, step_y], dtype=torch.float32))


def official_targets(target_landmarks: torch.Tensor, block_landmarks: torch.Tensor, image_hw: tuple[int, int],
                     block_image_hw: tuple[int, int], query_hw: tuple[int, int], key_hw: tuple[int, int],
                     transpose: bool = True, points: Sequence[int] | None = None,
                     use: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Their target for one key block (one reference, or the image itself in ``concat`` mode).

    target_landmarks: [B, P, 2] pixels of the target (image_hw); block_landmarks: [B, P, 2] pixels
    of the chosen block's image (block_image_hw); use: [B] bool, samples that get a target (None = all).
    Landmark p of sample b lands on query token (qx, qy) and key token (cx, cy) (``official_tokens``);
    it is skipped when non-finite, outside ``points``, when qx >= w or qy >= h or cx >= kw or cy >= kh
    (their check), or when qx < 0 or qy < 0 (their code would write into a wrapped row; not copied).
    Its unnormalised Gaussian exp(-(dc^2 / (2 sx^2) + dr^2 / (2 sy^2))), sx = kw / 32, sy = kh / 32
    key tokens, peak 1 at the key token (cx, cy), is *added* to row qy * w + qx.
    transpose=True reproduces a bug in their code: the Gaussian is built with an "ij" meshgrid and
    flattened, so its peak sits at key (col cy, row cx), x and y swapped (square key grids only).
    Returns (target [B, Lq, Lk] float32, rows [B, Lq] bool: queries holding a landmark).
    """
    (qh, qw), (kh, kw) = query_hw, key_hw
    if transpose and kh != kw:
        raise ValueError(f"official_transpose needs a square key grid, got {key_hw}")
    batch, num_points = target_landmarks.shape[:2]
    if block_landmarks.shape != target_landmarks.shape:
        raise ValueError(f"block landmarks {tuple(block_landmarks.shape)} do not match the target's "
                         f"{tuple(target_landmarks.shape)}")
    device = target_landmarks.device
    query = official_tokens(target_landmarks, image_hw, query_hw)                 # [B, P, 2] (col, row)
    key = official_tokens(block_landmarks.to(device), block_image_hw, key_hw)
    ok = (torch.isfinite(query).all(-1) & torch.isfinite(key).all(-1) & (query >= 0).all(-1)
          & (query[..., 0] < qw) & (query[..., 1] < qh) & (key[..., 0] < kw) & (key[..., 1] < kh)
          & point_subset(num_points, points, device)[None])
    if use is not None:
        ok = ok & use.to(device=device, dtype=torch.bool)[:, None]
    key = torch.nan_to_num(key)
    centre = key.flip(-1) if transpose else key                                   # (col, row) of the peak
    sigma = torch.tensor([kw / 32.0, kh / 32.0], device=device)
    grid = grid_centres(key_hw, device)                                          # [Lk, 2]
    z = (grid[None, None] - centre[..., None, :]) / sigma                          # [B, P, Lk, 2]
    gauss = torch.exp(-0.5 * (z**2).sum(-1))                                       # [B, P, Lk]

    sample, point = ok.nonzero(as_tuple=True)
    q = torch.nan_to_num(query).long()
    flat_row = sample * (qh * qw) + q[sample, point, 1] * qw + q[sample, point, 0]
    target = torch.zeros(batch * qh * qw, kh * kw, device=device)
    target.index_add_(0, flat_row, gauss[sample, point])                          # same token: summed
    rows = torch.zeros(batch * qh * qw, dtype=torch.bool, device=device)
    rows[flat_row] = True
    return target.view(batch, qh * qw, kh * kw), rows.view(batch, qh * qw)


def _draw(generator: torch.Generator, count: int) -> int:
    return int(torch.randint(count, (1,), generator=generator).item())


def official_choices(layers: Sequence[CapturedAttention], ref_mask: torch.Tensor, generator: torch.Generator,
                     batch_mode: str = "first") -> list[tuple[int, int]]:
    """Their random (layer, block) draw: layer uniform over ``layers``, then block uniform over the
    sample's attended key blocks (its real references; with ``concat`` attention block 0 is the
    image itself and references start at 1). "first": one draw, sample 0's (their code uses batch
    element 0's choice for the whole batch) -> [(layer, block)]; "per_sample": one per sample, in
    sample order -> B pairs. ref_mask: [B, N] bool."""
    if batch_mode not in OFFICIAL_BATCH_MODES:
        raise ValueError(f"batch mode must be one of {', '.join(OFFICIAL_BATCH_MODES)}, got {batch_mode!r}")
    choices = []
    for b in range(1 if batch_mode == "first" else ref_mask.shape[0]):
        layer = _draw(generator, len(layers))
        offset = 1 if layers[layer].self_probs is not None else 0
        blocks = [0] * offset + [offset + j for j in ref_mask[b].nonzero().flatten().tolist()]
        if not blocks:
            raise ValueError(f"sample {b} has no real reference to supervise")
        choices.append((layer, blocks[_draw(generator, len(blocks))]))
    return choices


def _block_extreme(captured: CapturedAttention, samples: slice, real: torch.Tensor, largest: bool) -> torch.Tensor:
    """Global min (or max) of the attention over all attended key blocks of ``samples``, as
    their whole-tensor min/max; padded references (never present in their code) are left out."""
    reduce = torch.max if largest else torch.min
    probs = captured.probs[samples]
    parts = [probs] if bool(real.all()) else [probs[b, :, :, j] for b, j in real.nonzero().tolist()]
    if captured.self_probs is not None:
        parts.append(captured.self_probs[samples])
    values = [reduce(part) for part in parts]
    return values[0] if len(values) == 1 else reduce(torch.stack(values))


def _official_group(captured: CapturedAttention, block: int, samples: slice, target_landmarks: torch.Tensor,
                    ref_landmarks: torch.Tensor, real: torch.Tensor, image_hw: tuple[int, int],
                    ref_image_hw: tuple[int, int], transpose: bool, points: Sequence[int] | None,
                    stats: dict[str, float] | None = None) -> torch.Tensor:
    """Their loss for the samples of one group sharing (layer, block): normalisation over the group."""
    offset = 1 if captured.self_probs is not None else 0
    target_lm = target_landmarks[samples]
    if block < offset:  # concat: the image's own keys, its own landmarks
        attention, lm, hw, key_hw, use = captured.self_probs[samples], target_lm, image_hw, captured.query_hw, None
    else:
        ref = block - offset
        attention = captured.probs[samples][:, :, :, ref]                          # [b, H, Lq, Lk]
        lm, hw, key_hw, use = ref_landmarks[samples][:, ref], ref_image_hw, captured.key_hw, real[:, ref]
    target, rows = official_targets(target_lm, lm, image_hw, hw, captured.query_hw, key_hw, transpose, points, use)
    sample, query = rows.nonzero(as_tuple=True)
    if stats is not None:
        add_supervision_stats(stats, rows)
    if sample.numel() == 0:
        return captured.probs.sum() * 0.0  # keeps the graph; their code drops such a batch's term
    low = _block_extreme(captured, samples, real, largest=False).float()
    high = _block_extreme(captured, samples, real, largest=True).float()
    pred = (attention.permute(0, 2, 1, 3)[sample, query].float() - low) / (high - low)   # [M, H, Lk]
    ideal = (target[sample, query] - target.min()) / (target.max() - target.min())       # [M, Lk]
    return ((pred - ideal[:, None]) ** 2).mean()  # over heads x landmark rows x Lk


def official_landmark_attention_loss(layers: Sequence[CapturedAttention], target_landmarks: torch.Tensor,
                                     ref_landmarks: torch.Tensor, ref_mask: torch.Tensor | None,
                                     image_hw: tuple[int, int], ref_image_hw: tuple[int, int],
                                     generator: torch.Generator | None = None, batch_mode: str = "first",
                                     transpose: bool = True, points: Sequence[int] | None = None,
                                     choice: Sequence[tuple[int, int]] | None = None,
                                     stats: dict[str, float] | None = None) -> torch.Tensor:
    """The landmark attention loss as the authors' code computes it -> scalar (weight 5000 there).

    layers: the captured layers to draw from (all injected layers = their randint(0, 8)), each
    probs [B, heads, Lq, N, Lk]; landmarks in pixels (x, y) of the model-resolution images:
    target [B, P, 2], references [B, N, P, 2]; ref_mask [B, N] bool (None = all real).
    One (layer, block) is drawn from ``generator`` (``official_choices``), or given as ``choice``.
    batch_mode "first" (their behaviour): that one draw applies to every sample, the min-max
    normalisations are global over the batch ((B, heads, Lq, all key blocks) for the attention,
    the batch's targets for the target), and one MSE runs over all samples' landmark rows; a sample
    for which the drawn reference is padding adds nothing. "per_sample": each sample draws its own
    and the loss is the mean of the per-sample losses (their code with batch size 1).
    The MSE is over (landmark query rows, heads, the block's Lk keys) of the normalised attention
    against the normalised ``official_targets`` (``transpose``: their x/y swap, see there).
    ``stats``, when given, gets the supervised query rows and samples added (``add_supervision_stats``).
    """
    if not layers:
        raise ValueError("the official landmark loss needs at least one captured layer")
    for captured in layers:
        if captured.probs.ndim != 5 or captured.probs.shape[3] == 0:
            raise ValueError("landmark attention needs reference attention [B, heads, Lq, N, Lk]; "
                             "the model was run without references")
    batch, n_refs = layers[0].probs.shape[0], layers[0].probs.shape[3]
    if ref_landmarks.shape[:2] != (batch, n_refs) or target_landmarks.shape[0] != batch:
        raise ValueError(f"landmarks {tuple(target_landmarks.shape)} / {tuple(ref_landmarks.shape)} do not match "
                         f"attention over {n_refs} references for {batch} samples")
    device = layers[0].probs.device
    real = (torch.ones(batch, n_refs, dtype=torch.bool, device=device) if ref_mask is None
            else ref_mask.to(device=device, dtype=torch.bool))
    if choice is None:
        if generator is None:
            raise ValueError("the official landmark loss draws a layer and a reference: pass generator= or choice=")
        choice = official_choices(layers, real.cpu(), generator, batch_mode)
    expected = 1 if batch_mode == "first" else batch
    if len(choice) != expected:
        raise ValueError(f"batch mode {batch_mode!r} needs {expected} (layer, block) choices, got {len(choice)}")
    target_landmarks, ref_landmarks = target_landmarks.to(device), ref_landmarks.to(device)
    groups = [slice(0, batch)] if batch_mode == "first" else [slice(b, b + 1) for b in range(batch)]
    losses = [_official_group(layers[layer], block, samples, target_landmarks, ref_landmarks, real[samples],
                              image_hw, ref_image_hw, transpose, points, stats)
              for (layer, block), samples in zip(choice, groups)]
    return losses[0] if len(losses) == 1 else torch.stack(losses).mean()
