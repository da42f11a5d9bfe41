"""A shuffling sampler that can resume mid-epoch and shard across ranks, deterministically.

The order of epoch e is a permutation drawn from (seed, e); rank r of W takes every W-th index of it. On
resume the sampler starts at the exact position the checkpoint recorded, without loading the skipped
samples (so no video is decoded for them).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableShuffleSampler(Sampler[int]):
    def __init__(self, length: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if length < world_size:
            raise ValueError(f"{length} samples cannot be shared by {world_size} ranks")
        self.length = length
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0  # position within this rank's share of the epoch

    @property
    def per_rank(self) -> int:
        return self.length // self.world_size  # drop the remainder so every rank takes as many steps

    def set_position(self, epoch: int, start: int) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.per_rank - self.start

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.length, generator=g)[: self.per_rank * self.world_size]
        mine = order[self.rank :: self.world_size]
        return iter(mine[self.start :].tolist())
