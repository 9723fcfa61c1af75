"""Reconstruction, identity, adversarial and face-alignment losses, and RestorationLoss wiring."""
import sys
import types

import pytest
import torch
import torch.nn as nn

from instantrestore.losses import (
    Discriminator, FaceAlignmentConfig, IdentityLoss, LandmarkAttentionConfig, LossUnavailable, LossWeights,
    LPIPSLoss, MaskedFaceAlignmentLoss, MSSSIMLoss, RestorationLoss,
    discriminator_adversarial_loss, generator_adversarial_loss, l1_loss, l2_loss, landmark_heatmap_mask,
    ms_ssim_settings, resolve_layers,
)
from instantrestore.utils.images import crop_and_resize

NO_LPIPS = dict(lpips=0.0)


def _images(seed: int, batch: int = 2, size: int = 64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    # smooth random images: MS-SSIM needs structure, not white noise
    low = torch.rand(batch, 3, size // 8, size // 8, generator=gen)
    return (nn.functional.interpolate(low, size=(size, size), mode="bilinear") * 2 - 1).clamp(-1, 1)


class TinyID(nn.Module):
    """A stand-in face recogniser honouring the contract (input_size, crop)."""

    def __init__(self, input_size: int = 32, crop=(0.1, 0.1, 0.9, 0.9), seed: int = 0):
        super().__init__()
        self.input_size, self.crop = input_size, crop
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1),
                                     nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 16))
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape))
        return self.net(x)


# ------------------------------------------------------------------ reconstruction
@pytest.mark.parametrize("size", [64, 128, 192])
def test_reconstruction_terms_vanish_on_identical_images_and_grow_with_noise(size):
    x = _images(0, size=size)
    ms = MSSSIMLoss()
    assert ms(x, x.clone()).item() == pytest.approx(0.0, abs=1e-5)
    assert l1_loss(x, x.clone()).item() == 0.0 and l2_loss(x, x.clone()).item() == 0.0
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=gen)
    small, large = ms(x + 0.05 * noise, x), ms(x + 0.3 * noise, x)
    assert 0 < small.item() < large.item() <= 1


def test_ms_ssim_window_adapts_to_small_images():
    assert ms_ssim_settings(256)[0] == 11 and ms_ssim_settings(161)[0] == 11
    assert ms_ssim_settings(160)[0] == 9 and ms_ssim_settings(128)[0] == 7 and ms_ssim_settings(64)[0] == 3
    assert len(ms_ssim_settings(128)[1]) == 5 and sum(ms_ssim_settings(128)[1]) == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ValueError, match="32 px"):
        ms_ssim_settings(32)


def test_ms_ssim_gradient_reaches_the_image():
    target = _images(2, size=128)
    pred = (target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(3))).requires_grad_(True)
    MSSSIMLoss()(pred, target).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_lpips_missing_package_says_how_to_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "lpips", None)  # makes `import lpips` raise ImportError
    with pytest.raises(LossUnavailable, match=r"pip install lpips.*LossWeights\(lpips=0\.0\)"):
        LPIPSLoss("vgg")
    with pytest.raises(ValueError, match=r"LPIPS term cannot be built.*pip install lpips.*set LossWeights\(lpips=0\.0\)"):
        RestorationLoss(LossWeights(identity=0.0, adversarial=0.0, landmark_attention=0.0))
    # with LPIPS off the same construction succeeds
    RestorationLoss(LossWeights(lpips=0.0, identity=0.0, adversarial=0.0, landmark_attention=0.0))


def _fake_lpips_module() -> types.ModuleType:
    module = types.ModuleType("lpips")

    class FakeLPIPS(nn.Module):
        def __init__(self, net, verbose=False):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(()))

        def forward(self, a, b, normalize=False):
            return self.scale * (a - b).abs().mean(dim=(1, 2, 3), keepdim=True)

    module.LPIPS = FakeLPIPS
    return module


def test_lpips_missing_backbone_weights_names_the_file(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "lpips", _fake_lpips_module())
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(LossUnavailable, match=r"vgg16-397923af\.pth.*TORCH_HOME.*lpips=0\.0"):
        LPIPSLoss("vgg")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "vgg16-397923af.pth").write_bytes(b"")
    loss = LPIPSLoss("vgg")  # wraps the package's module, frozen
    assert not any(p.requires_grad for p in loss.parameters())
    x = _images(4).requires_grad_(True)
    value = loss(x, _images(5))
    value.backward()
    assert value.item() > 0 and x.grad.abs().sum() > 0
    assert loss(x, x).item() == 0.0


