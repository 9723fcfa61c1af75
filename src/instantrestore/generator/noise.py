"""The random draws of a sampled (``official`` profile) forward, named so they can be replayed.

The authors' code draws, in this order: the input's VAE posterior sample, the references'
posterior samples, the references' noise at their timestep, a draw inside the scheduler's
``step`` that is discarded, the input's noise at its timestep, and another discarded draw. The
two noise draws are ``randn_like`` of the latents, which keeps their memory layout (the VAE
hands back channels-last latents), so ``randn(shape)`` alone would not reproduce them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

NOISE_NAMES = ("input_posterior", "refs_posterior", "refs_noise", "input_noise")


@dataclass
class NoiseDraws:
    """Draws from ``generator`` (None = torch's global RNG, as the authors' code) unless a tensor of
    that name is given in ``given``; every tensor used is kept in ``used`` for replay."""

    generator: torch.Generator | None = None
    given: dict[str, torch.Tensor] = field(default_factory=dict)
    used: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.given) - set(NOISE_NAMES)
        if unknown:
            raise ValueError(f"noises: unknown names {sorted(unknown)}; expected some of {list(NOISE_NAMES)}")

    def _device(self, fallback: torch.device) -> torch.device:
        return self.generator.device if self.generator is not None else fallback

    def normal(self, name: str, like: torch.Tensor, keep_layout: bool = False) -> torch.Tensor:
        """Standard normal noise shaped like ``like``: given, or drawn (contiguous, as ``randn``;
        with ``keep_layout`` in ``like``'s memory layout, as ``randn_like``)."""
        if name in self.given:
            noise = self.given[name]
            if tuple(noise.shape) != tuple(like.shape):
                raise ValueError(f"noises[{name!r}]: expected shape {tuple(like.shape)}, got {tuple(noise.shape)}")
            noise = noise.to(like.device, like.dtype)
        else:
            device = self._device(like.device)
            if keep_layout:
                noise = torch.empty_like(like, device=device).normal_(generator=self.generator)
            else:
                noise = torch.randn(like.shape, generator=self.generator, device=device, dtype=like.dtype)
            noise = noise.to(like.device)
        self.used[name] = noise
        return noise

    def discard(self, like: torch.Tensor) -> None:
        """Advance the generator as the scheduler's ``step`` does with the noise it never uses."""
        torch.randn(like.shape, generator=self.generator, device=self._device(like.device), dtype=like.dtype)
