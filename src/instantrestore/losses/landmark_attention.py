"""Landmark attention supervision (LAS, paper sec. 3.4, eq. 7): L_LAS = || A_ideal - A_rest ||_2^2.

Coordinates (``instantrestore.generator.token_grid``). Landmarks are pixel (x, y) with pixel centres at
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
nothing; a batch with no usable landmark (no side files: P = 0; or all NaN in its targets or in
its references) supervises no query, and its term is 0 with no gradient. Per element the values are tiny (a row spreads 1 over N * Lk tokens), which is why the
paper's weight is as large as 5000.

Option ``form="ce"`` (not the paper's): the cross-entropy -sum(ideal * log attention) per supervised
row, averaged over rows. Near flat attention the squared error's gradient on a logit is of the size
of that logit's probability (1 / (N * Lk)); the cross-entropy's is (attention - ideal), so it keeps
pulling until the mass sits on the landmark.

Option ``form="official"``: the loss as the authors' training code computes it (not eq. 7 as
written; see ``official_landmark_attention_loss`` and docs/losses.md), so that the weight 5000
means what it means there: ``landmark_attention_official.py``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..generator.attention import CapturedAttention
from ..generator.token_grid import inside_image, token_coords

LAS_FORMS = ("mse", "ce", "official")


def grid_centres(grid_hw: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Token centres (col, row) of a grid, row-major -> [h * w, 2] float32."""
    rows, cols = torch.meshgrid(torch.arange(grid_hw[0], device=device, dtype=torch.float32),
                                torch.arange(grid_hw[1], device=device, dtype=torch.float32), indexing="ij")
    return torch.stack([cols.reshape(-1), rows.reshape(-1)], dim=-1)


def point_subset(num_points: int, points: Sequence[int] | None, device: torch.device) -> torch.Tensor:
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
                & point_subset(num_points, points, device)[None])              # [B, P]

    # Each query's nearest eligible target landmark, if within the radius (P = 0: a batch of
    # images without landmark side files supervises no query).
    queries = grid_centres(query_hw, device)                                   # [Lq, 2]
    if num_points == 0:
        rows = torch.zeros(batch, 0, n_refs, key_hw[0] * key_hw[1], device=device)
        return rows, torch.full((batch, queries.shape[0]), -1, dtype=torch.long, device=device)
    target_tok = torch.nan_to_num(token_coords(target, image_hw, query_hw))     # [B, P, 2]
    dist = torch.cdist(queries[None].expand(batch, -1, -1), target_tok,
                       compute_mode="donot_use_mm_for_euclid_dist")            # [B, Lq, P], exact
    dist = dist.masked_fill(~eligible[:, None, :], float("inf"))
    nearest, assign = dist.min(dim=-1)
    assign = torch.where(nearest <= radius, assign, torch.full_like(assign, -1))

    # One normalised Gaussian per (sample, landmark, reference), in log space so landmarks near
    # the border never underflow; then an equal share per usable reference.
    keys = grid_centres(key_hw, device)                                        # [Lk, 2]
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
                            radius: float, points: Sequence[int] | None = None, form: str = "mse",
                            stats: dict[str, float] | None = None) -> torch.Tensor:
    """Eq. 7 for one layer: mean squared error between the head-averaged attention and the ideal
    map over the supervised queries (see the module docstring) -> scalar, 0 when none is supervised.
    ``form="ce"``: the cross-entropy against the ideal rows instead. ``stats``, when given, gets
    ``supervised_queries`` and ``supervised_samples`` added (counts of this layer)."""
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
    if stats is not None:
        add_supervision_stats(stats, assign >= 0)
    if sample.numel() == 0:
        return probs.sum() * 0.0  # keeps the graph; nothing to supervise in this batch
    attention = probs.mean(dim=1)[sample, query].float()                      # [M, N, Lk]
    ideal = rows[sample, assign[sample, query]]                                # [M, N, Lk]
    if form == "ce":
        # log of the head-averaged probabilities; the floor only guards exact zeros.
        return -(ideal * attention.clamp_min(1e-12).log()).flatten(1).sum(-1).mean()
    return ((attention - ideal) ** 2).mean()


def add_supervision_stats(stats: dict[str, float], supervised: torch.Tensor) -> None:
    """Fold a supervised-query mask [B, Lq] bool of one layer into ``stats``: ``supervised_queries``
    adds its supervised rows, ``supervised_samples`` keeps the most samples with at least one row
    over the layers folded in."""
    stats["supervised_queries"] = stats.get("supervised_queries", 0.0) + float(supervised.sum())
    samples = float(supervised.any(dim=1).sum()) if supervised.numel() else 0.0
    stats["supervised_samples"] = max(stats.get("supervised_samples", 0.0), samples)