# ------------------------------------------------------------------ identity
def test_identity_vanishes_on_identical_images_and_hard_example_with_lambda_zero_is_plain():
    x, other = _images(6), _images(7)
    refs = torch.stack([_images(8), _images(9), _images(10)], dim=1)  # [B, 3, 3, H, W]
    mask = torch.tensor([[True, True, False], [True, False, False]])
    plain = IdentityLoss(TinyID())
    assert plain(x, x.clone())[0].item() == pytest.approx(0.0, abs=1e-6)
    value_plain = plain(other, x)[0]
    assert value_plain.item() > 0
    hid0 = IdentityLoss(TinyID(), hard_example_lambda=0.0)
    assert hid0(other, x, refs, mask)[0].item() == pytest.approx(value_plain.item(), rel=1e-6)
    # lambda = 1 is the reference term alone; refs equal to the output give ~0
    same_refs = other[:, None].repeat(1, 3, 1, 1, 1)
    assert IdentityLoss(TinyID(), hard_example_lambda=1.0)(other, x, same_refs, mask)[0].item() == pytest.approx(0, abs=1e-6)


def test_hard_example_reference_choice_and_padding():
    x, out = _images(11), _images(12)
    refs = torch.stack([_images(13), _images(14), _images(15)], dim=1)
    mask = torch.tensor([[False, True, True], [True, True, False]])
    loss = IdentityLoss(TinyID(), hard_example_lambda=1.0, reference="mean")
    base = loss(out, x, refs, mask)[0]
    changed = refs.clone()
    changed[0, 0], changed[1, 2] = _images(16)[0], _images(17)[1]  # padded slots only
    assert loss(out, x, changed, mask)[0].item() == pytest.approx(base.item(), rel=1e-6)
    # "first" uses slot 1 for sample 0 and slot 0 for sample 1
    first = IdentityLoss(TinyID(), hard_example_lambda=1.0, reference="first")
    e = first.embed
    d = lambda a, b: 1 - nn.functional.cosine_similarity(e(a), e(b))  # noqa: E731
    expected = (d(refs[[0, 1], [1, 0]], out)).mean()
    assert first(out, x, refs, mask)[0].item() == pytest.approx(expected.item(), rel=1e-5)


def test_identity_network_is_frozen_but_passes_gradients_and_sees_its_crop():
    network = TinyID(input_size=24)
    loss = IdentityLoss(network)
    loss.train()
    assert not network.training and not any(p.requires_grad for p in network.parameters())
    out = _images(18).requires_grad_(True)
    loss(out, _images(19))[0].backward()
    assert out.grad.abs().sum() > 0 and all(p.grad is None for p in network.parameters())
    assert set(network.seen) == {(2, 3, 24, 24)}
    assert crop_and_resize(torch.zeros(1, 3, 100, 100), (0.25, 0.0, 0.75, 0.5), 10, "antialias").shape == (1, 3, 10, 10)


# ------------------------------------------------------------------ adversarial
def test_gan_losses_move_in_the_right_direction():
    good_real, bad_real = torch.full((4,), 3.0), torch.full((4,), -3.0)
    for kind in ("non_saturating", "hinge"):
        assert (discriminator_adversarial_loss(good_real, -good_real, kind)
                < discriminator_adversarial_loss(bad_real, -bad_real, kind))
        assert generator_adversarial_loss(good_real, kind) < generator_adversarial_loss(bad_real, kind)
    with pytest.raises(ValueError, match="GAN loss"):
        generator_adversarial_loss(good_real, "wasserstein")


def test_tiny_discriminator_trains_to_separate_real_from_fake():
    disc = Discriminator.tiny(seed=0)
    assert Discriminator.tiny(seed=0).heads[0][1].weight.equal(disc.heads[0][1].weight)  # seeded
    real, fake = _images(20, batch=4, size=96), -_images(21, batch=4, size=96)
    logits = disc(real)
    assert logits.shape == (4, len(disc.layers))
    loss = RestorationLoss(LossWeights(lpips=0.0, ms_ssim=0.0, identity=0.0, landmark_attention=0.0),
                           discriminator=disc)
    optimizer = torch.optim.Adam(disc.parameters(), lr=1e-3)
    first = None
    for _ in range(8):
        d_loss, log = loss.discriminator_loss(fake, real)
        optimizer.zero_grad()
        d_loss.backward()
        optimizer.step()
        first = first if first is not None else log
    assert log["d_loss"] < first["d_loss"] and log["d_real"] > log["d_fake"]


