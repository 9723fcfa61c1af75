"""Inference speed levers: LoRA merged into the base weights, reduced precision, channels-last.

None changes the method; each trades a little exactness for time and is measured by
``benchmarks/speed.py`` (time per part and output difference against the fp32 unmerged model).

- **Merged LoRA.** At inference the adapters are a fixed low-rank update, so ``W + s B A`` is
  folded into ``W`` once (peft's ``merge``) instead of running two extra matmuls per layer. The
  reference branch needs the *base* weights: ``adapters.adapters_disabled`` runs a merged layer
  as ``(W + s B A) x - s B A x`` (the LoRA path with its scale negated), so encoding references
  on a merged model leaves the weights untouched. The fingerprint of the base weights is kept
  across the merge: what the reference branch computes does not change.
- **Precision.** bf16 weights and activations where the CPU multiplies bf16 natively
  (avx512_bf16 / AMX; :func:`cpu_has_fast_bf16`), fp16 on CUDA; optionally some modules kept in
  fp32 (e.g. the VAE decoder, whose output is the image) with casts at their borders.
- **Channels-last** memory layout for the convolutions (oneDNN's and cuDNN's preferred layout).

:func:`optimize` applies them; ``precision="fp32"`` is the exact path (unmerged, fp32), which
the parity checks with the authors' code use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from . import fingerprints
from .empty_init import release_file_maps

if TYPE_CHECKING:
    from .model import InstantRestore

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _lora_layers(model: InstantRestore) -> list[nn.Module]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for part in (model.unet, model.vae) for m in part.modules()
            if isinstance(m, BaseTunerLayer) and hasattr(m, "merge") and getattr(m, "lora_A", None)]


def adapters_merged(model: InstantRestore) -> bool:
    """True when the model's LoRA adapters are folded into its base weights."""
    return bool(getattr(model, "_merge_adapters", False))


def merge_adapters(model: InstantRestore) -> None:
    """Fold every LoRA update into its base weight (inference only: the adapters stay attached,
    so :func:`unmerge_adapters` undoes it, and the reference branch still runs the base weights)."""
    if model.training:
        raise ValueError("merge_adapters is for inference: call model.eval() first (a merged model cannot train)")
    with torch.no_grad(), fingerprints.kept_through(model, "base"):
        for layer in _lora_layers(model):
            if not layer.merged:
                layer.merge()
    model._merge_adapters = True


