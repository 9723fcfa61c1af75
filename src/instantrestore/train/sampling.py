"""Data order as a pure function of (seed, step): what makes ``--resume`` exact.

The training stream is an endless sequence of dataset positions. Position p belongs to epoch
p // n, and within it to a permutation drawn from (seed, epoch). Optimiser step s, micro-batch
m, process r reads positions [((s * G + m) * W + r) * B, ... + B). A resumed run recreates the
sampler at its step and sees exactly the batches an uninterrupted run would have seen, in any
number of data-loader workers. Each item's degradation/reference draw comes from the dataset's
own (seed, epoch, index) rng, so the whole batch is reproducible.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

_TAG_ORDER = 0x5EED


class EpochIndexed(Dataset):
    """Wraps a dataset with ``set_epoch``: key ``epoch * len(base) + i`` returns item i of that epoch."""

    def __init__(self, base: Dataset):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: int) -> dict:
        epoch, index = divmod(int(key), len(self.base))  # type: ignore[arg-type]
        if getattr(self.base, "epoch", None) != epoch:
            self.base.set_epoch(epoch)  # type: ignore[attr-defined]
        return self.base[index]


class StepBatchSampler(Sampler[list[int]]):
    """Yields the micro-batches of steps ``start_step .. total_steps - 1`` for one process.

    indices: the dataset indices used for training (held-out ones excluded); keys yielded are
    ``epoch * dataset_len + index`` for :class:`EpochIndexed`.
    """

    def __init__(self, indices: Sequence[int], dataset_len: int, batch_size: int, grad_accum: int,
                 world_size: int, rank: int, seed: int, start_step: int, total_steps: int):
        if not indices:
            raise ValueError("no training items: every identity is held out for validation (lower val_identities)")
        self.indices = np.asarray(indices, dtype=np.int64)
        self.dataset_len, self.batch_size, self.grad_accum = dataset_len, batch_size, grad_accum
        self.world_size, self.rank, self.seed = world_size, rank, seed
        self.start_step, self.total_steps = start_step, total_steps
        self._perm: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step) * self.grad_accum

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._perm is None or self._perm[0] != epoch:
            rng = np.random.default_rng([_TAG_ORDER, self.seed, epoch])
            self._perm = (epoch, self.indices[rng.permutation(len(self.indices))])
        return self._perm[1]

    def keys(self, step: int, micro: int) -> list[int]:
        """The dataset keys of (step, micro-batch) for this process."""
        n = len(self.indices)
        first = ((step * self.grad_accum + micro) * self.world_size + self.rank) * self.batch_size
        keys = []
        for p in range(first, first + self.batch_size):
            epoch, offset = divmod(p, n)
            keys.append(epoch * self.dataset_len + int(self._permutation(epoch)[offset]))
        return keys

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.total_steps):
            for micro in range(self.grad_accum):
                yield self.keys(step, micro)


def step_generator(seed: int, step: int, micro: int) -> torch.Generator:
    """CPU generator for the timesteps and latent noise of one global micro-batch (all processes)."""
    seq = np.random.SeedSequence([_TAG_ORDER, seed, step, micro])
    return torch.Generator().manual_seed(int(seq.generate_state(1, dtype=np.uint64)[0] >> 1))


def collate(items: list[dict]) -> dict:
    """Stack tensors; keep strings/ints as lists (identity names, indices)."""
    out: dict = {}
    for key in items[0]:
        values = [item[key] for item in items]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return out
