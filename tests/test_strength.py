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


# ------------------------------------------------------------------ the one strength grammar
@pytest.mark.parametrize("text, value", [("auto", "auto"), ("AUTO", "auto"), (" Auto ", "auto"), ("0.5", 0.5),
                                         ("1", 1.0), (0, 0.0), (0.25, 0.25), (np.float32(0.5), 0.5)])
def test_parse_strength_reads_numbers_and_auto_in_any_case(text, value):
    assert st.parse_strength(text) == value and type(st.parse_strength(text)) is type(value)


@pytest.mark.parametrize("bad, shown", [("1.5", "1.5"), (1.5, "1.5"), (-0.2, "-0.2"), ("nan", "nan"),
                                        ("strong", "'strong'"), (True, "True"), (None, "None")])
def test_parse_strength_refuses_with_one_message(bad, shown):
    with pytest.raises(ValueError) as info:
        st.parse_strength(bad)
    assert str(info.value) == f"strength must be {st.STRENGTH_HELP}, got {shown}"


def test_face_strength_is_none_without_references_and_resolved_with_them(faces):
    assert st.face_strength("auto", None, has_references=False) is None  # blind: the face is not even read
    assert st.face_strength(0.0, faces[0], has_references=False) is None
    assert st.face_strength(0.0, faces[0], has_references=True) == 0.0
    assert st.face_strength("AUTO", faces[0], has_references=True) == st.auto_strength(faces[0])


def test_auto_reads_an_image_path_like_the_array(faces, tmp_path):
    Image.fromarray(faces[1]).save(tmp_path / "face.png")
    assert st.resolve_strength("auto", tmp_path / "face.png") == st.resolve_strength("auto", faces[1])


def _cli_strength(capsys, value: str):
    """--strength as `instantrestore restore` parses it: (the value, or None, and argparse's error)."""
    from instantrestore.cli import build_parser

    try:
        args = build_parser().parse_args(["restore", "x.png", "--out", "o.png", "--strength", value])
    except SystemExit:
        return None, capsys.readouterr().err
    return args.strength, ""


def _ui_strength(monkeypatch, value, auto: bool = False):
    """The strength the UI hands to FaceRestorer.enhance for a slider ``value`` (no model run)."""
    import instantrestore.ui.session as session
    from instantrestore.pipeline.face_restorer import PhotoReport

    seen = {}

    class Restorer:
        def __init__(self, *args, **kwargs):
            pass

        def enhance(self, photo, seed=0, strength=None):
            seen["strength"] = strength
            return photo, PhotoReport(photo_size=(photo.shape[1], photo.shape[0]))

    monkeypatch.setattr(session, "FaceRestorer", Restorer)
    session.restore_photo(session.UiContext(model=None), np.zeros((64, 64, 3), np.uint8), strength=value,
                          auto_strength=auto)
    return seen["strength"]


def test_every_front_end_reads_strength_alike(capsys, monkeypatch):
    from instantrestore.pipeline.face_restorer import FaceRestorer

    for text in ("auto", "AUTO"):
        assert _cli_strength(capsys, text)[0] == "auto"
        assert FaceRestorer(None, strength=text).strength == "auto"
        assert _ui_strength(monkeypatch, text) == "auto"
    assert _ui_strength(monkeypatch, 0.3, auto=True) == "auto"  # the checkbox wins over the slider
    assert _cli_strength(capsys, "0.5")[0] == FaceRestorer(None, strength="0.5").strength == 0.5
    assert _ui_strength(monkeypatch, 0.5) == 0.5


def test_every_front_end_refuses_out_of_range_with_the_same_message(capsys, monkeypatch):
    from instantrestore.pipeline.face_restorer import FaceRestorer

    message = f"strength must be {st.STRENGTH_HELP}, got 1.5"
    value, err = _cli_strength(capsys, "1.5")
    assert value is None and f"argument --strength: {message}\n" in err
    with pytest.raises(ValueError) as restorer:
        FaceRestorer(None, strength=1.5)
    with pytest.raises(ValueError) as enhance:
        FaceRestorer(None).enhance(np.zeros((64, 64, 3), np.uint8), strength="1.5")
    with pytest.raises(ValueError) as ui:
        _ui_strength(monkeypatch, 1.5)
    assert str(restorer.value) == str(enhance.value) == str(ui.value) == message
