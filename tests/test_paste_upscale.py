"""Face-shaped paste (faces/mask.py, faces/paste.py), colour fix (faces/color.py), background
upsamplers (pipeline/upsample.py) and PhotoPaste (pipeline/face_paste.py): pure functions on
synthetic images; the spandrel loader on a tiny random model saved to safetensors (skipped without
spandrel); the restore flags' errors."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from instantrestore.faces.color import color_fix, low_frequencies
from instantrestore.faces.mask import face_polygon, inside_polygon, polygon_mask
from instantrestore.faces.paste import (crop_outline, paste_enlargement, paste_face_masked, too_small,
                                        upscale_points, upscaled_matrix)
from instantrestore.pipeline.face_paste import PhotoPaste, check_upscale, side_by_side
from instantrestore.pipeline.upsample import ClassicalUpsampler, ModelUpsampler, make_upsampler, read_weights
from test_restore_photos import stub_landmarks

BOX = (60, 40, 124, 104)


def _photo(seed=0, shape=(160, 200)):
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def _matrix(box=BOX, size=64):
    scale = size / (box[2] - box[0])
    return np.array([[scale, 0.0, -box[0] * scale], [0.0, scale, -box[1] * scale]])


def test_face_polygon_closes_the_jaw_over_the_forehead_and_refuses_other_shapes():
    lm = stub_landmarks(BOX)
    polygon = face_polygon(lm)
    assert polygon[:, 1].min() < lm[17:27, 1].min() - 5  # the forehead reaches above the eyebrows
    assert polygon[:, 1].max() == pytest.approx(lm[8, 1])  # down to the chin
    inside = inside_polygon(polygon, (160, 200))
    assert inside[int(lm[30, 1]), int(lm[30, 0])] and not inside[5, 5]
    dense = np.random.default_rng(0).uniform(0, 100, (478, 2))
    assert face_polygon(dense).shape == (36, 2)  # mediapipe's face oval
    with pytest.raises(ValueError, match="68, 2"):
        face_polygon(np.zeros((5, 2)))


def test_polygon_mask_is_zero_outside_one_inside_and_the_same_for_a_region():
    polygon = face_polygon(stub_landmarks(BOX))
    mask = polygon_mask(polygon, (160, 200))
    inside = inside_polygon(polygon, (160, 200))
    assert mask.dtype == np.float32 and (mask[~inside] == 0).all() and mask.max() > 0.999
    assert 0 < ((mask > 0) & (mask < 1)).sum() < inside.sum()  # a feathered band, not all of the face
    region = polygon_mask(polygon, (90, 80), offset=(50, 30))  # the mask of a window of the photo
    np.testing.assert_allclose(region, mask[30:120, 50:130], atol=1e-6)


@pytest.mark.parametrize("upscale", [1, 2, 3])
def test_masked_paste_changes_only_the_face_outline(upscale):
    photo, crop = _photo(0), _photo(1, (64, 64))
    background = ClassicalUpsampler()(photo, upscale)
    polygon = upscale_points(face_polygon(stub_landmarks(BOX)), upscale)
    matrix = upscaled_matrix(_matrix(), upscale)
    out = paste_face_masked(background, crop, matrix, polygon)
    inside = inside_polygon(polygon, background.shape)
    assert out.shape == background.shape and np.array_equal(out[~inside], background[~inside])
    assert (out[inside] != background[inside]).mean() > 0.5
    # a linear ramp pasted (cubic resampling keeps it): each face pixel has the ramp's value where it falls
    ramp = np.stack([*np.meshgrid(np.arange(64) * 3.0, np.arange(64) * 3.0), np.full((64, 64), 128.0)], -1)
    ramped = paste_face_masked(background, ramp.astype(np.uint8), matrix, polygon)
    y, x = np.round(upscale_points([[92, 72]], upscale)[0][::-1]).astype(int)  # the middle of the face
    cx, cy = matrix @ [x, y, 1]
    assert np.abs(ramped[y, x].astype(float) - [3 * cx, 3 * cy, 128]).max() <= 1
    for strip in (1, 7, 100):  # in strips of rows: the same pixels
        assert np.array_equal(paste_face_masked(background, crop, matrix, polygon, strip=strip), out)
    square = paste_face_masked(background, crop, matrix, None)  # the square: only inside the crop's corners
    assert np.array_equal(square[~inside_polygon(crop_outline(matrix, 64), background.shape)],
                          background[~inside_polygon(crop_outline(matrix, 64), background.shape)])
    assert (square != out).any()


def test_masked_paste_leaves_its_input_alone_and_clips_at_the_border():
    photo, crop = _photo(0), _photo(1, (64, 64))
    before = photo.copy()
    box = (170, 130, 234, 194)  # a face half outside the photo
    out = paste_face_masked(photo, crop, _matrix(box), face_polygon(stub_landmarks(box)))
    assert np.array_equal(photo, before) and out.shape == photo.shape and (out != photo).any()
    with pytest.raises(ValueError, match="square"):
        paste_face_masked(photo, crop[:, :32], _matrix(), None)


def test_upscaled_matrix_follows_opencv_pixel_centres():
    matrix = _matrix()
    for upscale in (1, 2, 3.5):
        points = np.array([[60.0, 40.0], [91.5, 70.25]])
        np.testing.assert_allclose(upscaled_matrix(matrix, upscale)[:, :2] @ upscale_points(points, upscale).T
                                   + upscaled_matrix(matrix, upscale)[:, 2:], matrix[:, :2] @ points.T + matrix[:, 2:])
    image = np.zeros((4, 4), np.float32)
    image[1, 2] = 1  # cv2.resize puts input pixel (2, 1) at the output pixel upscale_points gives
    big = cv2.resize(image, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
    assert big[tuple(upscale_points([[2, 1]], 3)[0][::-1].astype(int))] == 1


def test_enlargement_and_the_too_small_rule():
    m = _matrix(size=512)  # a 64 px face aligned to 512
    assert paste_enlargement(m, 512, 64) == pytest.approx(1.0)
    assert paste_enlargement(m, 512, 64, upscale=2) == pytest.approx(2.0)
    assert not too_small(m, 512, 32) and too_small(m, 512, 31)  # over twice the restored side in the photo
    assert too_small(_matrix((0, 0, 300, 300), 512), 512, 128)  # a 300 px face, a 128 px model


def test_colour_fix_takes_the_inputs_colour_and_keeps_the_restored_detail():
    rng = np.random.default_rng(0)
    detail = rng.normal(0, 25, (128, 128, 3))
    source = np.clip(np.full((128, 128, 3), (150, 110, 90)) + rng.normal(0, 3, (128, 128, 3)), 0, 255).astype(np.uint8)
    restored = np.clip(np.full((128, 128, 3), (110, 120, 140)) + detail, 0, 255).astype(np.uint8)
    for method in ("wavelet", "adain"):
        fixed = color_fix(restored, source, method)
        assert np.abs(fixed.reshape(-1, 3).mean(0) - source.reshape(-1, 3).mean(0)).max() < 3, method
        high = fixed.astype(np.float32) - low_frequencies(fixed)
        assert np.corrcoef(high.ravel(), (restored - low_frequencies(restored)).ravel())[0, 1] > 0.9, method
    assert np.array_equal(color_fix(restored, source, "none"), restored)
    small = color_fix(restored, source[::4, ::4], "wavelet")  # the input is resized to the restored side
    assert small.shape == restored.shape
    with pytest.raises(ValueError, match="none, wavelet, adain"):
        color_fix(restored, source, "lab")


def test_classical_upsampler_sizes_and_upscale_one_is_an_exact_copy():
    photo = _photo()
    assert ClassicalUpsampler()(photo, 2).shape == (320, 400, 3)
    assert ClassicalUpsampler("bicubic")(photo, 1.5).shape == (240, 300, 3)
    same = ClassicalUpsampler()(photo, 1)
    assert np.array_equal(same, photo) and same is not photo
    assert make_upsampler("lanczos").name == "lanczos"


class _PixelShuffleSR(torch.nn.Module):
    """A tiny random x2 network with a 5x5 receptive field (stands in for an SR model)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                        torch.nn.Conv2d(8, 12, 3, padding=1), torch.nn.PixelShuffle(2))

    def forward(self, x):
        return torch.sigmoid(self.conv(x))


