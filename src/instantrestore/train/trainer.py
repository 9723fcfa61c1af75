"""The training loop on Hugging Face Accelerate: one process or many (``accelerate launch``).

Per optimiser step: ``grad_accum`` micro-batches, each a generator forward/backward (per-sample
training timestep and latent noise, paper appendix A), then a discriminator forward/backward
on the detached restorations; then the generator's AdamW step, then the discriminator's.

Accelerate gives the device, autocast (generator only; losses run in fp32), the fp16 grad
scaler and the process group. The model is not DDP-wrapped and the data loader not re-sharded:
gradients are averaged across processes by hand (one all-reduce per step), and every process
reads its own slice of a data order that is a pure function of (seed, step) (see
:mod:`.sampling`). That keeps ``--resume`` exact and lets the discriminator be frozen during the
generator pass without DDP complaints.

What differs between stages (trained set, forward, grids, saving, the end) is in :mod:`.stages`;
saving and resuming the training state is in :mod:`.state`.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..generator.model import GeneratorOutput, InstantRestore
from . import build, state
from .config import TrainConfig
from .reporting import MetricsLogger, save_grid, validation_grid, write_held_out
from .sampling import EpochIndexed, StepBatchSampler, collate, step_generator
from .schedule import lr_factor
from .stages import STAGES, Stage

log = logging.getLogger(__name__)


@dataclass
class Run:
    """The live objects of one run (built once, passed down)."""

    config: TrainConfig
    stage: Stage
    accelerator: object
    model: InstantRestore
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    loss: nn.Module
    discriminator: nn.Module | None
    disc_optimizer: torch.optim.Optimizer | None
    capture: list[str]


def _noise_and_timesteps(model: InstantRestore, lq: torch.Tensor, gen: torch.Generator, world_size: int, rank: int
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample timestep from ``config.train_timesteps`` and latent noise for this process's slice.

    Drawn for the whole global micro-batch and sliced, so N processes x batch B see the same
    draws as 1 process x batch N*B (the run does not depend on how it is split).
    """
    b, _, h, w = lq.shape
    choices = torch.tensor(model.config.train_timesteps, dtype=torch.long)
    t = choices[torch.randint(len(choices), (world_size * b,), generator=gen)]
    s = model.config.vae_scale
    noise = torch.randn(world_size * b, model.latent_channels, h // s, w // s, generator=gen)
    part = slice(rank * b, (rank + 1) * b)
    return t[part].to(lq.device), noise[part].to(lq.device, model.dtype)


def generator_forward(run: Run, batch: dict, gen: torch.Generator) -> GeneratorOutput:
    """One generator pass in the run's stage (the draws are made whether the stage uses them or not)."""
    acc = run.accelerator
    t, noise = _noise_and_timesteps(run.model, batch["lq"], gen, acc.num_processes, acc.process_index)
    if not run.config.train_noise:  # drawn all the same, so the stream does not depend on the option
        noise = torch.zeros_like(noise)
    return run.stage.forward(run.model, batch, t, noise, run.capture)


def _average_gradients(accelerator, params: list[nn.Parameter]) -> None:
    """Mean of the gradients over processes, in one flat all-reduce."""
    if accelerator.num_processes == 1:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = accelerator.reduce(torch.cat([p.grad.reshape(-1) for p in params]), reduction="mean")
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p))
        offset += n


def _optimizer_step(run: Run, optimizer, params: list[nn.Parameter]) -> float:
    _average_gradients(run.accelerator, params)
    norm = float("nan")
    if run.config.max_grad_norm is not None:
        norm = float(run.accelerator.clip_grad_norm_(params, run.config.max_grad_norm))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return norm


def train_step(run: Run, batches: list[dict], step: int) -> dict[str, float]:
    """One optimiser step over ``grad_accum`` micro-batches -> mean loss terms."""
    acc, cfg = run.accelerator, run.config
    terms: dict[str, float] = defaultdict(float)
    run.model.train()
    for micro, batch in enumerate(batches):
        gen = step_generator(cfg.seed, step, micro)
        with acc.autocast():
            out = generator_forward(run, batch, gen)
        # Losses in fp32 (MS-SSIM, cosines and D's logits are fragile in half precision); the
        # generator's adversarial term runs D frozen inside RestorationLoss.
        out = GeneratorOutput(image=out.image.float(), attention=out.attention)
        total, parts = run.loss.generator_loss(out, batch, generator=gen)  # the official LAS form draws from it
        acc.backward(total)
        for k, v in parts.items():
            terms[k] += float(v) / len(batches)
        if run.discriminator is not None:
            d_total, d_parts = run.loss.discriminator_loss(out.image.detach(), batch["hq"])
            acc.backward(d_total)
            for k, v in d_parts.items():
                terms[k] += float(v) / len(batches)
    terms["grad_norm"] = _optimizer_step(run, run.optimizer, run.params)
    if run.disc_optimizer is not None:
        terms["disc_grad_norm"] = _optimizer_step(run, run.disc_optimizer, list(run.discriminator.parameters()))
    return dict(terms)


