"""Training checkpoints: atomic, pickle-free, and exact to resume.

``OUT/checkpoints/step_XXXXXXX/`` holds a model dir (``InstantRestore.from_pretrained`` loads it)
plus ``training_state/``: optimiser states as safetensors + JSON (no pickle), the discriminator's
weights, ``trainer.json`` (step, data position, grad-scaler state) and one RNG file per process.
A checkpoint is written into ``.tmp-step_XXXXXXX`` and renamed into place once complete, so a
killed run never leaves a half checkpoint; only the newest ``keep`` are kept.
:func:`save_checkpoint` and :func:`load_checkpoint` write and restore all of it for a run.
"""
from __future__ import annotations

import json
import logging
import random
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..utils.files import atomic_write_text
from ..utils.tensor_io import ADAPTERS_NAME, BASE_NAME, load_tensors, save_tensors

if TYPE_CHECKING:
    from .trainer import Run

log = logging.getLogger(__name__)
TRAIN_STATE_FORMAT = "instantrestore-train/1"
STATE_DIR = "training_state"
TRAINER_JSON = "trainer.json"
STEP_DIR = re.compile(r"^step_(\d{7,})$")


def step_dir_name(step: int) -> str:
    """The checkpoint folder name of ``step`` (``step_0000100``)."""
    return f"step_{step:07d}"