@pytest.mark.parametrize("upscale", [2, 4, 1.5])
def test_tiled_model_upsampling_equals_one_pass_and_resizes_to_the_asked_scale(upscale):
    photo = _photo(3, (70, 90))
    net = _PixelShuffleSR().eval()
    whole = ModelUpsampler(net, 2, "test", tile=512)(photo, upscale)
    tiled = ModelUpsampler(net, 2, "test", tile=32, overlap=4)(photo, upscale)
    assert whole.shape == (round(70 * upscale), round(90 * upscale), 3)
    if upscale == 2:  # the tiles' overlap covers the receptive field: identical
        assert np.array_equal(whole, tiled)
    else:  # resized per tile: equal up to resampling at the tiles' edges
        assert np.abs(whole.astype(int) - tiled).mean() < 2
    with pytest.raises(ValueError, match="tile"):
        ModelUpsampler(net, 2, "test", tile=8)(photo, 2)


def test_weights_are_read_safely_and_bad_files_refused(tmp_path):
    net = _PixelShuffleSR()
    torch.save({"params_ema": net.state_dict()}, tmp_path / "sr.pth")
    assert set(read_weights(tmp_path / "sr.pth")) == set(net.state_dict())  # Real-ESRGAN's wrapper unwrapped
    torch.save({"net": net}, tmp_path / "pickled.pth")  # a whole pickled module: code, refused
    with pytest.raises(ValueError, match="plain weights"):
        read_weights(tmp_path / "pickled.pth")
    with pytest.raises(FileNotFoundError, match="lanczos"):
        make_upsampler(str(tmp_path / "missing.safetensors"))
    (tmp_path / "x.onnx").write_bytes(b"0")
    with pytest.raises(ValueError, match="safetensors"):
        read_weights(tmp_path / "x.onnx")


