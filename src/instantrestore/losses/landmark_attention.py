"""Landmark attention supervision (LAS, paper sec. 3.4, eq. 7): L_LAS = || A_ideal - A_rest ||_2^2.

Coordinates (``instantrestore.token_grid``). Landmarks are pixel (x, y) with pixel centres at
integers (this repo's convention: pixel i covers [i - 0.5, i + 0.5), so an image spans the half-open
[-0.5, W - 0.5) x [-0.5, H - 0.5)); NaN marks a missing point. A layer grid of h x w tokens over an
H x W image gives s = H / h pixels per token, and token (row i, col j) is centred on pixel
(j * s + (s - 1) / 2, i * s + (s - 1) / 2); in token units a landmark sits at
((x + 0.5) / s - 0.5, (y + 0.5) / s - 0.5). All distances below are in tokens of the grid at hand.

Ideal map. A query token is *supervised* when its centre lies within ``radius`` of an eligible
target landmark p (finite and inside the target image, in the chosen subset, and present in at
least one real reference); it takes the *nearest* such landmark (ties: the lowest index), so its
target is one unambiguous facial location. Its ideal row puts a 2D Gaussian (std ``sigma``)
around landmark p in every real reference where p is finite and inside the image: each such
Gaussian is normalised over that reference's key tokens and weighted 1 / (number of such
references), so the row sums to 1 over all N x Lk reference tokens and the references share the
mass equally. Padded references (ref_mask False) and references missing p get none.

Loss. Captured probabilities [B, heads, Lq, N, Lk] are averaged over heads; on the supervised
queries only, the squared error is averaged over (supervised query, N, Lk) elements - PyTorch's
``mse_loss`` restricted to those rows - and then over layers. Unsupervised queries contribute
nothing. Per element the values are tiny (a row spreads 1 over N * Lk tokens), which is why the
paper's weight is as large as 5000.

Option ``form="ce"`` (not the paper's): the cross-entropy -sum(ideal * log attention) per supervised
row, averaged over rows. Near flat attention the squared error's gradient on a logit is of the size
of that logit's probability (1 / (N * Lk)); the cross-entropy's is (attention - ideal), so it keeps
pulling until the mass sits on the landmark.

Option ``form="official"``: the loss as the authors' training code computes it (not eq. 7 as
written; see ``official_landmark_attention_loss`` and docs/losses.md), so that the weight 5000
means what it means there: one random layer and reference per step, unnormalised Gaussians
(std = grid side / 32) summed into the query row of each target landmark, prediction and target
each min-max normalised globally, one MSE over the landmark rows of all heads.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..attention import CapturedAttention
from ..token_grid import inside_image, token_coords

LAS_FORMS = ("mse", "ce", "official")
OFFICIAL_BATCH_MODES = ("first", "per_sample")


def _grid_centres(grid_hw: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Token centres (col, row) of a grid, row-major -> [h * w, 2] float32."""
    rows, cols = torch.meshgrid(torch.arange(grid_hw[0], device=device, dtype=torch.float32),
                                torch.arange(grid_hw[1], device=device, dtype=torch.float32), indexing="ij")
    return torch.stack([cols.reshape(-1), rows.reshape(-1)], dim=-1)


def _point_subset(num_points: int, points: Sequence[int] | None, device: torch.device) -> torch.Tensor:
    """[P] bool: which landmark rows may be used."""
    if points is None:
        return torch.ones(num_points, dtype=torch.bool, device=device)
    chosen = torch.zeros(num_points, dtype=torch.bool, device=device)
    index = torch.as_tensor(list(points), dtype=torch.long, device=device)
    if index.numel() and (index.min() < 0 or index.max() >= num_points):
        raise ValueError(f"landmark subset {tuple(points)} is out of range for {num_points} points")
    chosen[index] = True
    return chosen


