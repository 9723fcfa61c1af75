"""Shared fixtures. Real photos are read from ../shared/realfaces (override with
INSTANTRESTORE_REALFACES); tests that need them skip with a reason where absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

_DEFAULT_REALFACES = Path(__file__).resolve().parents[1].parent / "shared" / "realfaces"


@pytest.fixture(scope="session")
def realfaces_dir() -> Path:
    root = Path(os.environ.get("INSTANTRESTORE_REALFACES", _DEFAULT_REALFACES))
    if not root.is_dir():
        pytest.skip(f"real face photos not found at {root} (set INSTANTRESTORE_REALFACES)")
    return root


MICRO_SIZE = 64  # the tiny backbone at 64 px keeps tests fast; benchmarks run the model's own size


@pytest.fixture(scope="session")
def micro_weights(tmp_path_factory) -> Path:
    """Random micro generators (the tiny architecture at half width, 64 px) and random evaluation
    identity networks, saved as the CLIs read them: ``model``, ``model_no_las``, ``eval_net``
    (resnet-b) and ``eval_net_cnn`` (cnn-a)."""
    import torch

    from instantrestore.generator.config import TINY_UNET, TINY_VAE
    from instantrestore.idnet.networks import IdentityNetwork, build_identity_network, save_identity_network
    from instantrestore.generator.model import InstantRestore

    micro = dict(image_size=MICRO_SIZE, vae={**TINY_VAE, "block_out_channels": [16, 32, 32]},
                 unet={**TINY_UNET, "block_out_channels": [16, 32, 32], "attention_head_dim": [1, 2, 2],
                       "cross_attention_dim": 16})
    root = tmp_path_factory.mktemp("micro_weights")
    InstantRestore.from_config("tiny", seed=0, **micro).save_pretrained(root / "model")
    InstantRestore.from_config("tiny", seed=1, **micro).save_pretrained(root / "model_no_las")
    for name, arch in (("eval_net", "resnet-b"), ("eval_net_cnn", "cnn-a")):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = IdentityNetwork(build_identity_network(arch, 16, 32), arch, 32, 16)
        save_identity_network(net.eval(), root / name)
    return root