def test_spandrel_loads_a_tiny_random_esrgan_from_safetensors(tmp_path):
    spandrel = pytest.importorskip("spandrel", reason="pip install 'instantrestore[sr]'")
    from safetensors.torch import save_file
    from spandrel.architectures.ESRGAN import ESRGAN

    from instantrestore.pipeline.upsample import load_model_upsampler

    torch.manual_seed(0)
    net = ESRGAN(num_filters=8, num_blocks=1, scale=2)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp_path / "tiny_esrgan.safetensors")
    upsampler = load_model_upsampler(tmp_path / "tiny_esrgan.safetensors", tile=32)
    assert upsampler.scale == 2 and upsampler.name.startswith("ESRGANx2:")
    photo = _photo(4, (50, 70))
    out = upsampler(photo, 2)
    with torch.inference_mode():
        direct = net.eval()(torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255)
    direct = (direct[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    assert out.shape == (100, 140, 3) and np.abs(out.astype(int) - direct).max() <= 1
    assert isinstance(spandrel.__version__, str)
    save_file({"weight": torch.zeros(3, 3)}, tmp_path / "not_sr.safetensors")
    with pytest.raises(ValueError, match="spandrel knows"):
        load_model_upsampler(tmp_path / "not_sr.safetensors")


def test_photo_paste_settings_and_checks():
    assert PhotoPaste().settings() == {"upscale": 1, "bg_upsampler": "lanczos", "color_fix": "wavelet",
                                       "face_mask": "face", "allow_small": True}
    assert PhotoPaste(2.0, allow_small=False).settings()["upscale"] == 2 and check_upscale(1.5) == 1.5
    for bad in (0.5, 9, "2", True):
        with pytest.raises(ValueError, match="upscale"):
            PhotoPaste(bad)
    with pytest.raises(ValueError, match="mask"):
        PhotoPaste(mask="oval")
    with pytest.raises(ValueError, match="colour fix"):
        PhotoPaste(color="lab")
    photo, result = _photo(), _photo(1, (320, 400))
    pair = side_by_side(photo, result)
    assert pair.shape == (320, 800, 3) and np.array_equal(pair[::2, :400:2], photo)
