from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from instantrestore.utils.files import atomic_write_text, ensure_not_input, list_images
from instantrestore.utils.images import (ImageError, check_image_tensor, crop_and_resize, load_image, pil_to_tensor,
                                   tensor_to_pil, uint8_to_tensor)


def test_load_image_applies_exif_orientation(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif)
    loaded = load_image(path)
    assert loaded.size == (20, 40)


def test_load_image_rejects_non_image_and_missing(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    with pytest.raises(ImageError, match="not an image"):
        load_image(bad)
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")


def test_load_image_composites_alpha_and_grey(tmp_path):
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "a.png")
    Image.new("L", (8, 8), 7).save(tmp_path / "g.png")
    assert np.asarray(load_image(tmp_path / "a.png")).min() == 255
    assert load_image(tmp_path / "g.png").mode == "RGB"


def test_tensor_round_trip_is_exact_for_uint8():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    back = np.asarray(tensor_to_pil(pil_to_tensor(Image.fromarray(arr)))[0])
    assert np.array_equal(arr, back)


@pytest.mark.parametrize("shape", [(1, 4, 8, 8), (1, 1, 8, 8), (8, 8)])
def test_check_image_tensor_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="expected"):
        check_image_tensor(torch.zeros(shape))


def test_atomic_write_and_input_guard(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text(target, "hello")
    assert target.read_text() == "hello"
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == ["out.txt"]
    with pytest.raises(ValueError, match="refusing to overwrite"):
        ensure_not_input(target, [tmp_path / "sub" / "out.txt"])
    Image.new("RGB", (2, 2)).save(tmp_path / "b.png")
    Image.new("RGB", (2, 2)).save(tmp_path / "a.jpg")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.png"]


def test_list_images_finds_jfif(tmp_path):
    Image.new("RGB", (2, 2)).save(tmp_path / "a.jfif", format="JPEG")
    assert [p.name for p in list_images(tmp_path)] == ["a.jfif"]


def test_module_entry_points_print_help():
    import subprocess
    import sys

    for module in ("instantrestore", "instantrestore.cli"):
        done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
        assert done.returncode == 0 and "restore" in done.stdout, done.stderr


def test_atomic_write_gets_umask_mode_not_0600(tmp_path):
    import torch

    from instantrestore.utils.tensor_io import save_tensors

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "out.txt", "x")
        save_tensors({"w": torch.zeros(2)}, tmp_path / "w.safetensors")  # safetensors recreates its file
    finally:
        os.umask(old)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o644


def test_uint8_to_tensor_takes_arrays_batches_sequences_and_tensors():
    arr = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    out = uint8_to_tensor(arr)
    assert out.shape == (2, 3, 5, 7) and out.dtype == torch.float32 and out.is_contiguous()
    assert out.min() >= -1 and out.max() <= 1
    torch.testing.assert_close(out, torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1.0, rtol=0, atol=0)
    assert torch.equal(uint8_to_tensor(arr[0]), out[:1])
    assert torch.equal(uint8_to_tensor([arr[0], arr[1]]), out)
    assert torch.equal(uint8_to_tensor(torch.from_numpy(arr)), out)
    assert np.array_equal(np.asarray(tensor_to_pil(out)[1]), arr[1])
    with pytest.raises(ValueError, match="uint8"):
        uint8_to_tensor(arr.astype(np.float32))


def test_crop_and_resize_shrinks_by_the_named_mode():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    area = crop_and_resize(x, None, 4, "area")
    torch.testing.assert_close(area, torch.nn.functional.avg_pool2d(x, 2))
    anti = crop_and_resize(x, None, 4, "antialias")
    assert not torch.equal(anti, area)
    assert crop_and_resize(x, (0.25, 0.0, 0.75, 0.5), 4, "area").shape == (2, 3, 4, 4)
    assert crop_and_resize(x, None, 8, "area") is x
    with pytest.raises(ValueError, match="shrink"):
        crop_and_resize(x, None, 4, "bicubic")
    with pytest.raises(ValueError, match="crop fractions"):
        crop_and_resize(x, (0.5, 0.0, 0.25, 1.0), 4, "area")
