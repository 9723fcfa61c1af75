"""Attention maps of a point (paper fig. 4): against the captured probabilities, the point's token,
bad input, the drawing, and the `attention` command."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from instantrestore import InstantRestore
from instantrestore.generator.attention_map import TILE, CAPTION, attention_map, render_attention_map
from instantrestore.cli import main
from instantrestore.generator.config import TINY_UNET, TINY_VAE
from instantrestore.utils.images import face_crops_to_tensor

SIZE = 64


@pytest.fixture(scope="module")
def model() -> InstantRestore:
    micro = dict(image_size=SIZE, vae={**TINY_VAE, "block_out_channels": [16, 32, 32]},
                 unet={**TINY_UNET, "block_out_channels": [16, 32, 32], "attention_head_dim": [1, 2, 2],
                       "cross_attention_dim": 16})
    return InstantRestore.from_config("tiny", seed=0, **micro).eval()


def pictures(n: int, seed: int, size: int = SIZE) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def naive_row(probs: torch.Tensor, xy: tuple[float, float], image_hw, query_hw) -> torch.Tensor:
    """The point's token by the half-open pixel convention, written out; mean over heads -> [R, Lk]."""
    (h, w), (H, W) = query_hw, image_hw
    col, row = int(np.floor((xy[0] + 0.5) * w / W)), int(np.floor((xy[1] + 0.5) * h / H))
    return probs[0, :, row * w + col].double().mean(0)


@pytest.mark.parametrize("point", [(0, 0), (127, 127), (40.2, 90.7), (-0.5, 64)])
def test_mass_and_maps_match_the_captured_probabilities(model, point):
    face = pictures(1, 0, size=128)[0]  # 128 px: the point is in these pixels, the model runs at 64
    refs = pictures(3, 1)
    result = attention_map(model, face, refs, point)
    with torch.no_grad():
        captured = model(face_crops_to_tensor(face, SIZE), references=face_crops_to_tensor(refs, SIZE),
                         capture=model.injected_layers).attention
    rows = {name: naive_row(att.probs, point, (128, 128), att.query_hw) for name, att in captured.items()}
    naive_mass = torch.stack([r.sum(-1) for r in rows.values()]).mean(0)
    assert result.mass == pytest.approx(naive_mass.tolist(), abs=1e-5)
    assert sum(result.mass) == pytest.approx(1.0, abs=1e-5)  # refs_only: all mass is on references
    assert result.layers == model.injected_layers and result.image_hw == (128, 128)
    torch.testing.assert_close(result.per_reference.sum(dim=(1, 2)).double(), naive_mass, rtol=0, atol=1e-5)
    # One layer alone: the map is that layer's row on its own key grid.
    name = model.injected_layers[-1]
    single = attention_map(model, face, refs, point, layers=[name])
    att = captured[name]
    torch.testing.assert_close(single.per_reference.double(), rows[name].reshape(3, *att.key_hw), rtol=0, atol=1e-5)


def test_coarse_layers_spread_mass_over_the_finest_grid(model):
    face, refs = pictures(1, 2)[0], pictures(2, 3)
    coarse, fine = model.injected_layers[0], model.injected_layers[-1]
    with torch.no_grad():
        captured = model(face_crops_to_tensor(face, SIZE), references=face_crops_to_tensor(refs, SIZE),
                         capture=[coarse, fine]).attention
    (ch, cw), (fh, fw) = captured[coarse].key_hw, captured[fine].key_hw
    assert fh > ch  # the tiny backbone has two grid sizes among its decoder layers
    result = attention_map(model, face, refs, (10, 50), layers=[coarse, fine])
    a = naive_row(captured[coarse].probs, (10, 50), (SIZE, SIZE), captured[coarse].query_hw).reshape(2, ch, cw)
    b = naive_row(captured[fine].probs, (10, 50), (SIZE, SIZE), captured[fine].query_hw).reshape(2, fh, fw)
    f = fh // ch
    spread = a.repeat_interleave(f, 1).repeat_interleave(f, 2) / f**2
    torch.testing.assert_close(result.per_reference.double(), (spread + b) / 2, rtol=0, atol=1e-6)


@pytest.mark.parametrize("point", [(-1, 10), (10, 64), (64, 0), (float("nan"), 3)])
def test_point_outside_the_face_is_refused(model, point):
    with pytest.raises(ValueError, match="outside the 64x64 face"):
        attention_map(model, pictures(1, 0)[0], pictures(1, 1), point)


@pytest.mark.parametrize("refs", [None, [], torch.zeros(0, 3, SIZE, SIZE)])
def test_no_references_is_refused(model, refs):
    with pytest.raises(ValueError, match="attention maps need references"):
        attention_map(model, pictures(1, 0)[0], refs, (5, 5))


def test_render_draws_the_face_and_a_heat_map_per_reference(model):
    face, refs = pictures(1, 4)[0], pictures(2, 5)
    result = attention_map(model, face, refs, (30, 20))
    image = render_attention_map(result, refs, face)
    assert image.size == (3 * TILE, TILE + CAPTION) and image.mode == "RGB"
    plain = np.asarray(Image.fromarray(refs[0]).resize((TILE, TILE), Image.LANCZOS)).astype(int)
    assert np.abs(np.asarray(image)[:TILE, TILE:2 * TILE].astype(int) - plain).mean() > 10  # overlaid
    assert render_attention_map(result, refs).size == (2 * TILE, TILE + CAPTION)
    with pytest.raises(ValueError, match="2 images for a map over"):
        render_attention_map(attention_map(model, face, pictures(3, 6), (1, 1)), refs)
    with pytest.raises(ValueError, match="no pixels"):
        render_attention_map(result, model.encode_references(face_crops_to_tensor(refs, SIZE)))


def test_attention_command(tmp_path, capsys):
    for i, picture in enumerate(pictures(3, 7, size=128)):
        Image.fromarray(picture).save(tmp_path / f"{'face' if i == 0 else f'ref{i}'}.png")
    out = tmp_path / "map.png"
    refs = [str(tmp_path / "ref1.png"), str(tmp_path / "ref2.png")]
    args = ["attention", str(tmp_path / "face.png"), "--refs", *refs, "--point", "60,70", "--out", str(out),
            "--backbone", "tiny", "--layers", "0", "3"]
    assert main(args) == 0
    assert Image.open(out).size == (3 * TILE, TILE + CAPTION)
    assert "attention of (60, 70) over 2 layer(s): ref1.png" in capsys.readouterr().err
    assert main(args[:5] + ["--point", "60;70"] + args[7:]) == 2
    assert "expected X,Y" in capsys.readouterr().err
    assert main(args[:5] + ["--point", "60,700"] + args[7:]) == 2
    assert "outside the 128x128 face" in capsys.readouterr().err
    assert main(args[:-3] + ["--layers", "9"]) == 2
    assert "4 injected layers" in capsys.readouterr().err
