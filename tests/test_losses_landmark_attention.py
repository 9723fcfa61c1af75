"""Landmark attention supervision (paper eq. 7): ideal map, masking, and a naive reference loop."""
import math

import pytest
import torch

from instantrestore.generator.attention import CapturedAttention
from instantrestore.losses import ideal_attention, landmark_attention_loss, landmark_targets

NAN = float("nan")


def _pixel_of_token(col: float, row: float, image: int, grid: int) -> tuple[float, float]:
    """Pixel (x, y) of a token centre under the module's convention (pixel centres at integers)."""
    s = image / grid
    return col * s + (s - 1) / 2, row * s + (s - 1) / 2


def test_ideal_map_is_a_normalised_gaussian_split_between_references():
    image, grid = 64, 8
    target = torch.tensor([[_pixel_of_token(3, 4, image, grid)]])              # [1, 1, 2]
    refs = torch.tensor([[[_pixel_of_token(2, 2, image, grid)], [_pixel_of_token(5, 6, image, grid)]]])
    ideal, supervised = ideal_attention(target, refs, None, (image, image), (image, image), (grid, grid),
                                        (grid, grid), sigma=1.0, radius=0.5)
    assert ideal.shape == (1, grid * grid, 2, grid * grid)
    query = 4 * grid + 3
    assert supervised[0].nonzero().flatten().tolist() == [query]
    row = ideal[0, query]                                                       # [N, Lk]
    assert row.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert row.sum(dim=1).tolist() == pytest.approx([0.5, 0.5], abs=1e-6)
    assert row[0].argmax().item() == 2 * grid + 2
    assert row[1].argmax().item() == 6 * grid + 5
    # Gaussian shape: one token away falls off by exp(-1 / (2 sigma^2)).
    ratio = row[0, 2 * grid + 3] / row[0, 2 * grid + 2]
    assert ratio.item() == pytest.approx(math.exp(-0.5), rel=1e-5)
    assert ideal[0, :query].abs().sum() == 0 and ideal[0, query + 1:].abs().sum() == 0


def test_sigma_widens_the_map():
    image, grid = 64, 8
    target = torch.tensor([[_pixel_of_token(4, 4, image, grid)]])
    refs = target[:, None]
    narrow, _ = ideal_attention(target, refs, None, (image, image), (image, image), (grid, grid), (grid, grid), 0.5, 0.5)
    wide, _ = ideal_attention(target, refs, None, (image, image), (image, image), (grid, grid), (grid, grid), 2.0, 0.5)
    q = 4 * grid + 4
    assert narrow[0, q, 0].max() > wide[0, q, 0].max()


def test_padded_and_missing_references_get_no_mass():
    image, grid = 32, 4
    target = torch.tensor([[_pixel_of_token(1, 1, image, grid), _pixel_of_token(3, 2, image, grid)]])
    refs = torch.tensor([[[_pixel_of_token(1, 1, image, grid), (NAN, NAN)],
                          [_pixel_of_token(2, 2, image, grid), _pixel_of_token(0, 3, image, grid)],
                          [_pixel_of_token(0, 0, image, grid), _pixel_of_token(0, 0, image, grid)]]])
    mask = torch.tensor([[True, True, False]])
    ideal, supervised = ideal_attention(target, refs, mask, (image, image), (image, image), (grid, grid),
                                        (grid, grid), sigma=0.8, radius=0.5)
    assert ideal[0, :, 2].abs().sum() == 0                       # padded slot: nothing, ever
    q0, q1 = 1 * grid + 1, 2 * grid + 3
    assert supervised[0, q0] and supervised[0, q1]
    assert ideal[0, q0].sum(dim=1).tolist() == pytest.approx([0.5, 0.5, 0.0], abs=1e-6)
    assert ideal[0, q1].sum(dim=1).tolist() == pytest.approx([0.0, 1.0, 0.0], abs=1e-6)  # ref 0 lacks point 1
    assert ideal[0, q1, 1].argmax().item() == 3 * grid + 0


