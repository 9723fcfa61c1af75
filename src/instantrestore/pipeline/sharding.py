"""Share a folder job between the processes of ``accelerate launch``; one process is a shard of one.

    shard = current_shard()                  # Shard(index=0, count=1) outside accelerate launch
    mine = shard.take(sorted_inputs)         # this process's items, a deterministic interleave
    ...                                      # each process writes only its own outputs
    shard.wait()                             # everyone done: the main process may summarise

The split is an interleave of the (already sorted) list, ``items[index::count]``: it depends only
on the list and the process count, so a resumed run, or a run with another number of processes,
gives every item the same output. Nothing is exchanged between processes but the final barrier.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence, TypeVar

T = TypeVar("T")

# Variables `accelerate launch` (and torchrun) set in every process it starts.
_LAUNCH_VARIABLES = ("ACCELERATE_DYNAMO_BACKEND", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Shard:
    """Process ``index`` of ``count``; ``device`` is the one accelerate gives it (None: choose yourself)."""

    index: int = 0
    count: int = 1
    device: str | None = None

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def take(self, items: Sequence[T]) -> list[T]:
        """This process's items of ``items``: every ``count``-th, starting at ``index``."""
        return list(items[self.index::self.count])

    def label(self) -> str:
        """'' for a single process, else ' [process i/n]' for messages."""
        return "" if self.count == 1 else f" [process {self.index + 1}/{self.count}]"

    def wait(self) -> None:
        """Block until every process of the launch gets here (nothing to wait for with one process)."""
        if self.count > 1:
            from accelerate import PartialState

            PartialState().wait_for_everyone()


def launched() -> bool:
    """True inside a process started by ``accelerate launch`` / torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 and any(v in os.environ for v in _LAUNCH_VARIABLES)


def current_shard() -> Shard:
    """This process's shard: from accelerate's ``PartialState`` when launched with several processes,
    else the whole job (accelerate is not even imported, so a plain run starts no process group)."""
    if not launched():
        return Shard()
    import torch
    from accelerate import PartialState

    # several processes but no GPU (torchrun / `accelerate launch --multi_gpu` on a CPU machine):
    # accelerate forms the gloo process group only when told the run is on CPU
    state = PartialState(cpu=not torch.cuda.is_available())
    return Shard(index=state.process_index, count=state.num_processes, device=str(state.device))
