"""The recipe's training stages, one small class each.

A stage says in one place what it trains, how the generator runs on a training batch, which
attention it captures for the loss, what its validation grid shows, what it bundles when it
saves, and what it does once training ends. The trainer runs the same loop for all of them.

- ``autoencoder`` (stage 0, tiny recipe): the base VAE alone reconstructs clean photos; at the
  end its latent scale is fitted (SD's pretrained VAE's stand-in).
- ``prior`` (stage 1, tiny recipe): a blind one-step restorer; the base UNet trains, and the VAE
  too unless ``freeze_vae``; adapters off, no references.
- ``instantrestore`` (stage 2, the paper's): frozen base, LoRA + VAE conv_in copy, shared
  attention over per-sample references, landmark attention loss.

Adding a stage = one subclass of :class:`Stage` plus its entry in :data:`STAGES`.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from ..generator import model_io
from ..generator.adapters import adapters_disabled
from ..generator.model import GeneratorOutput, InstantRestore
from .sampling import collate

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from ..losses import RestorationLoss
    from .config import TrainConfig

log = logging.getLogger(__name__)


def sync_adapter_init(model: InstantRestore) -> None:
    """After a base stage: make the VAE conv_in copy equal the trained base conv_in again, so the
    saved model's adapters are 'fresh' (as ``from_pretrained`` of the prior would initialise them)."""
    with torch.no_grad():
        model.load_base_state({k: v.detach().clone() for k, v in model.base_state_dict().items()})