def test_landmark_absent_from_all_references_supervises_nothing():
    target = torch.tensor([[[12.0, 12.0]]])
    refs = torch.tensor([[[[NAN, NAN]], [[12.0, 12.0]]]])
    mask = torch.tensor([[True, False]])  # the only finite one is padding
    _, supervised = ideal_attention(target, refs, mask, (32, 32), (32, 32), (4, 4), (4, 4), 1.0, 3.0)
    assert not supervised.any()


def test_query_takes_the_nearest_landmark_and_radius_limits_supervision():
    image, grid = 80, 10
    target = torch.tensor([[_pixel_of_token(2, 5, image, grid), _pixel_of_token(6, 5, image, grid)]])
    refs = torch.tensor([[[_pixel_of_token(1, 1, image, grid), _pixel_of_token(8, 8, image, grid)]]])
    rows, assign = landmark_targets(target, refs, None, (image, image), (image, image), (grid, grid), (grid, grid),
                                    sigma=1.0, radius=1.5)
    assert assign[0, 5 * grid + 3].item() == 0   # 1 token from point 0, 3 from point 1
    assert assign[0, 5 * grid + 5].item() == 1
    assert assign[0, 0].item() == -1             # far from both
    assert assign[0, 7 * grid + 2].item() == -1  # 2 tokens away > radius
    # a landmark subset removes point 1 entirely
    _, only0 = landmark_targets(target, refs, None, (image, image), (image, image), (grid, grid), (grid, grid),
                                1.0, 1.5, points=(0,))
    assert not (only0 == 1).any() and only0[0, 5 * grid + 3].item() == 0


def _captured(probs: torch.Tensor, qhw, khw) -> CapturedAttention:
    return CapturedAttention(probs, qhw, khw)


def _random_probs(gen, batch, heads, lq, n, lk, mask=None) -> torch.Tensor:
    logits = torch.randn(batch, heads, lq, n, lk, generator=gen)
    if mask is not None:
        logits = logits.masked_fill(~mask[:, None, None, :, None], float("-inf"))
    return logits.flatten(3).softmax(-1).view(batch, heads, lq, n, lk)


def test_masked_out_queries_contribute_nothing():
    gen = torch.Generator().manual_seed(0)
    image, grid = 64, 8
    target = torch.tensor([[_pixel_of_token(2, 2, image, grid), _pixel_of_token(5, 5, image, grid)]])
    refs = target[:, None].repeat(1, 2, 1, 1) + 3.0
    mask = torch.tensor([[True, True]])
    probs = _random_probs(gen, 1, 2, grid * grid, 2, grid * grid)
    _, supervised = ideal_attention(target, refs, mask, (image, image), (image, image), (grid, grid), (grid, grid), 1.0, 1.0)
    assert 0 < supervised.sum() < grid * grid
    base = landmark_attention_loss(_captured(probs, (grid, grid), (grid, grid)), target, refs, mask,
                                   (image, image), (image, image), 1.0, 1.0)
    changed = probs.clone()
    changed[:, :, ~supervised[0]] = _random_probs(gen, 1, 2, grid * grid, 2, grid * grid)[:, :, ~supervised[0]]
    same = landmark_attention_loss(_captured(changed, (grid, grid), (grid, grid)), target, refs, mask,
                                   (image, image), (image, image), 1.0, 1.0)
    assert same.item() == pytest.approx(base.item(), rel=1e-6)
    changed[:, :, supervised[0]] = _random_probs(gen, 1, 2, grid * grid, 2, grid * grid)[:, :, supervised[0]]
    other = landmark_attention_loss(_captured(changed, (grid, grid), (grid, grid)), target, refs, mask,
                                    (image, image), (image, image), 1.0, 1.0)
    assert other.item() != pytest.approx(base.item(), rel=1e-3)


