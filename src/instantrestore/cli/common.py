"""Argument helpers shared by sub-commands: model selection and device choice."""
from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from pathlib import Path
from typing import Iterator

import torch

from ..generator.backbones import backbone_names
from ..utils.tensor_io import PICKLE_SUFFIXES

# the old --dtype names, still accepted (hidden) for scripts written against them
DTYPE_PRECISIONS = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--checkpoint", metavar="DIR_OR_HUB_ID",
                       help="trained checkpoint directory (config.json + safetensors); an official InstantRestore "
                            "file (.pt, or hf://hwdz15508/InstantRestore/final_model_ckpt.pt to download it; see "
                            "convert-official); or a diffusers base model (local directory or hub id, e.g. "
                            "stabilityai/sd-turbo) to start fresh adapters on")
    group.add_argument("--backbone", choices=backbone_names(), default=None,
                       help="with no --checkpoint: build this architecture with RANDOM weights (a smoke test; "
                            "the output is not a restoration)")
    group.add_argument("--seed", type=int, default=0, help="seed for --backbone random weights")
    group.add_argument("--device", default="auto", help="'auto' (CUDA if available), 'cpu', 'cuda', 'cuda:1', ...")
    group.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                       help="auto: the fastest path that keeps the quality bar on this machine (the LoRA merged "
                            "into the weights, channels-last; bf16 on CPUs with native bf16, fp16 on CUDA, else fp32); "
                            "fp32: the exact path (unmerged, as the parity checks with the authors' code run)")
    group.add_argument("--dtype", choices=sorted(DTYPE_PRECISIONS), default=None, help=argparse.SUPPRESS)
    group.add_argument("--trust-pickle", action="store_true",
                       help="allow loading pickle weight files (can run code; only for files you trust)")


def resolve_device(name: str) -> torch.device:
    """--device as a torch device; ValueError saying what to pass instead for a name torch does not
    know or a CUDA device this machine does not have."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name}: not a device name; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"--device {name}: no CUDA device is available here (torch sees none: no GPU, no "
                             "driver, or a CPU-only torch build); use --device cpu or --device auto")
        if device.index is not None and device.index >= count:
            raise ValueError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to "
                             f"cuda:{count - 1}")
    return device


SYNTHETIC_WARNING = ("warning: {what} was trained only on synthetic faces (the tiny synthetic-world backbone); "
                     "on real photos its output is NOT a restoration. Real photos need SD-Turbo weights trained "
                     "on real faces (README, 'What works where').")
RANDOM_WARNING = ("warning: --backbone {backbone} builds RANDOM weights (a smoke test): the output is not a "
                  "restoration of anything. Pass --checkpoint DIR for a trained model.")


def model_warning(model, random_weights: bool, what: str = "this model") -> str | None:
    """The load-time warning for a model not trained on real faces, or None."""
    if random_weights:
        return RANDOM_WARNING.format(backbone=model.config.backbone)
    if model.config.backbone == "tiny":
        return SYNTHETIC_WARNING.format(what=what)
    return None


def warn_model(model, random_weights: bool = False, what: str = "this model") -> None:
    """Print ``model_warning`` to stderr (every front-end calls this once after loading)."""
    line = model_warning(model, random_weights, what)
    if line:
        print(line, file=sys.stderr)


def _looks_like_local_path(text: str) -> bool:
    """A checkpoint argument that cannot be a hub id ("owner/name")."""
    path = Path(text).expanduser()
    return (path.is_absolute() or text.startswith((".", "~")) or text.count("/") != 1 or "\\" in text
            or path.suffix in (*PICKLE_SUFFIXES, ".safetensors") or path.parent.is_dir())


def check_checkpoint_path(text: str) -> None:
    """Refuse, with the fix, a --checkpoint that is neither a usable local folder nor a plausible hub id."""
    from ..utils.tensor_io import CONFIG_NAME

    path = Path(text).expanduser()
    if path.is_dir():
        if (path / CONFIG_NAME).is_file() or (path / "unet").is_dir() or (path / "model_index.json").is_file():
            return
        content = sorted(p.name for p in path.iterdir())[:5]
        raise FileNotFoundError(
            f"--checkpoint {text}: this folder is not a checkpoint (it holds {content or 'nothing'}); expected "
            f"{CONFIG_NAME} + adapters.safetensors (from training or convert-official) or a diffusers folder "
            "with unet/ and vae/")
    if not path.exists() and _looks_like_local_path(text):
        raise FileNotFoundError(f"--checkpoint {text}: no such file or folder (a hub id looks like owner/name; "
                                "check the path for typos)")


@contextlib.contextmanager
def quiet_synthetic_warning() -> Iterator[None]:
    """Silence the library's SyntheticModelWarning: a front-end prints its own line (``warn_model``)."""
    from ..generator.model_io import SyntheticModelWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntheticModelWarning)
        yield