# ------------------------------------------------------------------ optimiser <-> safetensors
def optimizer_to_files(optimizer: torch.optim.Optimizer, directory: Path, name: str) -> None:
    """Write ``name.safetensors`` (per-parameter tensors) and ``name.json`` (groups, scalars)."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(index), {})[key] = value
    save_file(tensors, str(directory / f"{name}.safetensors"))
    meta = {"param_groups": state["param_groups"], "scalars": scalars, "indices": sorted(state["state"])}
    (directory / f"{name}.json").write_text(json.dumps(meta, indent=1))


def optimizer_from_files(optimizer: torch.optim.Optimizer, directory: Path, name: str) -> None:
    """Load what :func:`optimizer_to_files` wrote into ``optimizer`` (same parameter layout)."""
    meta = json.loads((directory / f"{name}.json").read_text())
    tensors = load_file(str(directory / f"{name}.safetensors"))
    state: dict[int, dict[str, Any]] = {int(i): dict(meta["scalars"].get(str(i), {})) for i in meta["indices"]}
    for key, value in tensors.items():
        index, _, field = key.partition(".")
        state[int(index)][field] = value
    groups = meta["param_groups"]
    for group in groups:
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
    ours = optimizer.state_dict()["param_groups"]
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in ours]:
        raise ValueError(f"{directory}/{name}: optimiser state has groups of {[len(g['params']) for g in groups]} "
                         f"parameters, this model has {[len(g['params']) for g in ours]}; the config changed")
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# ------------------------------------------------------------------ RNG states
def rng_to_file(path: Path) -> None:
    """Python, NumPy and torch (CPU + CUDA) RNG states of this process."""
    version, internal, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    tensors = {"torch_cpu": torch.get_rng_state(), "numpy_keys": torch.from_numpy(np_keys.astype(np.int64))}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    meta = {"python": json.dumps([version, list(internal), gauss]),
            "numpy": json.dumps([np_name, int(np_pos), int(np_has_gauss), float(np_gauss)])}
    save_file(tensors, str(path), metadata=meta)


def rng_from_file(path: Path) -> None:
    """Restore the Python, NumPy, torch CPU (and, on the same device count, CUDA) RNG states
    that ``rng_to_file`` saved."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    version, internal, gauss = json.loads(meta["python"])
    random.setstate((version, tuple(internal), gauss))
    np_name, np_pos, np_has_gauss, np_gauss = json.loads(meta["numpy"])
    np.random.set_state((np_name, tensors["numpy_keys"].numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


# ------------------------------------------------------------------ checkpoint folders
def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root`` as (step, dir), oldest first."""
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        m = STEP_DIR.match(d.name)
        if m and (d / STATE_DIR / TRAINER_JSON).is_file():
            found.append((int(m.group(1)), d))
    return sorted(found)


def latest_checkpoint(root: Path) -> Path | None:
    """The checkpoint of the highest step under ``root``, or None when there is none."""
    found = list_checkpoints(root)
    return found[-1][1] if found else None


def temp_dir(root: Path, step: int) -> Path:
    """The staging folder of a checkpoint; every process writes into the same one."""
    return root / f".tmp-{step_dir_name(step)}"


def begin_checkpoint(root: Path, step: int) -> Path:
    """Main process: a fresh, empty staging folder with ``training_state/`` inside."""
    tmp = temp_dir(root, step)
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / STATE_DIR).mkdir(parents=True)
    return tmp


def finish_checkpoint(root: Path, step: int, trainer_state: dict[str, Any], keep: int) -> Path:
    """Main process: write ``trainer.json`` last, rename the staging folder into place, prune old ones."""
    tmp = temp_dir(root, step)
    atomic_write_text(tmp / STATE_DIR / TRAINER_JSON, json.dumps(trainer_state, indent=1))
    final = root / step_dir_name(step)
    if final.exists():  # re-saving a step (after a resume): move the old one away first
        trash = root / f".old-{step_dir_name(step)}"
        shutil.rmtree(trash, ignore_errors=True)
        final.rename(trash)
        shutil.rmtree(trash)
    tmp.rename(final)
    for _, old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    log.info("saved checkpoint %s", final)
    return final


def read_trainer_state(checkpoint: Path) -> dict[str, Any]:
    """The trainer's JSON state (step, epoch, ...) saved in ``checkpoint``."""
    return json.loads((checkpoint / STATE_DIR / TRAINER_JSON).read_text())


# ------------------------------------------------------------------ a run's checkpoint
def save_checkpoint(run: Run, step: int, samples_per_step: int) -> Path | None:
    """Every process calls this; the main one writes model + optimisers, each its RNG state."""
    acc, root = run.accelerator, run.config.out_dir / "checkpoints"
    if acc.is_main_process:
        tmp = begin_checkpoint(root, step)
        run.stage.save(run.model, tmp)
        target = tmp / STATE_DIR
        optimizer_to_files(run.optimizer, target, "optimizer")
        if run.discriminator is not None:
            save_tensors(run.discriminator.state_dict(), target / "discriminator.safetensors")
            optimizer_to_files(run.disc_optimizer, target, "disc_optimizer")
    acc.wait_for_everyone()
    rng_to_file(temp_dir(root, step) / STATE_DIR / f"rng_rank{acc.process_index}.safetensors")
    acc.wait_for_everyone()
    final = None
    if acc.is_main_process:
        scaler = getattr(acc, "scaler", None)
        info = {"format": TRAIN_STATE_FORMAT, "step": step, "samples_seen": step * samples_per_step,
                "world_size": acc.num_processes, "batch_size": run.config.batch_size,
                "grad_accum": run.config.grad_accum, "seed": run.config.seed,
                "scaler": scaler.state_dict() if scaler is not None else None}
        final = finish_checkpoint(root, step, info, keep=run.config.keep_checkpoints)
    acc.wait_for_everyone()
    return final


def load_checkpoint(run: Run, checkpoint: Path) -> int:
    """Restore model, optimisers (their rates too: the caller sets the configured ones after),
    discriminator, grad scaler and this process's RNG states; returns the step."""
    acc, cfg = run.accelerator, run.config
    info = read_trainer_state(checkpoint)
    same = {k: (info.get(k), v) for k, v in (("world_size", acc.num_processes), ("batch_size", cfg.batch_size),
                                             ("grad_accum", cfg.grad_accum), ("seed", cfg.seed))}
    changed = {k: pair for k, pair in same.items() if pair[0] != pair[1]}
    if changed:
        log.warning("resuming %s with %s changed (saved, now): the data order will differ from an "
                    "uninterrupted run", checkpoint, changed)
    device = acc.device
    if (checkpoint / BASE_NAME).is_file():
        run.model.load_base_state({k: v.to(device) for k, v in load_tensors(checkpoint / BASE_NAME).items()})
    run.model.load_adapter_state({k: v.to(device) for k, v in load_tensors(checkpoint / ADAPTERS_NAME).items()})
    target = checkpoint / STATE_DIR
    optimizer_from_files(run.optimizer, target, "optimizer")
    if run.discriminator is not None:
        run.discriminator.load_state_dict(load_tensors(target / "discriminator.safetensors", device=str(device)))
        optimizer_from_files(run.disc_optimizer, target, "disc_optimizer")
    scaler = getattr(acc, "scaler", None)
    if scaler is not None and info.get("scaler"):
        scaler.load_state_dict(info["scaler"])
    rng = target / f"rng_rank{acc.process_index}.safetensors"
    if rng.is_file():
        rng_from_file(rng)
    return int(info["step"])
