"""Identity networks R: ArcFace iresnet loading, synthetic-world networks, margin head, training, CLI."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from instantrestore.utils.tensor_io import UntrustedPickleError, save_tensors
from instantrestore.cli import main
from instantrestore.idnet import (ArcMarginHead, IdentityTrainConfig, build_arcface, build_identity_network,
                                  load_arcface, load_identity_network, train_identity_network)
from instantrestore.data.synthetic import render, sample_identity
from instantrestore.idnet.train import augment, detail_sensitivity, detail_twin, render_faces, verification_metrics

TINY = IdentityTrainConfig(identities=6, images_per_identity=3, steps=4, batch_size=8, input_size=32,
                           render_size=64, embedding_dim=16, heldout_identities=3, heldout_images_per_identity=2)


# ------------------------------------------------------------------ ArcFace iresnet

@pytest.fixture(scope="module")
def r18_file(tmp_path_factory):
    torch.manual_seed(0)
    net = build_arcface("r18")
    path = tmp_path_factory.mktemp("arcface") / "r18.safetensors"
    save_tensors(net.state_dict(), path)
    return net, path


def test_arcface_r50_builds_and_embeds():
    net = build_arcface("r50")
    out = net(torch.rand(2, 3, 112, 112) * 2 - 1)
    assert out.shape == (2, 512)
    assert torch.allclose(out.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert net.input_size == 112 and len(net.crop) == 4 and 0 < net.crop[0] < net.crop[2] <= 1
    assert len(net.layer3) == 14  # r50 stage depths 3, 4, 14, 3


def test_arcface_safetensors_roundtrip(r18_file):
    net, path = r18_file
    loaded = load_arcface(path, arch="r18")
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    assert torch.equal(net(x), loaded(x))
    assert not any(p.requires_grad for p in loaded.parameters())


def test_arcface_strips_ddp_prefix(r18_file, tmp_path):
    net, _ = r18_file
    path = tmp_path / "ddp.safetensors"
    save_tensors({f"module.{k}": v for k, v in net.state_dict().items() if "num_batches" not in k}, path)
    x = torch.rand(1, 3, 112, 112) * 2 - 1
    assert torch.equal(net(x), load_arcface(path, arch="r18")(x))


def test_arcface_wrong_arch_lists_keys(r18_file):
    _, path = r18_file
    with pytest.raises(ValueError, match=r"iresnet-34.*missing \d+ \['layer1\.2\..*unexpected 0"):
        load_arcface(path, arch="r34")


def test_arcface_pickle_refused_without_trust(r18_file, tmp_path):
    net, _ = r18_file
    path = tmp_path / "backbone.pth"
    torch.save(net.state_dict(), path)
    with pytest.raises(UntrustedPickleError):
        load_arcface(path, arch="r18")
    x = torch.rand(1, 3, 112, 112) * 2 - 1
    assert torch.equal(net(x), load_arcface(path, arch="r18", trust_pickle=True)(x))


def test_arcface_unknown_arch():
    with pytest.raises(ValueError, match="unknown ArcFace architecture 'r200'"):
        build_arcface("r200")


# ------------------------------------------------------------------ synthetic-world networks

@pytest.mark.parametrize("arch", ["cnn-a", "resnet-b"])
def test_identity_network_shapes(arch):
    net = build_identity_network(arch, embedding_dim=32, input_size=64).eval()
    assert net(torch.zeros(3, 3, 64, 64)).shape == (3, 32)


def test_architectures_differ():
    a, b = build_identity_network("cnn-a"), build_identity_network("resnet-b")
    assert set(a.state_dict()) != set(b.state_dict())
    assert any(isinstance(m, torch.nn.PReLU) for m in b.modules())
    assert not any(isinstance(m, torch.nn.PReLU) for m in a.modules())


def test_unknown_arch_and_bad_size():
    with pytest.raises(ValueError, match="unknown identity network architecture 'vgg'.*cnn-a"):
        build_identity_network("vgg")
    with pytest.raises(ValueError, match="multiple of 16"):
        build_identity_network("cnn-a", input_size=40)
    with pytest.raises(ValueError, match="unknown identity network"):
        train_identity_network(replace(TINY, arch="vgg"), "unused", progress=False)


def test_margin_head_reduces_true_class_logit():
    head = ArcMarginHead(embedding_dim=2, num_classes=3, scale=10.0, margin=0.5)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    theta = 0.3
    emb = torch.tensor([[math.cos(theta), math.sin(theta)]]) * 4.0  # scale of the embedding must not matter
    logits = head(emb, torch.tensor([0]))
    cos = head.cosine(emb)[0]
    assert logits[0, 0].item() == pytest.approx(10.0 * math.cos(theta + 0.5), abs=1e-5)
    assert logits[0, 0].item() < 10.0 * cos[0].item()
    assert torch.allclose(logits[0, 1:], 10.0 * cos[1:])  # other classes: no margin
    # past theta + m > pi the target logit keeps decreasing with theta (monotone fallback)
    far = head(torch.tensor([[-1.0, 0.01], [-1.0, 0.2]]), torch.tensor([0, 0]))[:, 0]
    assert far[0] < far[1] < 10.0 * head.cosine(torch.tensor([[-1.0, 0.2]]))[0, 0]


def test_augment_is_mild_and_seeded():
    images = render_faces(0, 2, 2, 32, 64)[0]
    a = augment(images, 2, 0.08, torch.Generator().manual_seed(1))
    b = augment(images, 2, 0.08, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == images.shape and a.min() >= -1 and a.max() <= 1
    plain = augment(images, 0, 0.0, torch.Generator())
    assert torch.allclose(plain, images.float() / 127.5 - 1, atol=1e-6)


def test_verification_metrics_on_known_embeddings():
    labels = torch.tensor([0, 0, 1, 1])
    perfect = torch.tensor([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0]])
    m = verification_metrics(perfect, labels, 2)
    assert m["mean_cos_same"] == pytest.approx(1) and m["mean_cos_diff"] == pytest.approx(0)
    assert m["top1"] == 1 and m["pair_accuracy"] == 1
    swapped = torch.tensor([[1.0, 0], [0, 1.0], [0, 1.0], [1.0, 0]])  # each probe nearest the other's gallery
    assert verification_metrics(swapped, labels, 2)["top1"] == 0


@pytest.mark.slow
def test_detail_twins_differ_only_in_marks_and_irises():
    person = sample_identity(0, 3)
    twin = detail_twin(person)
    assert [m.x for m in twin.marks] == pytest.approx([1 - m.x for m in person.marks])
    assert all(a != b for a, b in zip(twin.iris_colors, person.iris_colors))
    assert twin.face_width == person.face_width and twin.skin_color == person.skin_color
    a, b = render(person, 1, 64), render(twin, 1, 64)
    assert a.matrix.tolist() == b.matrix.tolist()  # same photo parameters
    images, labels = render_faces(0, 3, 2, 32, 64, twins=2)
    assert images.shape == (10, 3, 32, 32) and labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert not torch.equal(images[0], images[6])  # identity 0 vs its twin (class 3), same photo index


def test_detail_sensitivity_sees_pixel_changes():
    pixels = torch.nn.Flatten()  # embedding = the image itself: any edit moves it
    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.ones(len(x), 4)
    seen = detail_sensitivity(pixels, 0, 3, 64, 128)
    assert 0.5 < seen["cos_marks_removed"] < 1 and 0.5 < seen["cos_iris_changed"] < 1
    blind = detail_sensitivity(Constant(), 0, 3, 64, 128)
    assert blind["cos_marks_removed"] == pytest.approx(1) and blind["cos_iris_changed"] == pytest.approx(1)


@pytest.mark.slow
def test_training_lowers_loss_and_is_deterministic(tmp_path):
    config = replace(TINY, identities=4, images_per_identity=4, steps=20, batch_size=16, lr=3e-3,
                     shift_px=0, color_gain=0.0, margin=0.2, scale=16.0)
    short = train_identity_network(replace(config, steps=1, lr=1e-9), tmp_path / "s", progress=False)
    m1 = train_identity_network(config, tmp_path / "a", progress=False)
    m2 = train_identity_network(config, tmp_path / "b", progress=False)
    assert m1["final_loss"] < 0.5 * short["final_loss"]
    a, b = load_identity_network(tmp_path / "a"), load_identity_network(tmp_path / "b")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    assert m1["mean_cos_same"] == m2["mean_cos_same"]
    train_identity_network(replace(config, seed=1, steps=1), tmp_path / "c", progress=False)
    other = load_identity_network(tmp_path / "c")
    assert not torch.equal(other.backbone.head[3].weight, a.backbone.head[3].weight)


def test_saved_network_reloads_to_identical_outputs(tmp_path):
    config = replace(TINY, arch="resnet-b")
    train_identity_network(config, tmp_path, progress=False)
    net = load_identity_network(tmp_path)
    again = load_identity_network(tmp_path / "model.safetensors")
    x = torch.rand(2, 3, 32, 32, requires_grad=True) * 2 - 1
    out = net(x)
    assert torch.equal(out, again(x)) and out.shape == (2, 16)
    assert torch.allclose(out.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert net.input_size == 32 and net.crop is None and not net.training
    assert not any(p.requires_grad for p in net.parameters())
    out.sum().backward()  # gradients still reach the input (identity loss)
    with pytest.raises(ValueError, match="expects 32x32"):
        net(torch.zeros(1, 3, 64, 64))


def test_load_refuses_pickle_without_trust(tmp_path):
    train_identity_network(TINY, tmp_path, progress=False)
    state = load_identity_network(tmp_path).backbone.state_dict()
    (tmp_path / "model.safetensors").unlink()
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(UntrustedPickleError):
        load_identity_network(tmp_path)
    assert load_identity_network(tmp_path, trust_pickle=True).input_size == 32
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_identity_network(tmp_path / "nowhere")


def test_cli_train_id_writes_outputs(tmp_path, capsys):
    out = tmp_path / "idnet"
    rc = main(["train-id", "--out", str(out), "--arch", "resnet-b", "--identities", "5", "--images-per-identity",
               "2", "--heldout-identities", "3", "--steps", "3", "--batch-size", "4", "--input-size", "32",
               "--embedding-dim", "8", "--detail-twins", "0.4", "--no-progress"])
    assert rc == 0
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "metrics.json"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"mean_cos_same", "mean_cos_diff", "top1", "pair_accuracy", "cos_marks_removed"} <= set(metrics)
    assert -1 <= metrics["cos_iris_changed"] <= 1
    config = json.loads((out / "config.json").read_text())
    assert config["arch"] == "resnet-b" and config["training"]["identities"] == 5
    assert config["training"]["detail_twins"] == 0.4
    assert "mean cos same identity" in capsys.readouterr().out
    assert load_identity_network(out).embedding_dim == 8


def test_cli_train_id_rejects_unknown_arch(capsys):
    with pytest.raises(SystemExit):
        main(["train-id", "--out", "x", "--arch", "vgg"])
    assert "invalid choice: 'vgg'" in capsys.readouterr().err


def test_cli_train_id_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["train-id", "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "(default: cnn-a)" in text
