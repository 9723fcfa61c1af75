"""PSNR/SSIM against scikit-image, MS-SSIM, LPIPS availability, L2-LD and A-LD."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from instantrestore.utils.images import load_image
from instantrestore.metrics import (LPIPS, MetricUnavailable, affine_landmark_distance, ald_eye, ald_mouth,
                                    l2_landmark_distance, ms_ssim, psnr, ssim)


def _noisy_pair(rng, shape, sigma):
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.normal(0, sigma, shape).round(), 0, 255).astype(np.uint8)
    return a, b


@pytest.mark.parametrize("shape,sigma", [((64, 80, 3), 10), ((33, 47, 3), 40), ((128, 128, 3), 3)])
def test_psnr_ssim_match_skimage_on_random_images(shape, sigma):
    gt, pred = _noisy_pair(np.random.default_rng(sigma), shape, sigma)
    assert psnr(pred, gt).item() == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=255), abs=1e-3)
    expected = structural_similarity(gt, pred, channel_axis=-1, data_range=255)
    assert ssim(pred, gt).item() == pytest.approx(expected, abs=1e-3)
    y_gt, y_pred = rgb2ycbcr(gt)[..., 0], rgb2ycbcr(pred)[..., 0]
    assert psnr(pred, gt, y_channel=True).item() == pytest.approx(
        peak_signal_noise_ratio(y_gt, y_pred, data_range=255), abs=1e-3)
    assert ssim(pred, gt, y_channel=True).item() == pytest.approx(
        structural_similarity(y_gt, y_pred, data_range=255), abs=1e-3)


def test_psnr_ssim_match_skimage_on_real_images(realfaces_dir):
    folder = realfaces_dir / "celebref" / "00005"
    gt = np.asarray(load_image(folder / "references" / "0.png"))
    pred = np.asarray(load_image(next(folder.glob("degraded_*.png"))))
    assert psnr(pred, gt).item() == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=255), abs=1e-3)
    assert ssim(pred, gt).item() == pytest.approx(
        structural_similarity(gt, pred, channel_axis=-1, data_range=255), abs=1e-3)


def test_tensor_and_uint8_inputs_agree_and_batch():
    gt, pred = _noisy_pair(np.random.default_rng(1), (2, 48, 48, 3), 20)
    to_t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
    assert torch.allclose(psnr(to_t(pred), to_t(gt)), psnr(pred, gt), atol=1e-4)
    assert torch.allclose(ssim(to_t(pred), to_t(gt)), ssim(pred, gt), atol=1e-5)
    assert psnr(pred, gt).shape == (2,)
    assert torch.isinf(psnr(gt, gt)).all() and torch.allclose(ssim(gt, gt), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(pred[:, :40], gt)


def test_ms_ssim_orders_degradations():
    rng = np.random.default_rng(2)
    gt, mild = _noisy_pair(rng, (1, 192, 192, 3), 5)
    strong = np.clip(gt.astype(int) + rng.normal(0, 50, gt.shape).round(), 0, 255).astype(np.uint8)
    assert ms_ssim(gt, gt).item() == pytest.approx(1.0, abs=1e-4)
    assert ms_ssim(mild, gt).item() > ms_ssim(strong, gt).item()
    with pytest.raises(ValueError, match="160"):
        ms_ssim(gt[:, :128, :128], gt[:, :128, :128])


def test_lpips_is_skipped_with_a_reason_when_unavailable():
    try:
        metric = LPIPS()
    except MetricUnavailable as exc:
        assert "lpips" in str(exc).lower() or "weights" in str(exc)
        return
    x = torch.zeros(1, 3, 64, 64)
    assert metric(x, x).item() == pytest.approx(0.0, abs=1e-6)


def _random_affine(rng):
    while True:
        m = np.hstack([rng.normal(0, 0.6, (2, 2)) + np.eye(2), rng.normal(0, 40, (2, 1))])
        if abs(np.linalg.det(m[:, :2])) > 0.2:
            return m


def test_ald_is_zero_for_any_affine_map_and_l2_is_not():
    rng = np.random.default_rng(3)
    for _ in range(20):
        landmarks = rng.uniform(100, 400, (68, 2))
        m = _random_affine(rng)
        moved = landmarks @ m[:, :2].T + m[:, 2]
        assert ald_eye(landmarks, moved)[0] < 1e-12 * 1e4
        assert ald_mouth(landmarks, moved)[0] < 1e-6
        d, maps = affine_landmark_distance(landmarks, moved, return_affine=True)
        assert d[0] < 1e-6 and np.allclose(maps[0], m, atol=1e-6)
        assert l2_landmark_distance(landmarks, moved)[0] > 1.0


def test_ald_grows_with_non_affine_perturbation():
    rng = np.random.default_rng(4)
    landmarks = rng.uniform(100, 400, (22, 2))
    m = _random_affine(rng)
    noise = rng.normal(0, 1, landmarks.shape)
    values = [affine_landmark_distance(landmarks, landmarks @ m[:, :2].T + m[:, 2] + s * noise)[0]
              for s in (0.5, 1, 2, 4)]
    assert all(a < b for a, b in zip(values, values[1:])), values
    assert values[0] > 1e-3
    weights = np.ones(22)
    weights[0] = 10
    assert affine_landmark_distance(landmarks, landmarks + noise, weights)[0] != pytest.approx(
        affine_landmark_distance(landmarks, landmarks + noise)[0])


def test_l2_ld_is_mean_euclidean_and_ald_rejects_bad_input():
    a = np.zeros((4, 2))
    b = np.array([[3.0, 4.0], [0, 0], [0, 0], [0, 5]])
    assert l2_landmark_distance(a, b)[0] == pytest.approx(2.5)
    with pytest.raises(ValueError, match="non-collinear"):
        affine_landmark_distance(np.c_[np.arange(5.0), np.arange(5.0)], np.zeros((5, 2)))
    with pytest.raises(ValueError, match="at least 3"):
        affine_landmark_distance(np.zeros((2, 2)), np.zeros((2, 2)))