SHIPPED_LINE = ("no --checkpoint: using the shipped tiny synthetic-world model ({name}), as `ui` and `demo` do. "
                "It was trained only on synthetic faces: on real photos every step runs, but the faces it makes "
                "mean nothing. Real faces need real weights: --checkpoint (README, 'Use the published weights').")


def load_shipped(args: argparse.Namespace, device: str | None = None):
    """The shipped tiny synthetic-world model (the default of `restore`, `ui` and `demo`), made fast as
    --precision asks; says once on stderr what it is."""
    from ..assets import load_shipped_model, shipped_model_path

    with quiet_synthetic_warning():  # the line below says it once
        model = optimize(load_shipped_model(device=resolve_device(device or args.device)), args)
    print(f"warning: {SHIPPED_LINE.format(name=shipped_model_path().name)}", file=sys.stderr)
    return model


def load_model(args: argparse.Namespace, what: str = "this model", device: str | None = None,
               shipped_default: bool = False):
    """The model the arguments ask for, on the chosen device (``device``, when given, instead of
    --device) and dtype, in eval mode; warns on stderr when the model is not trained on real faces
    (tiny synthetic-world backbone, random weights). ``shipped_default``: with neither --checkpoint
    nor --backbone, the shipped tiny model (``load_shipped``) rather than an error."""
    from ..generator.model import InstantRestore

    device, dtype = resolve_device(device or args.device), torch.float32  # optimize() casts
    if args.checkpoint:
        from ..official import HF_PREFIX, resolve_checkpoint

        if not args.checkpoint.startswith(HF_PREFIX):
            check_checkpoint_path(args.checkpoint)
        path = resolve_checkpoint(args.checkpoint)
        if args.checkpoint.startswith(HF_PREFIX) or (path.is_file() and path.suffix in (".pt", ".pth", ".ckpt", ".pkl")):
            # The authors' files are pickles of tensors only: read with weights_only, never --trust-pickle.
            from ..official.checkpoint import OfficialCheckpointError

            try:
                model = InstantRestore.from_official(path, device=device, dtype=dtype)
            except OfficialCheckpointError as exc:
                raise ValueError(f"{exc}. A .pt/.pth/.ckpt/.pkl file given to --checkpoint is read only as the "
                                 "authors' official checkpoint (tensors only). Other pickles are refused: loading "
                                 "a pickle can run arbitrary code. Convert it to safetensors, or put it in a "
                                 "checkpoint folder as adapters.pt next to config.json and pass --trust-pickle "
                                 "if you trust its source") from exc
        else:
            with quiet_synthetic_warning():
                model = _from_pretrained(InstantRestore, path, args.trust_pickle, device, dtype)
        warn_model(model, what=what)
        return optimize(model, args)
    if args.backbone:
        model = InstantRestore.from_config(args.backbone, seed=args.seed).to(device=device, dtype=dtype).eval()
        warn_model(model, random_weights=True)
        return optimize(model, args)
    if shipped_default:
        return load_shipped(args, device)
    raise ValueError(f"no model chosen: pass --checkpoint DIR (a trained model) or --backbone "
                     f"{'|'.join(backbone_names())} (random weights, for a smoke test)")


def precision_of(args: argparse.Namespace) -> str:
    """The --precision asked for (the hidden old --dtype wins when given)."""
    return DTYPE_PRECISIONS[args.dtype] if getattr(args, "dtype", None) else getattr(args, "precision", "auto")


def optimize(model, args: argparse.Namespace):
    """``model`` made fast for inference as --precision asks (see ``InstantRestore.optimize_for_inference``)."""
    model.optimize_for_inference(precision_of(args))
    return model


def _from_pretrained(cls, path: Path, trust_pickle: bool, device, dtype):
    """from_pretrained with library errors turned into one line naming the checkpoint."""
    try:
        return cls.from_pretrained(path, trust_pickle=trust_pickle, device=device, dtype=dtype)
    except (ValueError, FileNotFoundError):
        raise
    except (OSError, EnvironmentError, KeyError, TypeError) as exc:  # diffusers / hub / config errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"--checkpoint {path}: cannot be loaded ({first}). Expected a folder with config.json + "
                         "adapters.safetensors, a diffusers folder (unet/, vae/), or a hub id such as "
                         "stabilityai/sd-turbo (needs network access)") from exc
