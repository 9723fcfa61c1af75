"""Identity embeddings, reference verification and selection on the celebref identities."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from instantrestore.faces import (DlibEmbedder, FaceEmbedder, ReferenceMismatchError, TorchEmbedder,
                                  cosine_similarity, load_embedder, select_references, verify_references)
from instantrestore.faces.select import head_pose, sharpness
from instantrestore.faces.verify import ReferenceWarning, verify_embeddings
from instantrestore.utils.images import load_image, uint8_to_tensor

PER_ID = 3  # references per identity used here (keeps the test fast)


@pytest.fixture(scope="module")
def embedder():
    return DlibEmbedder()


@pytest.fixture(scope="module")
def celebref(realfaces_dir):
    root = realfaces_dir / "celebref"
    ids = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert len(ids) == 8, ids
    refs = {i: sorted((root / i / "references").glob("*.png"), key=lambda p: int(p.stem))[:PER_ID] for i in ids}
    lq = {i: next((root / i).glob("degraded_*.png")) for i in ids}
    return refs, lq


def _load(path) -> np.ndarray:
    return np.asarray(load_image(path))


@pytest.fixture(scope="module")
def embeddings(celebref, embedder):
    refs, _ = celebref
    return {i: embedder.embed(uint8_to_tensor([_load(p) for p in paths])) for i, paths in refs.items()}


def test_dlib_embedder_satisfies_protocol(embedder):
    assert isinstance(embedder, FaceEmbedder)
    out = embedder.embed(torch.zeros(2, 3, 256, 256))
    assert out.shape == (2, 128) and torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)


def test_same_identity_pairs_closer_than_different(embeddings, embedder):
    same, diff = [], []
    ids = sorted(embeddings)
    for a in ids:
        for b in ids:
            sims = (embeddings[a] @ embeddings[b].T).numpy()
            if a == b:
                same += list(sims[np.triu_indices(PER_ID, 1)])
            elif a < b:
                diff += list(sims.ravel())
    # measured (3 refs per id): same 0.966 mean / 0.933 min, different 0.822 mean / 0.908 max
    assert np.mean(same) > np.mean(diff) + 0.08, (np.mean(same), np.mean(diff))
    assert np.mean([s >= embedder.threshold for s in same]) > 0.95
    assert np.mean([d < embedder.threshold for d in diff]) > 0.95


def test_raw_dlib_distances_follow_documented_threshold(celebref, embedder):
    refs, _ = celebref
    a, b = sorted(refs)[:2]
    raw = embedder.embed_raw(uint8_to_tensor([_load(refs[a][0]), _load(refs[a][1]), _load(refs[b][0])]))
    assert torch.dist(raw[0], raw[1]) < DlibEmbedder.EUCLIDEAN_THRESHOLD < torch.dist(raw[0], raw[2])


def test_verification_flags_slipped_in_identity(celebref, embedder):
    refs, lq = celebref
    ids = sorted(refs)
    for own, other in ((ids[0], ids[1]), (ids[5], ids[2])):
        paths = refs[own] + [refs[other][0]]
        names = [f"{p.parent.parent.name}/{p.name}" for p in paths]
        images = [_load(p) for p in paths]
        with pytest.warns(ReferenceWarning, match=names[-1]):
            report = verify_references(images, names, lq=_load(lq[own]), embedder=embedder)
        assert [c.name for c in report.outliers] == [names[-1]]
        assert report.lq_matches is True
        with pytest.raises(ReferenceMismatchError, match=names[-1]):
            verify_references(images, names, embedder=embedder, mode="strict")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            clean = verify_references(images[:-1], names[:-1], lq=_load(lq[own]), embedder=embedder)
        assert clean.ok


def test_verification_flags_input_of_another_person():
    refs = torch.tensor([[1.0, 0.0, 0.0], [0.99, 0.1, 0.0], [0.98, 0.0, 0.1]])
    report = verify_embeddings(refs, ["a", "b", "c"], lq=torch.tensor([0.0, 1.0, 0.0]), threshold=0.9)
    assert not report.outliers and report.lq_matches is False and not report.ok
    assert "input does not match" in report.problems()[0]


def test_select_references_prefers_same_identity(celebref, embedder):
    refs, lq = celebref
    ids = sorted(refs)
    own, other = ids[3], ids[4]
    paths = refs[own] + refs[other][:2]
    ranking = select_references(_load(lq[own]), [_load(p) for p in paths], k=3,
                                names=[p.parent.parent.name + "/" + p.name for p in paths], embedder=embedder)
    assert len(ranking) == 3
    assert all(r.name.startswith(own) for r in ranking), [r.to_json() for r in ranking]
    assert ranking[0].score >= ranking[1].score >= ranking[2].score
    with pytest.raises(ValueError, match="no reference"):
        select_references(_load(lq[own]), [], k=1, embedder=embedder)
    with pytest.raises(ValueError, match="one size"):
        select_references(_load(lq[own]), [_load(paths[0])[:256, :256]], k=1, embedder=embedder)


def test_select_references_with_precomputed_cues_ranks_the_same(celebref, embedder):
    from instantrestore.faces import aligned_landmarks

    refs, lq = celebref
    ids = sorted(refs)
    crops = [_load(p) for p in refs[ids[3]] + refs[ids[4]][:2]]
    query = _load(lq[ids[3]])
    plain = select_references(query, crops, k=4, embedder=embedder)
    given = select_references(query, crops, k=4, embedder=embedder,
                              lq_embedding=embedder.embed(uint8_to_tensor(query))[0],
                              candidate_embeddings=embedder.embed(uint8_to_tensor(crops)),
                              candidate_landmarks=np.stack([aligned_landmarks(c) for c in crops]))
    assert [r.index for r in given] == [r.index for r in plain]
    assert [r.score for r in given] == pytest.approx([r.score for r in plain], abs=1e-6)
    with pytest.raises(ValueError, match="candidate embeddings"):
        select_references(query, crops, k=1, embedder=embedder, candidate_embeddings=torch.zeros(1, 128))

def test_pose_and_sharpness_cues_respond():
    lm = np.zeros((68, 2))
    lm[36:42], lm[42:48] = [200, 240], [312, 240]
    lm[0], lm[16], lm[30] = [130, 260], [382, 260], [256, 310]
    frontal = head_pose(lm)
    lm[30] = [290, 310]
    assert abs(frontal[0]) < 1e-9 and head_pose(lm)[0] > 0.2
    rng = np.random.default_rng(0)
    sharp = (rng.random((128, 128, 3)) * 255).astype(np.uint8)
    flat = np.full((128, 128, 3), 120, np.uint8)
    assert sharpness(sharp) > sharpness(flat)


class _TinyNet(torch.nn.Module):
    def forward(self, x):  # [B, 3, 112, 112] -> [B, 3]: mean colour, a toy "identity"
        assert x.shape[-2:] == (112, 112)
        return x.mean(dim=(2, 3)) + 2.0


def test_torch_embedder_and_specs(tmp_path):
    emb = TorchEmbedder(_TinyNet(), input_size=112, threshold=0.5, name="tiny")
    assert isinstance(emb, FaceEmbedder)
    images = torch.stack([torch.full((3, 256, 256), -0.5), torch.full((3, 256, 256), 0.5)])
    out = emb.embed(images)
    assert out.shape == (2, 3) and torch.allclose(out.norm(dim=1), torch.ones(2))
    assert cosine_similarity(out[0], out[0]).item() == pytest.approx(1.0)
    exported = tmp_path / "net.pt2"
    batch = {"x": {0: torch.export.Dim("batch")}}
    torch.export.save(torch.export.export(_TinyNet(), (torch.zeros(2, 3, 112, 112),), dynamic_shapes=batch),
                      str(exported))
    loaded = load_embedder(f"torch:{exported}")
    assert torch.allclose(loaded.embed(images), out, atol=1e-6)
    for bad in ("arcface", "onnx:", f"torch:{tmp_path / 'missing.pt'}"):
        with pytest.raises((ValueError, FileNotFoundError)):
            load_embedder(bad)


def test_onnx_embedder_needs_onnxruntime(tmp_path):
    import importlib.util
    if importlib.util.find_spec("onnxruntime") is not None:
        pytest.skip("onnxruntime is installed; the error path cannot be reached")
    with pytest.raises(ImportError, match=r"instantrestore\[onnx\]"):
        load_embedder(f"onnx:{tmp_path / 'arcface.onnx'}")


def test_onnx_embedder_runs_a_model(tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime (the 'onnx' extra) is not installed")
    onnx = pytest.importorskip("onnx", reason="the onnx package is needed to write a test model")
    from onnx import TensorProto, helper

    # mean colour per channel, a toy recogniser: [B, 3, 112, 112] -> [B, 3]
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["embedding"])],
        "toy", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["B", 3, 112, 112])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["B", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "toy.onnx"
    onnx.save(model, str(path))
    emb = load_embedder(f"onnx:{path}")
    assert isinstance(emb, FaceEmbedder) and emb.name == "onnx:toy.onnx"
    images = torch.zeros(2, 3, 256, 256)
    images[0, 0] = 1.0  # red face
    images[1, 2] = 1.0  # blue face
    out = emb.embed(images)
    # inputs are mapped to (pixels - 127.5) / 127.5, i.e. back to [-1, 1]: red = [1, 0, 0] after normalising
    assert torch.allclose(out[0], torch.nn.functional.normalize(torch.tensor([1.0, 0.0, 0.0]), dim=0), atol=1e-5)
    assert torch.allclose(out[1], torch.nn.functional.normalize(torch.tensor([0.0, 0.0, 1.0]), dim=0), atol=1e-5)


def test_refs_cli_ranks_and_refuses_wrong_identity_when_strict(celebref, tmp_path, capsys):
    import json
    import shutil

    from instantrestore.cli import main

    refs, lq = celebref
    ids = sorted(refs)
    folder = tmp_path / "refs"
    folder.mkdir()
    for p in refs[ids[6]]:
        shutil.copy(p, folder / p.name)
    shutil.copy(refs[ids[7]][0], folder / "intruder.png")
    out = tmp_path / "refs.json"
    assert main(["refs", str(lq[ids[6]]), str(folder), "-k", "2", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert len(payload["kept"]) == 2 and "intruder.png" not in payload["kept"]
    assert [r["name"] for r in payload["verification"]["references"] if r["outlier"]] == ["intruder.png"]
    assert "intruder.png" in capsys.readouterr().err
    assert main(["refs", str(lq[ids[6]]), str(folder), "--verify-refs", "strict"]) == 2
    assert "intruder.png" in capsys.readouterr().err