def scale_batch(dataset: Dataset, train_idx: list[int], images: int = 64) -> torch.Tensor:
    """Clean training photos [N, 3, H, W] in [-1, 1] (``images`` of them, spread over the
    identities) that fit the latent scale."""
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(0)
    spread = train_idx[:: max(1, len(train_idx) // images)][:images]  # many identities, not the first few
    return collate([dataset[i] for i in spread])["hq"]


class Stage:
    """One training stage. Plain objects without state; the trainer holds one per run.

    references: the generator sees per-sample references (so the landmark attention loss may be
    on, and the grid shows them). include_base: ``save_pretrained``'s argument (True: always
    bundle the base weights; None: only when they cannot be re-fetched). needs_trained_base: a
    real run starts from trained base weights (warn when it would start from random ones).
    """

    name: ClassVar[str]
    references: ClassVar[bool] = False
    include_base: ClassVar[bool | None] = True
    needs_trained_base: ClassVar[bool] = False

    @classmethod
    def from_config(cls, config: TrainConfig) -> "Stage":
        """The stage with the options ``config`` sets for it (most stages have none)."""
        return cls()

    @classmethod
    def config_problems(cls, config: TrainConfig) -> list[str]:
        """What in ``config`` this stage cannot run with (messages for TrainConfig's check)."""
        if not cls.references and config.loss.landmark_attention != 0:
            return [f"stage {config.stage!r} is blind (no references), so loss.landmark_attention must be 0"]
        return []

    # ---------------------------------------------------------------- what trains
    def trains(self, in_vae: bool, adapter: bool, freeze_vae: bool) -> bool:
        """Whether a parameter of the VAE (or UNet) that is (or is not) an adapter tensor trains."""
        raise NotImplementedError

    def optimised(self, model: InstantRestore, base: list[nn.Parameter]) -> list[nn.Parameter]:
        """The trainable parameters in the optimiser's order (after the flags are set)."""
        return [p for p in base if p.requires_grad]

    def set_trainable(self, model: InstantRestore, freeze_vae: bool = False) -> list[nn.Parameter]:
        """Switch gradients on for exactly this stage's parameters (off for all others); return them."""
        vae = {id(p) for p in model.vae.parameters()}
        base = model_io.base_parameters(model)
        for p in base:
            p.requires_grad_(self.trains(id(p) in vae, adapter=False, freeze_vae=freeze_vae))
        for p in model.adapter_state_dict().values():
            if isinstance(p, nn.Parameter):
                p.requires_grad_(self.trains(id(p) in vae, adapter=True, freeze_vae=freeze_vae))
        params = self.optimised(model, base)
        if not params:
            raise ValueError(f"stage {self.name!r}: no trainable parameters")
        return params

    # ---------------------------------------------------------------- generator
    def capture_layers(self, model: InstantRestore, loss: RestorationLoss) -> list[str]:
        """Attention layers whose probabilities the forward returns for the loss."""
        return []

    def forward(self, model: InstantRestore, batch: dict, timesteps: torch.Tensor, noise: torch.Tensor,
                capture: list[str]) -> GeneratorOutput:
        """The training forward on a batch, with its per-sample timesteps [B] and latent noise."""
        raise NotImplementedError

    def sample(self, model: InstantRestore, batch: dict) -> torch.Tensor:
        """Outputs [B, 3, H, W] in [-1, 1] at the inference setting (fixed timestep, no noise)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- validation grid
    def grid_input(self, batch: dict) -> torch.Tensor:
        """The grid's input row: what this stage's generator is given."""
        return batch["lq"]

    def grid_references(self, batch: dict) -> torch.Tensor | None:
        return batch["refs"] if self.references else None

    # ---------------------------------------------------------------- saving and the end
    def save(self, model: InstantRestore, directory: Path) -> None:
        """Write the model dir of a checkpoint or of ``final/``."""
        model.save_pretrained(directory, include_base=self.include_base)

    def finish(self, model: InstantRestore, dataset: Dataset, train_idx: list[int]) -> None:
        """After the last step, before ``final/`` is saved (main process only)."""


class BaseStage(Stage):
    """The tiny recipe's stages 0-1: base weights train, adapters off, no references. The base is
    what they train, so it is always bundled; the adapters are saved fresh."""

    def save(self, model: InstantRestore, directory: Path) -> None:
        sync_adapter_init(model)
        super().save(model, directory)


class Autoencoder(BaseStage):
    """Stage 0: the clean photo in, the same photo out; only the base VAE trains."""

    name = "autoencoder"

    @classmethod
    def config_problems(cls, config: TrainConfig) -> list[str]:
        problems = super().config_problems(config)
        if config.freeze_vae:
            problems.append("freeze_vae: stage 'autoencoder' trains only the VAE")
        return problems

    def trains(self, in_vae: bool, adapter: bool, freeze_vae: bool) -> bool:
        return in_vae and not adapter

    def forward(self, model, batch, timesteps, noise, capture) -> GeneratorOutput:
        with adapters_disabled(model.unet, model.vae):
            return GeneratorOutput(image=model.autoencode(batch["hq"]))

    def sample(self, model, batch) -> torch.Tensor:
        with adapters_disabled(model.unet, model.vae):
            return model.autoencode(batch["hq"]).clamp(-1, 1).float()

    def grid_input(self, batch: dict) -> torch.Tensor:
        return batch["hq"]

    def finish(self, model, dataset, train_idx) -> None:
        scale = model.set_latent_scale(scale_batch(dataset, train_idx))
        log.info("latent scaling factor %.5g (unit-RMS latents for the prior)", scale)


class Prior(BaseStage):
    """Stage 1: the blind one-step restorer; the base UNet (and VAE unless ``freeze_vae``) trains.

    with_references (``prior_references``, a tiny-world option): the decoder self-attention also
    reads the batch's references ("concat": own keys plus the references'), so the stand-in
    prior's attention learns to find and copy details - what SD-Turbo's pretrained attention
    brings to the paper's stage 2. The base still restores blind when given no references.
    """

    name = "prior"

    def __init__(self, with_references: bool = False):
        self.with_references = with_references

    @classmethod
    def from_config(cls, config: TrainConfig) -> "Prior":
        return cls(with_references=config.prior_references)

    @classmethod
    def config_problems(cls, config: TrainConfig) -> list[str]:
        if config.prior_references:  # references given, so the landmark attention loss may supervise them
            return []
        return super().config_problems(config)

    def capture_layers(self, model, loss) -> list[str]:
        return loss.capture_layers(model.injected_layers) if self.with_references else []

    def trains(self, in_vae: bool, adapter: bool, freeze_vae: bool) -> bool:
        return not adapter and not (freeze_vae and in_vae)

    def _references(self, batch: dict) -> dict:
        if not self.with_references:
            return {"references": None}
        return {"references": batch["refs"], "ref_mask": batch["ref_mask"], "attention_mode": "concat"}

    def forward(self, model, batch, timesteps, noise, capture) -> GeneratorOutput:
        with adapters_disabled(model.unet, model.vae):
            return model(batch["lq"], timesteps=timesteps, noise=noise, capture=capture, **self._references(batch))

    def sample(self, model, batch) -> torch.Tensor:
        with adapters_disabled(model.unet, model.vae):
            return model(batch["lq"], **self._references(batch)).image.float()

    def grid_references(self, batch: dict) -> torch.Tensor | None:
        return batch["refs"] if self.with_references else None


class InstantRestoreStage(Stage):
    """Stage 2, the paper's: frozen base; LoRA + VAE conv_in copy train (``freeze_vae``: the
    UNet's LoRA only); shared attention over per-sample references; LAS on the captured layers.
    The base is bundled only when it cannot be re-fetched (SD-Turbo checkpoints hold adapters only)."""

    name = "instantrestore"
    references = True
    include_base = None
    needs_trained_base = True

    def trains(self, in_vae: bool, adapter: bool, freeze_vae: bool) -> bool:
        return adapter and not (freeze_vae and in_vae)

    def optimised(self, model, base) -> list[nn.Parameter]:
        return model.trainable_parameters()

    def capture_layers(self, model, loss) -> list[str]:
        return loss.capture_layers(model.injected_layers)

    def forward(self, model, batch, timesteps, noise, capture) -> GeneratorOutput:
        return model(batch["lq"], references=batch["refs"], ref_mask=batch["ref_mask"], timesteps=timesteps,
                     noise=noise, capture=capture)

    def sample(self, model, batch) -> torch.Tensor:
        return model(batch["lq"], references=batch["refs"], ref_mask=batch["ref_mask"]).image.float()


# Recipe order; TrainConfig.stage takes these names.
STAGES: dict[str, type[Stage]] = {cls.name: cls for cls in (Autoencoder, Prior, InstantRestoreStage)}


def stage_for(name: str) -> Stage:
    """The stage called ``name``."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; known: {', '.join(STAGES)}")
    return STAGES[name]()