def test_generator_step_leaves_discriminator_gradients_alone():
    disc = Discriminator.tiny(seed=1)
    loss = RestorationLoss(LossWeights(lpips=0.0, ms_ssim=0.0, identity=0.0, landmark_attention=0.0),
                           discriminator=disc)
    fake = _images(22).requires_grad_(True)
    output = types.SimpleNamespace(image=fake, attention={})
    total, log = loss.generator_loss(output, {"hq": _images(23)})
    total.backward()
    assert set(log) == {"loss", "adversarial"} and fake.grad.abs().sum() > 0
    assert all(p.grad is None and p.requires_grad for p in disc.parameters())


# ------------------------------------------------------------------ face alignment
def test_landmark_heatmap_mask_follows_eq_11():
    pts = torch.tensor([[[16.0, 20.0], [40.0, 44.0]], [[float("nan"), float("nan")], [float("nan"), 1.0]]])
    mask = landmark_heatmap_mask(pts, (64, 64), sigma=0.05, sharpness=10.0)
    assert mask.shape == (2, 1, 64, 64) and mask.min() >= 0 and mask.max() <= 1
    assert mask[0, 0, 20, 16].item() == pytest.approx(mask[0].max().item(), abs=1e-3)
    assert mask[0, 0, 0, 63].item() == pytest.approx(0.0, abs=1e-3)
    assert mask[1].abs().sum() == 0  # no finite landmark: nothing


def test_masked_face_alignment_uses_the_distance_on_masked_images():
    x, y = _images(24), _images(25)
    pts = torch.tensor([[[20.0, 20.0]], [[40.0, 30.0]]])
    seen = []

    def distance(a, b):
        seen.append((a.detach(), b.detach()))
        return (a - b).abs().mean()

    assert MaskedFaceAlignmentLoss(FaceAlignmentConfig(), distance)(x, x, pts).item() == 0.0
    value = MaskedFaceAlignmentLoss(FaceAlignmentConfig(), distance)(x, y, pts)
    a, _ = seen[-1]
    assert value.item() > 0 and a[0, :, 0, 63].abs().max() < 1e-3  # background -> B = 0 far from the point
    l1 = MaskedFaceAlignmentLoss(FaceAlignmentConfig(distance="l1"))(x, y, pts)
    assert 0 < l1.item() < (x - y).abs().mean().item()


# ------------------------------------------------------------------ RestorationLoss wiring
def test_missing_components_fail_at_construction_with_the_fix():
    with pytest.raises(ValueError, match=r"identity_network=.*LossWeights\(identity=0\.0\)"):
        RestorationLoss(LossWeights(**NO_LPIPS, adversarial=0.0))
    with pytest.raises(ValueError, match=r"discriminator=.*LossWeights\(adversarial=0\.0\)"):
        RestorationLoss(LossWeights(**NO_LPIPS), identity_network=TinyID())
    with pytest.raises(ValueError, match=">= 0"):
        RestorationLoss(LossWeights(**NO_LPIPS, identity=-1.0, adversarial=0.0))


def test_zero_weights_are_skipped_and_layers_resolve():
    loss = RestorationLoss(LossWeights(lpips=0.0, identity=0.0, adversarial=0.0, landmark_attention=0.0, l1=2.0))
    assert loss.identity is None and loss.discriminator is None and loss.lpips is None
    assert loss.capture_layers(["a", "b"]) == []
    x = _images(26, size=64)
    total, log = loss.generator_loss(types.SimpleNamespace(image=x, attention={}), {"hq": x})
    assert set(log) == {"loss", "ms_ssim", "l1"} and total.item() == pytest.approx(0.0, abs=1e-5)
    injected = ["l0", "l1", "l2"]
    assert resolve_layers(None, injected) == injected
    assert resolve_layers(("2", "l0", "-1"), injected) == ["l0", "l2"]
    with pytest.raises(ValueError, match="injected layer"):
        resolve_layers(("7",), injected)
    las = RestorationLoss(LossWeights(lpips=0.0, identity=0.0, adversarial=0.0),
                          landmark_attention=LandmarkAttentionConfig(layers=("1",)))
    assert las.capture_layers(injected) == ["l1"]
    with pytest.raises(ValueError, match="capture=loss.capture_layers"):
        las.generator_loss(types.SimpleNamespace(image=x, attention={}), {"hq": x})