def unmerge_adapters(model: InstantRestore) -> None:
    """Take the LoRA updates out of the base weights again (each weight rounds once)."""
    with torch.no_grad(), fingerprints.kept_through(model, "base"):
        for layer in _lora_layers(model):
            if layer.merged:
                layer.unmerge()
    model._merge_adapters = False


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (oneDNN's bf16 kernels: avx512_bf16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """'auto' -> the fastest precision expected to keep the quality bar on ``device``: fp16 on
    CUDA (bf16 where fp16 is not fast), bf16 on CPUs with native bf16, else fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        return "fp16"
    if device.type == "cpu" and cpu_has_fast_bf16():
        return "bf16"
    return "fp32"


def _cast_inputs(dtype: torch.dtype):
    def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        cast = (lambda x: x.to(dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else x)
        return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}
    return hook


def keep_in_fp32(module: nn.Module, output_dtype: torch.dtype) -> None:
    """Run ``module`` in fp32 inside a reduced-precision model: its weights become fp32, its
    floating inputs are cast up, and its output is cast back to ``output_dtype``."""
    if getattr(module, "_kept_in_fp32", False):  # hooks already there
        module.float()
        return
    module._kept_in_fp32 = True
    module.float()
    module.register_forward_pre_hook(_cast_inputs(torch.float32), with_kwargs=True)

    def cast_output(mod: nn.Module, args: tuple, output):
        if isinstance(output, torch.Tensor):
            return output.to(output_dtype)
        if hasattr(output, "sample"):  # diffusers' DecoderOutput
            output.sample = output.sample.to(output_dtype)
        return output
    module.register_forward_hook(cast_output)


def to_channels_last(model: InstantRestore) -> None:
    """Store the UNet's and VAE's 4-d weights channels-last (convolutions then pick the kernels
    made for it; inputs are converted by the first convolution)."""
    with fingerprints.kept_through(model, "base"), fingerprints.kept_through(model, "adapters"):
        model.unet.to(memory_format=torch.channels_last)
        model.vae.to(memory_format=torch.channels_last)
        # the 4-d weights now have their own memory: the rest leaves the checkpoint's map too, or
        # the map would keep every page of the replaced weights resident (empty_init)
        release_file_maps(model)


DECODER_FP32_PARTS = ("all", "last", "tail", "none")


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (oneDNN's bf16 matrix units: 5-7x the fp32 matmul peak measured here)."""
    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


def default_decoder_fp32(resolved: str, device: torch.device) -> str:
    """How much of the VAE decoder ``auto`` keeps in fp32 in a reduced-precision model.

    On a CPU with avx512_bf16 but no AMX the whole decoder ("all") measured both closer to fp32
    and faster than bf16 (its GroupNorms and full-resolution convolutions convert back and forth;
    ``benchmarks/speed.py``: 41.1 vs 40.4 dB, 24.4 vs 27.7 s at 512 px). With AMX a bf16 decoder
    is 4x faster than an fp32 one, so only its output layers stay fp32 ("tail"; docs/benchmark.md)."""
    if resolved != "bf16" or device.type != "cpu":
        return "none"
    return "tail" if cpu_has_amx() else "all"


def decoder_fp32_modules(decoder: nn.Module, part: str) -> list[tuple[nn.Module, bool]]:
    """The decoder's modules to run in fp32 for ``part`` (see :data:`DECODER_FP32_PARTS`), each with
    whether its output goes on in fp32 (into the next kept module) rather than back to the model's dtype."""
    if part not in DECODER_FP32_PARTS:
        raise ValueError(f"fp32 decoder part: expected one of {', '.join(DECODER_FP32_PARTS)}, got {part!r}")
    if part == "all":
        return [(decoder, False)]
    if part == "none":
        return []
    # conv_norm_out -> conv_act (no weights: runs in its input's dtype) -> conv_out
    tail = [(decoder.conv_norm_out, True), (decoder.conv_out, False)]
    return ([(decoder.up_blocks[-1], True)] if part == "last" else []) + tail


def optimize(model: InstantRestore, precision: str = "auto", merge: bool | None = None,
             channels_last: bool | None = None, fp32_decoder: bool | str | None = None) -> dict:
    """Make ``model`` (in eval mode) fast for inference on its device, in place; returns what was
    applied. ``precision``: see :func:`resolve_precision` ("fp32" = the exact path: nothing else is
    applied unless asked). ``merge`` / ``channels_last``: None = on unless ``precision`` is "fp32"
    ("auto" resolving to fp32 merges and goes channels-last too).
    ``fp32_decoder``: how much of the VAE decoder stays in fp32 in a reduced-precision model:
    "all" (True), "last" (its last up block and output layers), "tail" (its output layers),
    "none" (False); None = :func:`default_decoder_fp32` for this machine."""
    resolved = resolve_precision(precision, model.device)
    # "auto" in fp32 (a CPU without native bf16) still merges and goes channels-last: both are
    # exact to rounding (merged within 1e-4); only an explicit "fp32" is the untouched parity path
    fast = resolved != "fp32" or precision == "auto"
    merge = fast if merge is None else merge
    channels_last = fast if channels_last is None else channels_last
    if fp32_decoder is None:
        fp32_decoder = default_decoder_fp32(resolved, model.device)
    elif isinstance(fp32_decoder, bool):
        fp32_decoder = "all" if fp32_decoder else "none"
    kept = decoder_fp32_modules(model.vae.decoder, fp32_decoder)
    model.eval()
    if merge:  # before any cast: the update is folded in at the weights' own precision, rounded once
        merge_adapters(model)
    if resolved == "fp32" or model.dtype != torch.float32:
        kept = []
    # the kept modules' fp32 tensors, held across the cast so that "kept in fp32" means their values
    kept_states = [dict(module.state_dict()) for module, _ in kept]
    cast = DTYPES[resolved] != model.dtype
    if cast:
        model.to(dtype=DTYPES[resolved])
    for (module, fp32_out), state in zip(kept, kept_states):
        keep_in_fp32(module, torch.float32 if fp32_out else model.dtype)
        with torch.no_grad():
            module.load_state_dict(state)
    if channels_last:
        to_channels_last(model)
    if cast:  # whatever a cast left mapped (a non-float buffer) must not hold the map's read pages
        with fingerprints.kept_through(model, "base"), fingerprints.kept_through(model, "adapters"):
            release_file_maps(model)
    fp32_decoder = fp32_decoder if kept else "none"
    return {"precision": resolved, "merged": merge, "channels_last": channels_last, "fp32_decoder": fp32_decoder}