def landmark_targets(target_landmarks: torch.Tensor, ref_landmarks: torch.Tensor, ref_mask: torch.Tensor | None,
                     image_hw: tuple[int, int], ref_image_hw: tuple[int, int], query_hw: tuple[int, int],
                     key_hw: tuple[int, int], sigma: float, radius: float,
                     points: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ideal attention in compact form: one row per landmark, and each query's landmark.

    target_landmarks: [B, P, 2] pixels of the target (image_hw); ref_landmarks: [B, N, P, 2] pixels
    of the references (ref_image_hw); ref_mask: [B, N] bool (None = all real).
    Returns (rows [B, P, N, Lk] float32, each (b, p) summing to 1 or all zero; assign [B, Lq] long,
    the landmark a query is supervised towards, -1 = not supervised). Rows are built only per
    landmark, so memory is O(B * P * N * Lk + B * Lq * P), never per query.
    """
    if sigma <= 0 or radius < 0:
        raise ValueError(f"sigma must be > 0 and radius >= 0, got sigma={sigma}, radius={radius}")
    batch, num_points = target_landmarks.shape[:2]
    if ref_landmarks.ndim != 4 or ref_landmarks.shape[0] != batch or ref_landmarks.shape[2] != num_points:
        raise ValueError(f"reference landmarks must be [B, N, {num_points}, 2], got {tuple(ref_landmarks.shape)}")
    device = target_landmarks.device
    target = target_landmarks.float()
    refs = ref_landmarks.float().to(device)
    n_refs = refs.shape[1]
    real = (torch.ones(batch, n_refs, dtype=torch.bool, device=device) if ref_mask is None
            else ref_mask.to(device=device, dtype=torch.bool))

    ref_ok = inside_image(refs, ref_image_hw) & real[:, :, None]                # [B, N, P]
    eligible = (inside_image(target, image_hw) & ref_ok.any(dim=1)
                & _point_subset(num_points, points, device)[None])              # [B, P]

    # Each query's nearest eligible target landmark, if within the radius.
    queries = _grid_centres(query_hw, device)                                   # [Lq, 2]
    target_tok = torch.nan_to_num(token_coords(target, image_hw, query_hw))     # [B, P, 2]
    dist = torch.cdist(queries[None].expand(batch, -1, -1), target_tok,
                       compute_mode="donot_use_mm_for_euclid_dist")            # [B, Lq, P], exact
    dist = dist.masked_fill(~eligible[:, None, :], float("inf"))
    nearest, assign = dist.min(dim=-1)
    assign = torch.where(nearest <= radius, assign, torch.full_like(assign, -1))

    # One normalised Gaussian per (sample, landmark, reference), in log space so landmarks near
    # the border never underflow; then an equal share per usable reference.
    keys = _grid_centres(key_hw, device)                                        # [Lk, 2]
    ref_tok = torch.nan_to_num(token_coords(refs, ref_image_hw, key_hw))        # [B, N, P, 2]
    sq = ((keys[None, None, None] - ref_tok[..., None, :]) ** 2).sum(-1)        # [B, N, P, Lk]
    gauss = torch.softmax(-sq / (2.0 * sigma**2), dim=-1)
    share = ref_ok.float() / ref_ok.sum(dim=1, keepdim=True).clamp(min=1)       # [B, N, P]
    rows = (gauss * share[..., None]).permute(0, 2, 1, 3)                       # [B, P, N, Lk]
    rows = rows * eligible[:, :, None, None]
    return rows.contiguous(), assign


def ideal_attention(target_landmarks: torch.Tensor, ref_landmarks: torch.Tensor, ref_mask: torch.Tensor | None,
                    image_hw: tuple[int, int], ref_image_hw: tuple[int, int], query_hw: tuple[int, int],
                    key_hw: tuple[int, int], sigma: float, radius: float,
                    points: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The full ideal map A_ideal [B, Lq, N, Lk] (zero rows where unsupervised) and the
    supervised-query mask [B, Lq] bool. For inspection and tests; the loss uses the compact form."""
    rows, assign = landmark_targets(target_landmarks, ref_landmarks, ref_mask, image_hw, ref_image_hw,
                                    query_hw, key_hw, sigma, radius, points)
    supervised = assign >= 0
    index = assign.clamp(min=0)
    full = rows[torch.arange(rows.shape[0], device=rows.device)[:, None], index]  # [B, Lq, N, Lk]
    return full * supervised[..., None, None], supervised


def landmark_attention_loss(captured: CapturedAttention, target_landmarks: torch.Tensor,
                            ref_landmarks: torch.Tensor, ref_mask: torch.Tensor | None,
                            image_hw: tuple[int, int], ref_image_hw: tuple[int, int], sigma: float,
                            radius: float, points: Sequence[int] | None = None, form: str = "mse") -> torch.Tensor:
    """Eq. 7 for one layer: mean squared error between the head-averaged attention and the ideal
    map over the supervised queries (see the module docstring) -> scalar, 0 when none is supervised.
    ``form="ce"``: the cross-entropy against the ideal rows instead."""
    if form == "official":
        raise ValueError("form='official' draws one layer for the whole step: call official_landmark_attention_loss")
    if form not in LAS_FORMS:
        raise ValueError(f"form must be one of {', '.join(LAS_FORMS)}, got {form!r}")
    probs = captured.probs
    if probs.ndim != 5 or probs.shape[3] == 0:
        raise ValueError("landmark attention needs reference attention [B, heads, Lq, N, Lk]; "
                         "the model was run without references")
    batch, _, lq, n_refs, lk = probs.shape
    if lq != captured.query_hw[0] * captured.query_hw[1] or lk != captured.key_hw[0] * captured.key_hw[1]:
        raise ValueError(f"attention of shape {tuple(probs.shape)} does not match grids "
                         f"{captured.query_hw} / {captured.key_hw}")
    if ref_landmarks.shape[1] != n_refs:
        raise ValueError(f"{ref_landmarks.shape[1]} reference landmark sets for {n_refs} attended references")
    rows, assign = landmark_targets(target_landmarks.to(probs.device), ref_landmarks.to(probs.device), ref_mask,
                                    image_hw, ref_image_hw, captured.query_hw, captured.key_hw, sigma, radius, points)
    sample, query = (assign >= 0).nonzero(as_tuple=True)
    if sample.numel() == 0:
        return probs.sum() * 0.0  # keeps the graph; nothing to supervise in this batch
    attention = probs.mean(dim=1)[sample, query].float()                      # [M, N, Lk]
    ideal = rows[sample, assign[sample, query]]                                # [M, N, Lk]
    if form == "ce":
        # log of the head-averaged probabilities; the floor only guards exact zeros.
        return -(ideal * attention.clamp_min(1e-12).log()).flatten(1).sum(-1).mean()
    return ((attention - ideal) ** 2).mean()


# ---------------------------------------------------------------------------------------------
# The authors' form (their training code, not eq. 7 as written)
# ---------------------------------------------------------------------------------------------

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
          & _point_subset(num_points, points, device)[None])
    if use is not None:
        ok = ok & use.to(device=device, dtype=torch.bool)[:, None]
    key = torch.nan_to_num(key)
    centre = key.flip(-1) if transpose else key                                   # (col, row) of the peak
    sigma = torch.tensor([kw / 32.0, kh / 32.0], device=device)
    grid = _grid_centres(key_hw, device)                                          # [Lk, 2]
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
                    ref_image_hw: tuple[int, int], transpose: bool, points: Sequence[int] | None) -> torch.Tensor:
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
                                     choice: Sequence[tuple[int, int]] | None = None) -> torch.Tensor:
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
                              image_hw, ref_image_hw, transpose, points)
              for (layer, block), samples in zip(choice, groups)]
    return losses[0] if len(losses) == 1 else torch.stack(losses).mean()
