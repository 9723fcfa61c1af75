"""An optional CPU back-end for the VAE decoder: ONNX Runtime (``pip install 'instantrestore[onnx]'``).

The decoder is a plain convolutional net (no shared attention, no reference branch), so it can be
exported once and run by another runtime. ``benchmarks/vae_backends.py`` measured ONNX Runtime's
fp32 CPU kernels faster than PyTorch's here (docs/benchmark.md, "Speed on the CPU"); OpenVINO and
torch.compile were measured too and are not kept. The export takes the weights the decoder holds
at that moment, so it comes after the LoRA merge (the official VAE carries a LoRA).

The PyTorch decoder stays in the model (its weights are still fingerprinted and saved); only its
``forward`` is routed to the runtime, in fp32, with the output cast back to the input's dtype.
"""
from __future__ import annotations

import importlib.util
import os
import tempfile
import warnings

import torch
from torch import nn

BACKENDS = ("torch", "onnxruntime")


def onnxruntime_available() -> bool:
    """Whether the ``onnxruntime`` package (and ``onnx``, which the export writes) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


class OnnxRuntimeDecoder:
    """A VAE decoder exported to ONNX (fp32, any batch and spatial size) in an ONNX Runtime session."""

    def __init__(self, decoder: nn.Module, latent_channels: int, threads: int | None = None) -> None:
        import onnxruntime as ort

        fp32 = _fp32_copy(decoder)
        example = torch.zeros(1, latent_channels, 8, 8)
        with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's notes on diffusers' shape checks
            path = os.path.join(folder, "decoder.onnx")
            torch.onnx.export(fp32, (example,), path, input_names=["z"], output_names=["image"], dynamo=False,
                              dynamic_axes={"z": {0: "batch", 2: "height", 3: "width"},
                                            "image": {0: "batch", 2: "height", 3: "width"}})
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads or torch.get_num_threads()
            # ONNX Runtime's idle threads spin by default, taking the cores from the UNet that runs next
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def __call__(self, z: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        out = self.session.run(["image"], {"z": z.detach().float().contiguous().cpu().numpy()})[0]
        return torch.from_numpy(out).to(device=z.device, dtype=z.dtype)


def _fp32_copy(decoder: nn.Module) -> nn.Module:
    """The decoder as a plain fp32 module with its own fp32 values (not rounded through bf16)."""
    import copy

    copied = copy.deepcopy(decoder)
    copied._forward_hooks.clear()  # hooks of keep_in_fp32: the export runs in fp32 throughout
    copied._forward_pre_hooks.clear()
    return copied.float().eval()


def use_backend(model: nn.Module, backend: str) -> None:
    """Route ``model.vae.decoder``'s forward to ``backend`` ("torch" = leave it; "onnxruntime")."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "torch":
        return
    if model.device.type != "cpu":
        raise ValueError(f"backend {backend}: a CPU back-end; this model is on {model.device}")
    if not onnxruntime_available():
        raise ImportError("backend onnxruntime needs the onnxruntime and onnx packages: "
                          "pip install 'instantrestore[onnx]'")
    decoder = model.vae.decoder
    runner = OnnxRuntimeDecoder(decoder, model.vae.config.latent_channels)
    decoder.forward = runner  # an instance attribute: nn.Module.__call__ runs it, hooks included
    decoder._backend = backend
