from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from instantrestore.cli import main
from instantrestore.data.degradations import (
    PRESETS, DegradationParams, add_blur, add_gaussian_noise, add_jpeg_compression, degrade, gaussian_kernel,
    get_preset, random_degradation_params, random_degrade,
)


def _texture(size: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth colour field with sharp edges and fine detail (uint8 RGB)."""
    rng = np.random.default_rng(seed)
    g = np.linspace(0, 1, size, dtype=np.float32)
    base = np.stack([np.add.outer(g, g) * 100, np.outer(g, 1 - g) * 300, np.add.outer(1 - g, g) * 90], -1)
    checker = ((np.add.outer(np.arange(size) // 4, np.arange(size) // 4) % 2) * 60)[..., None]
    fine = rng.integers(0, 40, size=(size, size, 3))
    return np.clip(base + checker + fine, 0, 255).astype(np.uint8)


def _hf_energy(img: np.ndarray) -> float:
    """Mean squared Laplacian of the luma: falls as fine detail is removed."""
    lum = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.mean(cv2.Laplacian(lum, cv2.CV_32F) ** 2))


def _blockiness(img: np.ndarray) -> float:
    """Mean jump across 8 px JPEG block borders divided by the mean jump inside blocks."""
    lum = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    dx = np.abs(np.diff(lum, axis=1))
    cols = np.arange(dx.shape[1])
    border = dx[:, cols % 8 == 7].mean()
    inside = dx[:, cols % 8 != 7].mean()
    return float(border / max(inside, 1e-6))


def test_same_seed_same_bytes_and_no_global_state():
    img = _texture()
    np.random.seed(1)
    a = random_degrade(img, "paper", np.random.default_rng(7))
    np.random.seed(2)  # the global state must not matter
    b = random_degrade(img, "paper", np.random.default_rng(7))
    c = random_degrade(img, "paper", np.random.default_rng(8))
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
    params = random_degradation_params("sr8", np.random.default_rng(3))
    assert degrade(img, params).tobytes() == degrade(img, params).tobytes()


def test_output_is_uint8_rgb_of_input_size_and_input_untouched():
    img = _texture(size=128)[:53, :37].copy()
    before = img.copy()
    out = random_degrade(img, "sr16", np.random.default_rng(0))
    assert out.dtype == np.uint8 and out.shape == (53, 37, 3)
    np.testing.assert_array_equal(img, before)
    with pytest.raises(ValueError, match="uint8"):
        degrade(img.astype(np.float32), DegradationParams())


def test_gaussian_kernel_is_normalised_and_anisotropic():
    iso = gaussian_kernel(21, 3.0, 3.0)
    assert iso.shape == (21, 21) and abs(iso.sum() - 1) < 1e-5
    np.testing.assert_allclose(iso, iso.T, atol=1e-7)
    aniso = gaussian_kernel(21, 5.0, 1.0, 0.0)
    # wide along x: the row through the centre carries more mass than the column
    assert aniso[10].sum() > 3 * aniso[:, 10].sum()
    np.testing.assert_allclose(gaussian_kernel(21, 5.0, 1.0, np.pi / 2), aniso.T, atol=1e-6)


def test_blur_lowers_high_frequency_energy():
    img = _texture().astype(np.float32)
    energies = [_hf_energy(np.clip(add_blur(img, gaussian_kernel(41, s, s)), 0, 255).astype(np.uint8))
                for s in (0.5, 1.5, 4.0)]
    assert energies[0] > energies[1] > energies[2]
    assert energies[2] < 0.1 * _hf_energy(img.astype(np.uint8))


def test_high_frequency_energy_falls_with_downsampling_factor():
    img = _texture()
    energies = [_hf_energy(degrade(img, DegradationParams(scale=r))) for r in (1, 2, 4, 8)]
    assert all(a > b for a, b in zip(energies, energies[1:])), energies


def test_noise_has_the_requested_std():
    flat = np.full((128, 128, 3), 128.0, np.float32)
    noisy = add_gaussian_noise(flat, 10.0, np.random.default_rng(0))
    assert abs(float(noisy.std()) - 10.0) < 0.3
    out = degrade(flat.astype(np.uint8), DegradationParams(noise_sigma=10.0, noise_seed=5))
    assert 6.0 < out.astype(np.float32).std() < 11.0  # JPEG's chroma subsampling smooths some of it
    assert degrade(flat.astype(np.uint8), DegradationParams(noise_sigma=0.0)).std() == 0


def test_jpeg_blocks_appear_at_low_quality():
    g = np.linspace(0, 255, 128, dtype=np.float32)
    smooth = np.stack([np.add.outer(g, g) / 2, np.outer(np.ones(128), g), np.add.outer(g, -g) / 2 + 128], -1)
    img = np.clip(smooth + np.random.default_rng(0).normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)
    low, high = add_jpeg_compression(img, 10), add_jpeg_compression(img, 95)
    assert _blockiness(low) > 1.5 * _blockiness(high)
    assert _blockiness(low) > 1.3
    assert np.abs(low.astype(int) - img).mean() > 1.5 * np.abs(high.astype(int) - img).mean()


def test_paper_preset_matches_the_paper_ranges():
    p = PRESETS["paper"]
    assert (p.kernel_size, p.iso_prob) == (41, 0.5)
    assert (p.sigma_range, p.scale_range, p.noise_range, p.jpeg_range) == ((0.1, 12.0), (1.0, 12.0), (0.0, 15.0), (30, 100))
    for name, r in (("sr4", 4.0), ("sr8", 8.0), ("sr16", 16.0)):
        assert PRESETS[name].scale_range == (r, r)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_produce_their_stated_ranges(name):
    preset = PRESETS[name]
    rng = np.random.default_rng(0)
    draws = [random_degradation_params(preset, rng) for _ in range(400)]

    def check(values, lo, hi):
        values = np.asarray(values, float)
        assert values.min() >= lo - 1e-9 and values.max() <= hi + 1e-9
        span = hi - lo
        if span:  # the draws reach both ends of the range
            assert values.min() < lo + 0.05 * span and values.max() > hi - 0.05 * span

    check([d.sigma_x for d in draws] + [d.sigma_y for d in draws], *preset.sigma_range)
    check([d.scale for d in draws], *preset.scale_range)
    check([d.noise_sigma for d in draws], *preset.noise_range)
    check([d.jpeg_quality for d in draws], *preset.jpeg_range)
    iso = np.mean([d.sigma_x == d.sigma_y and d.theta == 0 for d in draws])
    assert abs(iso - preset.iso_prob) < 0.08
    assert all(d.kernel_size == preset.kernel_size for d in draws)


def test_preset_overrides_and_validation():
    p = get_preset("sr8", noise_range=[0, 2], jpeg_range=(90, 100))
    assert p.noise_range == (0, 2) and p.scale_range == (8.0, 8.0) and PRESETS["sr8"].noise_range == (0.0, 15.0)
    draws = [random_degradation_params(p, np.random.default_rng(i)) for i in range(50)]
    assert max(d.noise_sigma for d in draws) <= 2 and min(d.jpeg_quality for d in draws) >= 90
    with pytest.raises(ValueError, match="unknown degradation preset"):
        get_preset("nope")
    with pytest.raises(ValueError, match="unknown preset field"):
        get_preset("paper", blur=3)
    with pytest.raises(ValueError, match="low"):
        get_preset("paper", sigma_range=(5, 1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.kernel_size = 3  # type: ignore[misc]


def test_degrade_cli_on_folder_is_seeded_and_never_overwrites_input(tmp_path):
    from PIL import Image

    src = tmp_path / "in" / "person"
    src.mkdir(parents=True)
    for k in range(2):
        Image.fromarray(_texture(64, seed=k)).save(src / f"{k}.jpg")
    (src / "0.json").write_text('{"landmarks": [[1, 2]], "width": 64, "height": 64}')
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    assert main(["degrade", str(tmp_path / "in"), str(tmp_path / "a"), "--preset", "sr8", "--seed", "3"]) == 0
    assert main(["degrade", str(tmp_path / "in"), str(tmp_path / "b"), "--preset", "sr8", "--seed", "3"]) == 0
    a, b = tmp_path / "a" / "person", tmp_path / "b" / "person"
    assert sorted(p.name for p in a.iterdir()) == ["0.json", "0.png", "1.png"]
    assert (a / "0.png").read_bytes() == (b / "0.png").read_bytes()
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    # an output inside the input folder, or onto the input file, is refused
    assert main(["degrade", str(tmp_path / "in"), str(src / "out")]) == 2
    assert main(["degrade", str(src / "0.jpg"), str(src / "0.jpg")]) == 2
    assert (src / "0.jpg").read_bytes() == before["0.jpg"]
    # existing outputs are kept unless --overwrite
    (a / "1.png").write_bytes(b"keep")
    assert main(["degrade", str(tmp_path / "in"), str(tmp_path / "a"), "--seed", "3"]) == 0
    assert (a / "1.png").read_bytes() == b"keep"
    # two inputs that would land on the same output are refused rather than silently merged
    Image.fromarray(_texture(64)).save(src / "1.png")
    assert main(["degrade", str(tmp_path / "in"), str(tmp_path / "c")]) == 2
    assert not (tmp_path / "c").exists()
