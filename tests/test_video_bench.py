"""Synthetic clips (data.synthetic.clips) and the temporal-consistency measures (bench.video)."""
from __future__ import annotations

import numpy as np
import pytest

from instantrestore.bench.video import blend_previous, check_targets, frame_change, summarize, ClipResult
from instantrestore.data import synthetic
from instantrestore.data.synthetic.clips import degrade_clip, render_clip


def test_a_clip_moves_the_person_and_is_the_same_for_the_same_numbers() -> None:
    person = synthetic.sample_identity(1000, 3)
    clip = render_clip(person, 6, 64, seed=1)
    again = render_clip(person, 6, 64, seed=1)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(clip, again))
    moved = np.linalg.norm(clip[-1].landmarks[:68] - clip[0].landmarks[:68], axis=1).mean()
    assert 0.5 < moved < 15  # pixels at 64 px: a moderate motion
    assert not np.array_equal(render_clip(person, 6, 64, seed=2)[-1].image, clip[-1].image)
    with pytest.raises(ValueError):
        render_clip(person, 1)


def test_each_frame_is_degraded_with_its_own_draw() -> None:
    frame = synthetic.render(synthetic.sample_identity(1000, 0), 0, 64).image
    a, b = degrade_clip([frame, frame], "sr8", seed=0)
    assert not np.array_equal(a, b)
    assert np.array_equal(degrade_clip([frame], "sr8", seed=0)[0], a)
    fixed = degrade_clip([frame, frame], "sr8", seed=0, fixed=True)  # the diagnostic: one draw for all
    assert np.array_equal(fixed[0], a) and np.array_equal(fixed[1], a)


def test_frame_change_follows_the_motion_and_blending_smooths() -> None:
    clip = render_clip(synthetic.sample_identity(1000, 1), 4, 64)
    m = [c.matrix.astype(np.float64) for c in clip]
    mask = np.zeros((64, 64), bool)
    mask[20:44, 20:44] = True
    same = frame_change(clip[0].image, clip[0].image, m[0], m[0], mask)
    assert same == 0.0
    compensated = frame_change(clip[0].image, clip[1].image, m[0], m[1], mask)
    raw = float(np.abs(clip[1].image.astype(float) - clip[0].image)[mask].mean())
    assert compensated < raw  # warping by the known motion explains part of the change
    rng = np.random.default_rng(0)
    noisy = [np.clip(c.image + rng.normal(0, 20, c.image.shape), 0, 255).astype(np.uint8) for c in clip]
    assert blend_previous(noisy, m, 0.0) is noisy
    blended = blend_previous(noisy, m, 0.5)
    assert frame_change(blended[2], blended[3], m[2], m[3], mask) < frame_change(noisy[2], noisy[3], m[2], m[3], mask)


def test_summary_and_targets() -> None:
    blind = ClipResult(id_sim=[0.2, 0.6], marks_found=0, marks_total=4, change=[4.0], truth_change=[1.0])
    refs = ClipResult(id_sim=[0.8, 0.9], marks_found=3, marks_total=4, change=[2.0], truth_change=[1.0])
    table = summarize([{"blind": blind, "4 refs": refs}])
    assert table["blind"]["id_std"] == pytest.approx(0.2) and table["4 refs"]["flicker"] == pytest.approx(1.0)
    assert check_targets(table) == {"id_std_at_most_half": True, "flicker_at_most_0.75x": True,
                                    "id_mean_plus_0.15": True}


def test_every_remedy_at_weight_zero_is_the_per_frame_restoration() -> None:
    from instantrestore.bench.video_remedies import REMEDIES, restore_clip
    from instantrestore.generator.config import TINY_UNET, TINY_VAE
    from instantrestore.generator.model import InstantRestore

    model = InstantRestore.from_config("tiny", seed=0, image_size=64,
                                       vae={**TINY_VAE, "block_out_channels": [16, 32, 32]},
                                       unet={**TINY_UNET, "block_out_channels": [16, 32, 32],
                                             "attention_head_dim": [1, 2, 2], "cross_attention_dim": 16}).eval()
    clip = render_clip(synthetic.sample_identity(1000, 2), 3, 64)
    degraded, m = degrade_clip([c.image for c in clip], "sr8"), [c.matrix.astype(np.float64) for c in clip]
    plain = restore_clip(model, degraded, m, None)
    for remedy in REMEDIES:
        if remedy in ("per-frame", "previous frame ref"):  # no weight to set
            continue
        assert all(np.array_equal(a, b) for a, b in zip(restore_clip(model, degraded, m, None, remedy, 0.0), plain))
        moved = restore_clip(model, degraded, m, None, remedy, 0.5)
        assert any(not np.array_equal(a, b) for a, b in zip(moved, plain)), remedy
    with pytest.raises(ValueError, match="unknown remedy"):
        restore_clip(model, degraded, m, None, "median")
