"""Degradation estimate, ``auto`` strength and the front-ends' strength parsing."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from instantrestore.pipeline import strength as st
from instantrestore.data import synthetic
from instantrestore.data.degradations import DegradationParams, degrade, random_degrade
from instantrestore.utils.images import uint8_to_tensor


@pytest.fixture(scope="module")
def faces() -> list[np.ndarray]:
    return [synthetic.render(synthetic.sample_identity(3, i), 0, 128).image for i in range(8)]


def mean_estimate(faces, preset: str | None) -> float:
    images = [f if preset is None else random_degrade(f, preset, np.random.default_rng(i)) for i, f in enumerate(faces)]
    return float(np.mean([st.estimate_degradation(x) for x in images]))


def test_heavier_presets_give_higher_estimates(faces):
    est = {p: mean_estimate(faces, p) for p in (None, "moderate", "sr4", "sr8", "sr16", "severe")}
    assert est[None] < 0.1
    assert est[None] < est["moderate"] < est["sr8"] < est["sr16"] < est["severe"]
    assert est["sr4"] < est["sr8"]
    assert all(0 <= v <= 1 for v in est.values())


def test_estimate_rises_with_the_downsampling_factor(faces):
    """Eq. 9 with only r varying (no blur, noise or JPEG loss): each halving of the resolution reads
    as more degraded."""
    for face in faces[:3]:
        values = [st.estimate_degradation(degrade(face, DegradationParams(scale=r, jpeg_quality=100)))
                  for r in (1, 2, 4, 8, 16)]
        assert all(b > a for a, b in zip(values, values[1:])), values


def test_fine_energy_share_against_a_naive_pyramid():
    """Naive version: Gaussian-blur-and-decimate pyramid written with explicit 5-tap filtering."""
    import cv2

    rng = np.random.default_rng(0)
    face = cv2.GaussianBlur(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), (0, 0), 1.5)
    grey = cv2.cvtColor(face.astype(np.float32), cv2.COLOR_RGB2GRAY).astype(np.float64)
    taps = np.array([1, 4, 6, 4, 1]) / 16.0

    def blur(x):  # separable 5-tap filter, reflect-101 border (OpenCV's pyramid default)
        for axis in (0, 1):
            padded = np.pad(x, [(2, 2) if a == axis else (0, 0) for a in (0, 1)], mode="reflect")
            x = sum(t * np.take(padded, range(k, k + x.shape[axis]), axis=axis) for k, t in enumerate(taps))
        return x

    energies = []
    for _ in range(st.PYRAMID_LEVELS):
        down = blur(grey)[::2, ::2]
        up = np.zeros_like(grey)
        up[::2, ::2] = down
        up = blur(up) * 4
        energies.append(np.mean((grey - up) ** 2))
        grey = down
    naive = sum(energies[:st.FINE_LEVELS]) / sum(energies)
    assert st.fine_energy_share(face) == pytest.approx(naive, rel=1e-3)


def test_every_input_kind_gives_the_same_estimate(faces):
    lq = random_degrade(faces[0], "sr8", np.random.default_rng(0))
    tensor = uint8_to_tensor(lq)
    values = [st.estimate_degradation(x) for x in (lq, Image.fromarray(lq), tensor, tensor[0])]
    assert max(values) - min(values) < 1e-4
    assert st.estimate_degradation(np.full((64, 64, 3), 128, np.uint8)) == 1.0  # no detail at all


def test_bad_faces_are_refused():
    with pytest.raises(ValueError, match="one image"):
        st.estimate_degradation(torch.zeros(2, 3, 64, 64))
    with pytest.raises(ValueError, match="too small"):
        st.estimate_degradation(np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        st.estimate_degradation(np.zeros((64, 64, 3), np.float32))


def test_auto_strength_leans_on_references_as_faces_degrade(faces):
    clean = [st.auto_strength(f) for f in faces]
    assert np.mean(clean) < 0.4 and min(clean) == st.AUTO_MIN_STRENGTH
    assert st.auto_strength(random_degrade(faces[0], "severe", np.random.default_rng(0))) == 1.0
    ramp = [st.strength_for_degradation(d) for d in np.linspace(0, 1, 21)]
    assert all(b >= a for a, b in zip(ramp, ramp[1:])) and ramp[0] == st.AUTO_MIN_STRENGTH and ramp[-1] == 1.0


def test_resolve_strength(faces):
    assert st.resolve_strength(0.5) == 0.5 and st.resolve_strength("0.25") == 0.25 and st.resolve_strength(1) == 1.0
    assert st.resolve_strength("auto", faces[0]) == st.auto_strength(faces[0])
    for bad in ("strong", 1.5, -0.2, "nan", True):
        with pytest.raises(ValueError, match="strength"):
            st.resolve_strength(bad, faces[0])
    with pytest.raises(ValueError, match="needs the face"):
        st.resolve_strength("auto")