@torch.no_grad()
def sample(run: Run, batch: dict) -> torch.Tensor:
    """Restorations of the validation batch at the inference setting (fixed timestep, no noise)."""
    run.model.eval()
    with run.accelerator.autocast():
        return run.stage.sample(run.model, batch)


# ------------------------------------------------------------------ learning rates
def _rates(config: TrainConfig, step_index: int) -> tuple[float, float]:
    """(generator lr, discriminator lr) for 0-based optimiser step ``step_index``."""
    factor = lr_factor(config.lr_schedule, step_index, config.steps, config.lr_warmup_steps, config.lr_final_ratio)
    return config.lr * factor, (config.disc_lr or config.lr) * factor


def _set_rates(run: Run, step_index: int, warn: bool = False) -> None:
    """Put the configured rates (and weight decay) into the optimisers. On resume (``warn``) the
    restored optimiser state holds the saved ones; the config is what the user asks for now (e.g.
    a lower lr to finish a run), so it wins, with a warning when they differ."""
    lr, disc_lr = _rates(run.config, step_index)
    wanted = [(run.optimizer, "optimizer", lr)]
    if run.disc_optimizer is not None:
        wanted.append((run.disc_optimizer, "disc_optimizer", disc_lr))
    for optimizer, name, rate in wanted:
        for key, value in (("lr", rate), ("weight_decay", run.config.weight_decay)):
            saved = sorted({group[key] for group in optimizer.param_groups})
            if warn and not all(math.isclose(v, value, rel_tol=1e-9) for v in saved):
                log.warning("resuming with %s %s changed (saved %s, now %s)", name, key, saved, value)
            for group in optimizer.param_groups:
                group[key] = value


def _resume(run: Run) -> int:
    """Restore the newest complete checkpoint, if any; returns the step to continue from."""
    root = run.config.out_dir / "checkpoints"
    checkpoint = state.latest_checkpoint(root)
    if checkpoint is None:
        log.info("--resume: no checkpoint in %s, starting from step 0", root)
        return 0
    step = state.load_checkpoint(run, checkpoint)
    _set_rates(run, step - 1, warn=True)  # the rate of the last step taken
    log.info("resumed from %s (step %d)", checkpoint, step)
    return step


# ------------------------------------------------------------------ the run
def _setup(config: TrainConfig) -> Run:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from ..losses import RestorationLoss

    # Several processes but no GPU (torchrun / `accelerate launch --multi_gpu` on a CPU machine):
    # accelerate only forms the gloo process group when told the run is on CPU.
    cpu_group = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    # accelerate keeps its settings in a process-wide singleton; forget the previous run's (e.g.
    # its mixed precision) so train() can be called again in one process. The process group stays.
    AcceleratorState._reset_state(reset_partial_state=False)
    acc = Accelerator(mixed_precision=config.mixed_precision, gradient_accumulation_steps=config.grad_accum,
                      log_with=None, cpu=cpu_group or None)
    stage = STAGES[config.stage].from_config(config)
    model = build.build_model(config)
    params = stage.set_trainable(model, freeze_vae=config.freeze_vae)
    if config.gradient_checkpointing:
        model.unet.enable_gradient_checkpointing()
        model.vae.enable_gradient_checkpointing()
    model.to(acc.device)
    disc = build.build_discriminator(config)
    loss = RestorationLoss(config.loss, identity_network=build.build_identity_network(config), discriminator=disc,
                           landmark_attention=config.landmark_attention).to(acc.device)
    capture = stage.capture_layers(model, loss)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    disc_opt = None
    if disc is not None:
        disc_opt = torch.optim.AdamW(disc.parameters(), lr=config.disc_lr or config.lr, weight_decay=config.weight_decay)
        optimizer, disc_opt = acc.prepare(optimizer, disc_opt)
    else:
        optimizer = acc.prepare(optimizer)
    n_train = sum(p.numel() for p in params)
    log.info("stage %s: training %d tensors (%.2fM parameters) on %s x%d, mixed precision %s", config.stage,
             len(params), n_train / 1e6, acc.device, acc.num_processes, config.mixed_precision)
    return Run(config, stage, acc, model, params, optimizer, loss, disc, disc_opt, capture)


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _write_final(run: Run, out: Path, dataset, train_idx: list[int]) -> Path:
    final, tmp = out / "final", out / ".tmp-final"
    if run.accelerator.is_main_process:
        run.stage.finish(run.model, dataset, train_idx)
        shutil.rmtree(tmp, ignore_errors=True)
        run.stage.save(run.model, tmp)
        run.config.to_yaml(tmp / "train_config.yaml")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        log.info("final model: %s", final)
    run.accelerator.wait_for_everyone()
    return final


