"""generator.temporal: the temporal remedies are exact no-ops at weight 0 and on a still clip, smooth a
changing one, leave the reference branch alone and put the model's processors back."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from instantrestore.generator import temporal
from instantrestore.generator.model import InstantRestore


@pytest.fixture(scope="module")
def model() -> InstantRestore:
    from instantrestore.generator.config import TINY_UNET, TINY_VAE

    micro = dict(image_size=64, vae={**TINY_VAE, "block_out_channels": [16, 32, 32]},
                 unet={**TINY_UNET, "block_out_channels": [16, 32, 32], "attention_head_dim": [1, 2, 2],
                       "cross_attention_dim": 16})
    return InstantRestore.from_config("tiny", seed=0, **micro).eval()


@pytest.fixture(scope="module")
def shipped() -> InstantRestore:
    """The shipped tiny model (trained: its attention outputs matter, unlike a random model's)."""
    from instantrestore.assets import load_shipped_model

    with pytest.warns(Warning):  # the synthetic-world model
        return load_shipped_model().eval()


def _frames(count: int, change: float, size: int = 64) -> torch.Tensor:
    """[count, 3, size, size] in [-1, 1]: one random image plus ``change`` x fresh noise per frame."""
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 3, size, size, generator=g) * 1.6 - 0.8
    return (base + change * torch.randn(count, 3, size, size, generator=g)).clamp(-1, 1)


def _restore(model, frames: torch.Tensor, remedy=None, weight: float = 0.0, refs=None) -> list[torch.Tensor]:
    memory = temporal.TrackMemory()
    outs = []
    with torch.inference_mode(), (remedy(model, memory, weight) if remedy else contextlib.nullcontext()):
        for t in range(frames.shape[0]):
            outs.append(model(frames[t:t + 1], references=refs).image)
    return outs


def _change(outs: list[torch.Tensor]) -> float:
    return float(np.mean([(a - b).abs().mean().item() for a, b in zip(outs, outs[1:])]))


@pytest.mark.parametrize("remedy", [temporal.latent_ema, temporal.attention_ema])
def test_weight_zero_and_a_still_clip_give_the_per_frame_output(model, remedy) -> None:
    moving, still = _frames(3, 0.3), _frames(1, 0.0).expand(3, -1, -1, -1)
    plain = _restore(model, moving)
    assert all(torch.equal(a, b) for a, b in zip(_restore(model, moving, remedy, 0.0), plain))
    per_frame = _restore(model, still)
    for a, b in zip(_restore(model, still, remedy, 0.7), per_frame):  # nothing changes: nothing to smooth
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


# the latent blend reaches the pixels directly; the attention blend only part of them (the skips and
# residuals carry each frame's own detail), so it lowers the change less
@pytest.mark.parametrize("remedy, factor", [(temporal.latent_ema, 0.8), (temporal.attention_ema, 1.0)])
def test_smoothing_lowers_the_frame_to_frame_change(shipped, remedy, factor) -> None:
    frames = _frames(4, 0.3, 128)
    refs = shipped.encode_references(_frames(2, 0.2, 128))
    plain = _restore(shipped, frames, refs=refs)
    smoothed = _restore(shipped, frames, remedy, 0.7, refs=refs)
    assert torch.equal(smoothed[0], plain[0])  # the first frame has nothing to borrow
    assert _change(smoothed) < factor * _change(plain)


def test_attention_ema_blends_a_layer_with_its_previous_frame(model) -> None:
    frames, weight = _frames(2, 0.3), 0.6
    first = model.injected_layers[0]  # its input is not changed by any blend before it

    def layer_outputs(clip: torch.Tensor, w: float) -> torch.Tensor:
        memory = temporal.TrackMemory()
        with torch.inference_mode(), temporal.attention_ema(model, memory, w):
            for t in range(clip.shape[0]):
                model(clip[t:t + 1])
        return memory.attention[first]

    own1, own2 = layer_outputs(frames[:1], 0.0), layer_outputs(frames[1:], 0.0)
    torch.testing.assert_close(layer_outputs(frames, weight), (1 - weight) * own2 + weight * own1)


def test_attention_ema_leaves_the_reference_branch_and_puts_the_processors_back(model) -> None:
    before = dict(model.unet.attn_processors)
    refs = _frames(2, 0.2)
    plain = model.encode_references(refs)
    with torch.inference_mode(), temporal.attention_ema(model, temporal.TrackMemory(), 0.5):
        model(_frames(1, 0.0))
        inside = model.encode_references(refs)  # recorded, never blended
    assert all(torch.equal(plain.keys[n], inside.keys[n]) for n in plain.keys)
    assert dict(model.unet.attn_processors) == before
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        temporal.check_weight(1.0)


def test_append_references_adds_the_frame_after_the_album_ones(model) -> None:
    album, frame = model.encode_references(_frames(2, 0.2)), model.encode_references(_frames(1, 0.0))
    both = temporal.append_references(album, frame)
    assert len(both) == 3 and temporal.append_references(None, frame) is frame
    name = both.layers[0]
    assert torch.equal(both.keys[name][:2], album.keys[name]) and torch.equal(both.keys[name][2:], frame.keys[name])


def test_motion_theta_is_the_identity_without_motion_and_moves_with_a_shift() -> None:
    m = np.array([[1.0, 0, 10], [0, 1.0, 5]])
    assert torch.allclose(temporal.motion_theta(m, m, 64), torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))
    shifted = m + np.array([[0, 0, 8], [0, 0, 0]])  # the head moved 8 px right: frame t's x came from x - 8
    theta = temporal.motion_theta(m, shifted, 64)
    assert theta[0, 2].item() == pytest.approx(-16 / 64)