def test_loss_is_zero_for_ideal_attention_and_has_gradients():
    image, grid = 32, 4
    target = torch.tensor([[_pixel_of_token(1, 1, image, grid)]])
    refs = torch.tensor([[[_pixel_of_token(2, 1, image, grid)]]])
    ideal, supervised = ideal_attention(target, refs, None, (image, image), (image, image), (grid, grid), (grid, grid), 1.0, 1.0)
    probs = ideal[:, None].repeat(1, 3, 1, 1, 1).requires_grad_(True)  # every head ideal
    loss = landmark_attention_loss(_captured(probs, (grid, grid), (grid, grid)), target, refs, None,
                                   (image, image), (image, image), 1.0, 1.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    uniform = torch.full_like(probs, 1.0 / (grid * grid)).requires_grad_(True)
    loss = landmark_attention_loss(_captured(uniform, (grid, grid), (grid, grid)), target, refs, None,
                                   (image, image), (image, image), 1.0, 1.0)
    loss.backward()
    assert loss.item() > 0 and uniform.grad[0, :, ~supervised[0]].abs().sum() == 0
    assert uniform.grad[0, :, supervised[0]].abs().sum() > 0


def _naive_las(probs, target, refs, mask, image_hw, ref_hw, qhw, khw, sigma, radius, points=None, form="mse"):
    """Per-query Python loop over the documented definition, for cross-checking."""
    batch, heads, lq, n, lk = probs.shape
    attention = probs.mean(dim=1)
    total, count = 0.0, 0
    for b in range(batch):
        def inside(pt, hw):
            return bool(torch.isfinite(pt).all()) and -0.5 <= pt[0] < hw[1] - 0.5 and -0.5 <= pt[1] < hw[0] - 0.5
        num_points = target.shape[1]
        allowed = range(num_points) if points is None else points
        eligible = [p for p in allowed if inside(target[b, p], image_hw)
                    and any(mask[b, r] and inside(refs[b, r, p], ref_hw) for r in range(n))]
        for q in range(lq):
            qr, qc = divmod(q, qhw[1])
            best, best_d = None, None
            for p in eligible:
                tx = (target[b, p, 0] + 0.5) * qhw[1] / image_hw[1] - 0.5
                ty = (target[b, p, 1] + 0.5) * qhw[0] / image_hw[0] - 0.5
                d = math.hypot(qc - tx, qr - ty)
                if d <= radius and (best_d is None or d < best_d):
                    best, best_d = p, d
            if best is None:
                continue
            usable = [r for r in range(n) if mask[b, r] and inside(refs[b, r, best], ref_hw)]
            row = torch.zeros(n, lk, dtype=torch.float64)
            for r in usable:
                kx = (refs[b, r, best, 0] + 0.5) * khw[1] / ref_hw[1] - 0.5
                ky = (refs[b, r, best, 1] + 0.5) * khw[0] / ref_hw[0] - 0.5
                g = torch.zeros(lk, dtype=torch.float64)
                for k in range(lk):
                    kr, kc = divmod(k, khw[1])
                    g[k] = math.exp(-((kc - kx) ** 2 + (kr - ky) ** 2) / (2 * sigma**2))
                row[r] = g / g.sum() / len(usable)
            if form == "ce":
                used = row > 0  # 0 * log 0 counts as 0
                total += float(-(row[used] * attention[b, q].double()[used].log()).sum())
                count += 1
            else:
                total += float(((attention[b, q].double() - row) ** 2).sum())
                count += n * lk
    return total / count if count else 0.0


@pytest.mark.parametrize("form", ["mse", "ce"])
@pytest.mark.parametrize("points", [None, (0, 2, 3)])
def test_vectorised_loss_matches_a_naive_loop(points, form):
    gen = torch.Generator().manual_seed(1)
    batch, n, num_points = 2, 3, 5
    image_hw, ref_hw, qhw, khw = (48, 40), (32, 32), (6, 5), (4, 4)
    target = torch.rand(batch, num_points, 2, generator=gen) * torch.tensor([40.0, 48.0])
    refs = torch.rand(batch, n, num_points, 2, generator=gen) * 32.0
    target[0, 1] = NAN
    refs[1, 0, 2] = NAN
    refs[0, 2, 4] = torch.tensor([40.0, 5.0])  # outside the reference image: not usable
    mask = torch.tensor([[True, True, True], [True, True, False]])
    probs = _random_probs(gen, batch, 2, qhw[0] * qhw[1], n, khw[0] * khw[1], mask)
    fast = landmark_attention_loss(_captured(probs, qhw, khw), target, refs, mask, image_hw, ref_hw,
                                   sigma=0.9, radius=1.2, points=points, form=form)
    slow = _naive_las(probs, target, refs, mask, image_hw, ref_hw, qhw, khw, 0.9, 1.2, points, form)
    assert slow > 0
    assert fast.item() == pytest.approx(slow, rel=1e-5)


def test_no_supervised_query_gives_a_zero_that_keeps_the_graph():
    probs = _random_probs(torch.Generator().manual_seed(0), 1, 1, 16, 1, 16).requires_grad_(True)
    target = torch.full((1, 3, 2), NAN)
    refs = torch.zeros(1, 1, 3, 2)
    loss = landmark_attention_loss(_captured(probs, (4, 4), (4, 4)), target, refs, None, (32, 32), (32, 32), 1.0, 1.0)
    loss.backward()
    assert loss.item() == 0.0 and probs.grad.abs().sum() == 0


def test_cross_entropy_form_is_smallest_at_the_ideal_and_pulls_harder_when_flat():
    image, grid = 32, 4
    target = torch.tensor([[_pixel_of_token(1, 1, image, grid)]])
    refs = torch.tensor([[[_pixel_of_token(2, 1, image, grid)]]])
    ideal, supervised = ideal_attention(target, refs, None, (image, image), (image, image), (grid, grid), (grid, grid), 1.0, 1.0)
    ideal_logits = ideal.clamp_min(1e-30).log()[:, None]                 # [1, 1, Lq, 1, Lk]
    flat_logits = torch.zeros_like(ideal_logits)

    def loss_and_grad(logits, form):
        logits = logits.clone().requires_grad_(True)
        probs = logits.softmax(-1)
        loss = landmark_attention_loss(_captured(probs, (grid, grid), (grid, grid)), target, refs, None,
                                       (image, image), (image, image), 1.0, 1.0, form=form)
        loss.backward()
        return loss.item(), logits.grad[0, 0, supervised[0]].abs().max().item()

    at_ideal, grad_at_ideal = loss_and_grad(ideal_logits, "ce")
    flat, grad_flat = loss_and_grad(flat_logits, "ce")
    entropy = float(-(ideal[0, supervised[0]] * ideal[0, supervised[0]].clamp_min(1e-30).log()).sum(-1).sum(-1).mean())
    assert at_ideal == pytest.approx(entropy, rel=1e-4) and flat > at_ideal + 0.1
    assert grad_at_ideal < 1e-5
    _, mse_grad_flat = loss_and_grad(flat_logits, "mse")
    assert grad_flat > 100 * mse_grad_flat  # why the option exists


def test_unknown_form_is_refused():
    with pytest.raises(ValueError, match="form must be one of mse, ce, official"):
        landmark_attention_loss(_captured(torch.full((1, 1, 16, 1, 16), 1 / 16), (4, 4), (4, 4)),
                                torch.zeros(1, 1, 2), torch.zeros(1, 1, 1, 2), None, (32, 32), (32, 32), 1.0, 1.0, form="kl")


# --- form "official": the authors' code (their SPEC section 6), against a naive re-statement ---

from instantrestore.losses.config import LandmarkAttentionConfig  # noqa: E402
from instantrestore.losses.landmark_attention_official import (official_choices, official_landmark_attention_loss,  # noqa: E402
                                                      official_targets)


def _naive_official_target(target, block, image, grid, key_grid, transpose):
    """One sample: their dataset loop, landmark by landmark, in float64 -> (target [Lq, Lk], rows [Lq])."""
    ds, kds = image // grid, image // key_grid
    sigma = key_grid / 32
    out = torch.zeros(grid * grid, key_grid * key_grid, dtype=torch.float64)
    rows = torch.zeros(grid * grid, dtype=torch.bool)
    for p in range(target.shape[0]):
        (x, y), (bx, by) = target[p].tolist(), block[p].tolist()
        if any(math.isnan(v) for v in (x, y, bx, by)):
            continue
        qx, qy, cx, cy = math.floor(x / ds), math.floor(y / ds), math.floor(bx / kds), math.floor(by / kds)
        if qx >= grid or qy >= grid or cx >= key_grid or cy >= key_grid or qx < 0 or qy < 0:
            continue
        for k in range(key_grid * key_grid):
            r, c = divmod(k, key_grid)
            d2 = (r - cx) ** 2 + (c - cy) ** 2 if transpose else (c - cx) ** 2 + (r - cy) ** 2
            out[qy * grid + qx, k] += math.exp(-d2 / (2 * sigma**2))
        rows[qy * grid + qx] = True
    return out, rows


def _naive_official(flat_probs, target, blocks, real, image, grid, block, transpose, concat):
    """flat_probs [B, H, Lq, K] as their processor stores it (K = every key, image first in concat);
    blocks [B, P, 2]: the chosen block's landmarks. Min-max over all real keys, MSE over landmark rows."""
    lk = grid * grid
    offset = 1 if concat else 0
    keep = torch.cat([torch.ones(flat_probs.shape[0], offset, dtype=torch.bool), real], 1).repeat_interleave(lk, 1)
    values = torch.cat([flat_probs[b][..., keep[b]].flatten() for b in range(flat_probs.shape[0])]).double()
    low, high = values.min(), values.max()
    targets, rows = zip(*[_naive_official_target(target[b], blocks[b], image, grid, grid, transpose)
                          if block < offset or real[b, block - offset] else
                          (torch.zeros(lk, lk, dtype=torch.float64), torch.zeros(lk, dtype=torch.bool))
                          for b in range(flat_probs.shape[0])])
    gt = torch.stack(targets)
    gt = (gt - gt.min()) / (gt.max() - gt.min())
    total, count = 0.0, 0
    for b in range(flat_probs.shape[0]):
        for q in rows[b].nonzero().flatten().tolist():
            for h in range(flat_probs.shape[1]):
                pred = (flat_probs[b, h, q, block * lk:(block + 1) * lk].double() - low) / (high - low)
                total += float(((pred - gt[b, q]) ** 2).sum())
                count += lk
    return total / count


def _official_case(seed, batch, n_refs, grid, concat, image=64, num_points=7):
    gen = torch.Generator().manual_seed(seed)
    blocks = n_refs + (1 if concat else 0)
    flat = (torch.randn(batch, 2, grid * grid, blocks * grid * grid, generator=gen) * 2).softmax(-1)
    self_probs = flat[..., :grid * grid] if concat else None
    probs = flat[..., (grid * grid if concat else 0):].reshape(batch, 2, grid * grid, n_refs, grid * grid)
    target = torch.rand(batch, num_points, 2, generator=gen) * image
    refs = torch.rand(batch, n_refs, num_points, 2, generator=gen) * image
    target[:, 1] = target[:, 0] + 0.5          # two landmarks in one query token: their rows add up
    target[0, 2, 0] = image + 3.0               # past the grid: skipped (their check)
    target[-1, 3] = NAN                         # missing
    refs[:, :, 4, 1] = image + 5.0              # reference point past the grid: skipped
    return flat, CapturedAttention(probs, (grid, grid), (grid, grid), self_probs), target, refs


@pytest.mark.parametrize("transpose", [True, False])
@pytest.mark.parametrize("batch,concat,padded", [(1, False, False), (3, False, False), (2, True, False),
                                                 (3, False, True)])
def test_official_form_matches_a_naive_loop(transpose, batch, concat, padded):
    n_refs, grid, image = 3, 8, 64
    flat, captured, target, refs = _official_case(batch * 10 + concat, batch, n_refs, grid, concat, image)
    real = torch.ones(batch, n_refs, dtype=torch.bool)
    if padded:
        real[1, 2] = real[2, 1:] = False
        captured.probs[~real[:, None, None, :, None].expand_as(captured.probs)] = 0.0  # masked keys: no mass
        flat = captured.probs.flatten(3)
    other = CapturedAttention(torch.rand_like(captured.probs), (grid, grid), (grid, grid), captured.self_probs)
    for block in range(n_refs + concat):
        blocks = target if (concat and block == 0) else refs[:, block - concat]
        slow = _naive_official(flat, target, blocks, real, image, grid, block, transpose, concat)
        fast = official_landmark_attention_loss([other, captured], target, refs, real, (image, image), (image, image),
                                                transpose=transpose, choice=[(1, block)])
        assert slow > 0 and fast.item() == pytest.approx(slow, rel=1e-5)


def test_official_per_sample_is_the_mean_of_batch_size_one():
    flat, captured, target, refs = _official_case(5, 3, 2, 4, False, image=32)
    choice = [(0, 1), (0, 0), (0, 1)]
    per_sample = official_landmark_attention_loss([captured], target, refs, None, (32, 32), (32, 32),
                                                  batch_mode="per_sample", choice=choice)
    singles = [official_landmark_attention_loss([CapturedAttention(captured.probs[b:b + 1], (4, 4), (4, 4))],
                                                target[b:b + 1], refs[b:b + 1], None, (32, 32), (32, 32),
                                                choice=[choice[b]]) for b in range(3)]
    assert per_sample.item() == pytest.approx(sum(s.item() for s in singles) / 3, rel=1e-6)


def test_official_target_is_transposed_like_theirs_unless_asked_not_to():
    image, grid = 64, 8                                  # 8 px per token
    target = torch.tensor([[[20.0, 44.0]]])              # query token col 2, row 5 -> row 5 * 8 + 2
    block = torch.tensor([[[9.0, 50.0]]])                # key token col 1, row 6
    theirs, rows = official_targets(target, block, (image, image), (image, image), (grid, grid), (grid, grid))
    fixed, _ = official_targets(target, block, (image, image), (image, image), (grid, grid), (grid, grid), False)
    assert rows[0].nonzero().flatten().tolist() == [5 * grid + 2]
    assert theirs[0, 5 * grid + 2].argmax().item() == 1 * grid + 6    # their bug: row cx, col cy
    assert fixed[0, 5 * grid + 2].argmax().item() == 6 * grid + 1
    assert fixed[0, 5 * grid + 2].max().item() == pytest.approx(1.0)  # unnormalised, peak 1
    # std = grid / 32 tokens: one token off the peak falls to exp(-1 / (2 * 0.25^2)) = exp(-8)
    assert fixed[0, 5 * grid + 2, 6 * grid + 2].item() == pytest.approx(math.exp(-8), rel=1e-5)
    assert official_targets(target, block, (image, image), (image, image), (grid, grid), (grid, grid),
                            use=torch.tensor([False]))[1].sum() == 0


def test_official_draw_is_seeded_and_skips_padded_references():
    layers = [CapturedAttention(torch.zeros(2, 1, 4, 3, 4), (2, 2), (2, 2)) for _ in range(9)]
    mask = torch.tensor([[True, False, True], [True, True, True]])
    draws = [official_choices(layers, mask, torch.Generator().manual_seed(s)) for s in range(60)]
    assert draws[7] == official_choices(layers, mask, torch.Generator().manual_seed(7))
    assert all(len(d) == 1 and d[0][1] in (0, 2) for d in draws)  # sample 0's real references only
    assert {d[0][0] for d in draws} == set(range(9))
    per_sample = official_choices(layers, mask, torch.Generator().manual_seed(0), "per_sample")
    assert len(per_sample) == 2
    concat = [CapturedAttention(torch.zeros(1, 1, 4, 1, 4), (2, 2), (2, 2), torch.zeros(1, 1, 4, 4))]
    picks = {official_choices(concat, torch.tensor([[True]]), torch.Generator().manual_seed(s))[0][1] for s in range(30)}
    assert picks == {0, 1}  # block 0 is the image itself, as with their train_input


def test_official_form_through_the_objective_and_config():
    from types import SimpleNamespace

    from instantrestore.losses import LossWeights, RestorationLoss
    flat, captured, target, refs = _official_case(3, 2, 2, 4, False, image=32)
    captured.probs.requires_grad_(True)
    batch = {"landmarks_hq": target, "landmarks_refs": refs, "refs": torch.zeros(2, 2, 3, 32, 32),
             "ref_mask": torch.ones(2, 2, dtype=torch.bool), "index": [4, 9]}
    loss = RestorationLoss(LossWeights(lpips=0, ms_ssim=0, identity=0, adversarial=0),
                           landmark_attention=LandmarkAttentionConfig(form="official"))
    output = SimpleNamespace(attention={"a": captured, "b": captured})
    value = loss._landmark_term(output, batch, (32, 32))
    assert value.item() == loss._landmark_term(output, batch, (32, 32)).item()  # seeded by the batch indices
    gen_value = loss._landmark_term(output, batch, (32, 32), torch.Generator().manual_seed(1))
    (layer, block), = official_choices([captured, captured], batch["ref_mask"], torch.Generator().manual_seed(1))
    assert gen_value.item() == official_landmark_attention_loss([captured], target, refs, None, (32, 32), (32, 32),
                                                                choice=[(0, block)]).item()
    value.backward()
    assert captured.probs.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="official_batch must be one of first, per_sample"):
        LandmarkAttentionConfig(form="official", official_batch="all")
    with pytest.raises(ValueError, match="call official_landmark_attention_loss"):
        landmark_attention_loss(captured, target, refs, None, (32, 32), (32, 32), 1.0, 1.0, form="official")


