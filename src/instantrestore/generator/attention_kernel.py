"""Multi-head softmax attention that can hand back its probabilities, in query chunks.

SDPA's fused kernels when no probabilities are wanted; explicit scores (chunked over queries to
bound memory) when a caller needs the maps, e.g. for the landmark attention loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# Above this many attention scores per chunk, queries are processed in chunks to bound memory.
MAX_SCORES_PER_CHUNK = 2**26


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, L, C] -> [B, heads, L, C/heads]."""
    b, length, channels = x.shape
    return x.view(b, length, heads, channels // heads).transpose(1, 2)


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_mask: torch.Tensor | None,
            scale: float, want_probs: bool, chunk: int | None,
            bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """softmax(q k^T * scale + bias) v over heads, with an optional key mask [B, Lk] (True =
    attend) and logit bias [Lq, Lk] (e.g. :func:`~instantrestore.generator.attention.position_prior`).

    Returns (out [B, heads, Lq, d], probs [B, heads, Lq, Lk] or None). Probabilities are only
    materialised when asked for; otherwise SDPA's fused kernels are used.
    """
    mask = None if key_mask is None else key_mask[:, None, None, :]
    lq, lk = query.shape[2], key.shape[2]
    if bias is not None:
        bias = bias.to(query.dtype)
        if mask is not None:  # one additive mask: the bias, -inf on masked keys
            bias = bias.expand(mask.shape[0], 1, lq, lk).masked_fill(~mask, float("-inf"))
            mask = None
    if chunk is None:
        per_query = query.shape[0] * query.shape[1] * lk
        special = mask is not None or bias is not None
        chunk = max(1, MAX_SCORES_PER_CHUNK // max(per_query, 1)) if special or want_probs else lq
    outs, probs = [], []
    for start in range(0, lq, chunk):
        q = query[:, :, start:start + chunk]
        part = None if bias is None else bias[..., start:start + chunk, :]
        if want_probs:
            scores = torch.matmul(q, key.transpose(-1, -2)) * scale
            if part is not None:
                scores = scores + part
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            p = scores.softmax(dim=-1)
            outs.append(torch.matmul(p, value))
            probs.append(p)
        else:
            outs.append(F.scaled_dot_product_attention(q, key, value, attn_mask=mask if part is None else part,
                                                       scale=scale))
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
    return out, (torch.cat(probs, dim=2) if want_probs else None)
