"""RestorationLoss on a real tiny InstantRestore forward with a synthetic batch."""
import math

import pytest
import torch
import torch.nn as nn

from instantrestore.data.datasets import SyntheticIdentityDataset
from instantrestore.losses import Discriminator, FaceAlignmentConfig, LossWeights, RestorationLoss
from instantrestore.generator.model import InstantRestore


class TinyID(nn.Module):
    input_size = 32
    crop = (0.1, 0.1, 0.9, 0.9)

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1),
                                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 16))

    def forward(self, x):
        return self.net(x)


@pytest.mark.slow
def test_restoration_loss_on_a_tiny_model_reaches_the_trainable_parameters():
    model = InstantRestore.from_config("tiny", seed=0)
    data = SyntheticIdentityDataset(seed=0, num_identities=2, images_per_identity=3, size=128, refs_max=2)
    batch = torch.utils.data.default_collate([data[0], data[4]])
    assert not bool(batch["ref_mask"].all())  # one padded reference slot is exercised
    loss = RestorationLoss(LossWeights(lpips=0.0, hard_example_lambda=0.6, face_alignment=1.0),
                           identity_network=TinyID(), discriminator=Discriminator.tiny(0),
                           face_alignment=FaceAlignmentConfig(distance="l1"))
    layers = loss.capture_layers(model.injected_layers)
    assert layers == model.injected_layers  # default: every injected layer
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(2, model.latent_channels, 32, 32, generator=gen)
    output = model(batch["lq"], batch["refs"], batch["ref_mask"], timesteps=torch.tensor([249, 499]),
                   noise=noise, capture=layers)
    total, log = loss.generator_loss(output, batch)
    expected = {"loss", "ms_ssim", "identity", "identity_hq", "identity_ref", "adversarial", "landmark_attention",
                "face_alignment", "las_queries", "las_samples"}
    assert set(log) == expected and all(math.isfinite(v) for v in log.values())
    assert log["landmark_attention"] > 0 and log["loss"] == pytest.approx(total.item())
    assert log["las_queries"] > 0 and log["las_samples"] == 2

    # LAS alone reaches the query projections of the supervised layers (LoRA B starts at 0, so its grad is the signal).
    las = loss._landmark_term(output, batch, (128, 128))
    to_q = [p for n, p in model.named_parameters() if ".attn1.to_q.lora_B" in n and "up_blocks" in n]
    grads = torch.autograd.grad(las, to_q, retain_graph=True)
    assert grads and all(g.abs().sum() > 0 for g in grads)

    total.backward()
    params = model.trainable_parameters()
    with_grad = [p for p in params if p.grad is not None]
    assert all(torch.isfinite(p.grad).all() for p in with_grad)
    assert sum(float(p.grad.abs().sum()) for p in with_grad) > 0
    # refs_only drops the image's own keys, so only the injected layers' to_k adapters are unused.
    unused = {n for n, p in model.named_parameters() if p.requires_grad and p.grad is None}
    assert all(".attn1.to_k." in n for n in unused) and len(with_grad) >= len(params) - 2 * len(layers)
    assert all(p.grad is None for p in loss.discriminator.parameters())