# ---------------------------------------------------------------- batches without landmarks
def _las_objective():
    from instantrestore.losses import LossWeights, RestorationLoss

    return RestorationLoss(LossWeights(lpips=0.0, ms_ssim=0.0, identity=0.0, adversarial=0.0, l1=1.0,
                                       landmark_attention=5000.0))


def _las_batch(target: torch.Tensor, refs: torch.Tensor, image: int = 32) -> dict:
    batch, n = refs.shape[:2]
    return {"hq": torch.zeros(batch, 3, image, image), "refs": torch.zeros(batch, n, 3, image, image),
            "ref_mask": torch.ones(batch, n, dtype=torch.bool), "landmarks_hq": target, "landmarks_refs": refs,
            "index": list(range(batch))}


@pytest.mark.parametrize("form", ["mse", "ce", "official"])
@pytest.mark.parametrize("case", ["no side files", "no reference landmarks", "no target landmarks"])
def test_a_batch_without_usable_landmarks_contributes_no_las_term(case, form):
    """Images without side files have P = 0 landmark rows; that used to crash (min over an empty set)."""
    from instantrestore.generator.model import GeneratorOutput
    from instantrestore.losses import LandmarkAttentionConfig

    batch, n, points = 2, 2, {"no side files": 0}.get(case, 3)
    target = torch.full((batch, points, 2), 10.0)
    refs = torch.full((batch, n, points, 2), 12.0)
    if case == "no reference landmarks":
        refs[:] = NAN
    if case == "no target landmarks":
        target[:] = NAN
    probs = _random_probs(torch.Generator().manual_seed(0), batch, 1, 16, n, 16).requires_grad_(True)
    loss = _las_objective()
    loss.landmark_config = LandmarkAttentionConfig(form=form)
    image = torch.zeros(batch, 3, 32, 32, requires_grad=True)
    output = GeneratorOutput(image=image, attention={"layer": _captured(probs, (4, 4), (4, 4))})
    total, log = loss.generator_loss(output, _las_batch(target, refs))
    total.backward()
    assert log["landmark_attention"] == 0.0 and log["las_queries"] == 0.0 and log["las_samples"] == 0.0
    assert probs.grad is None or probs.grad.abs().sum() == 0
    assert math.isfinite(log["loss"])


def test_las_metrics_count_the_supervised_queries():
    from instantrestore.generator.model import GeneratorOutput

    image, grid = 32, 4
    target = torch.tensor([[_pixel_of_token(1, 1, image, grid)], [(NAN, NAN)]])   # sample 1: no landmarks
    refs = torch.tensor([[[_pixel_of_token(2, 1, image, grid)]], [[(NAN, NAN)]]])
    probs = _random_probs(torch.Generator().manual_seed(0), 2, 1, 16, 1, 16)
    output = GeneratorOutput(image=torch.zeros(2, 3, image, image),
                             attention={"a": _captured(probs, (grid, grid), (grid, grid)),
                                        "b": _captured(probs, (grid, grid), (grid, grid))})
    loss = _las_objective()
    supervised = int(ideal_attention(target, refs, None, (image, image), (image, image), (grid, grid), (grid, grid),
                                     loss.landmark_config.sigma, loss.landmark_config.radius)[1].sum())
    _, log = loss.generator_loss(output, _las_batch(target, refs, image))
    assert supervised >= 1
    assert log["las_queries"] == 2 * supervised and log["las_samples"] == 1.0  # two layers; one sample
    assert log["landmark_attention"] > 0