def train(config: TrainConfig, progress: bool = True, resume: bool = False, stop_at: int | None = None) -> Path:
    """Train per ``config``; returns ``OUT/final`` (a model dir for ``InstantRestore.from_pretrained``).

    resume: continue from the newest complete checkpoint in ``OUT/checkpoints`` (fresh start when
    there is none). stop_at: stop after that step without writing ``final/``, as a killed job would
    (for tests and time-boxed jobs); the run can then be resumed.
    """
    from tqdm import tqdm

    dataset, train_idx, val_idx = build.build_dataset(config)  # checks the data before any model is built
    run = _setup(config)
    acc, out = run.accelerator, config.out_dir
    start = _resume(run) if resume else 0
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        config.to_yaml(out / "config.yaml")
        write_held_out(out, build.held_out_people(config, dataset))
    metrics = MetricsLogger(out, resume_step=start) if acc.is_main_process else None
    val = build.validation_batch(dataset, val_idx) if acc.is_main_process else None
    end = config.steps if stop_at is None else min(config.steps, stop_at)
    sampler = StepBatchSampler(train_idx, len(dataset), config.batch_size, config.grad_accum, acc.num_processes,
                               acc.process_index, config.seed, start, end)
    loader = DataLoader(EpochIndexed(dataset), batch_sampler=sampler, num_workers=config.num_workers,
                        collate_fn=collate, pin_memory=acc.device.type == "cuda")
    samples_per_step = config.batch_size * config.grad_accum * acc.num_processes
    bar = tqdm(total=config.steps, initial=start, desc=f"train {config.stage}", unit="step",
               disable=not (progress and acc.is_main_process), dynamic_ncols=True)
    batches_iter, tick, last_log = iter(loader), time.perf_counter(), start
    for step in range(start + 1, end + 1):
        batches = [_to_device(next(batches_iter), acc.device) for _ in range(config.grad_accum)]
        _set_rates(run, step - 1)
        terms = train_step(run, batches, step - 1)
        if not math.isfinite(terms.get("loss", 0.0)):
            raise FloatingPointError(f"step {step}: loss is {terms.get('loss')}; lower lr or check the data")
        bar.update(1)
        bar.set_postfix({k: f"{v:.3g}" for k, v in terms.items() if k in ("loss", "identity", "landmark_attention",
                                                                            "ms_ssim", "l1", "d_loss")})
        if step % config.log_every == 0 or step == end:
            keys = sorted(terms)
            mean = acc.reduce(torch.tensor([terms[k] for k in keys], device=acc.device), reduction="mean")
            now = time.perf_counter()
            row = dict(zip(keys, mean.tolist()), lr=run.optimizer.param_groups[0]["lr"],
                       sec_per_step=(now - tick) / (step - last_log), samples=step * samples_per_step,
                       epoch=step * samples_per_step // len(train_idx))
            tick, last_log = now, step
            if metrics is not None:
                metrics.log(step, row)
        if val is not None and (step % config.sample_every == 0 or step == end):
            grid = validation_grid(run.stage.grid_input(val), sample(run, _to_device(val, acc.device)).cpu(),
                                   val["hq"], run.stage.grid_references(val), val["ref_mask"])
            save_grid(grid, out / "samples" / f"step_{step:07d}.png")
        if step % config.save_every == 0 or step == config.steps:
            state.save_checkpoint(run, step, samples_per_step)
    bar.close()
    if metrics is not None:
        metrics.close()
    if end < config.steps:  # stopped early, as if killed: the newest checkpoint is what survives
        return state.latest_checkpoint(out / "checkpoints") or out
    return _write_final(run, out, dataset, train_idx)
