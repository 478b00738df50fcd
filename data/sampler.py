"""The training-order sampler: a seeded shuffle per epoch, split across ranks, with per-item augmentation seeds."""
from __future__ import annotations

import torch
from torch.utils.data import Dataset, Sampler


class EpochSampler(Sampler):
    """Yields ``(index, item_seed)`` pairs for this rank, one global batch at a time; ``(index, item_seed,
    strength)`` once per-item RandAugment strengths are set (``set_strengths``, BCL).

    Epoch e shuffles all N items with a generator seeded by (seed, e) and drops the last incomplete global
    batch. Rank r takes items [r*b, (r+1)*b) of every global batch of size B = world_size * b, so the
    batch gathered across ranks (in rank order) is exactly the batch one process would see.
    Each item also gets a 63-bit seed for its augmentation, so views depend on (seed, epoch, position) only:
    not on the number of workers or on where a run was resumed.
    """

    def __init__(self, size: int, global_batch_size: int, world_size: int = 1, rank: int = 0, seed: int = 0):
        if global_batch_size % world_size:
            raise ValueError(f"global batch size {global_batch_size} does not divide over {world_size} processes")
        if size < global_batch_size:
            raise ValueError(f"the training set has {size} items, fewer than one global batch of {global_batch_size}")
        self.size, self.global_batch_size = size, global_batch_size
        self.world_size, self.rank, self.seed = world_size, rank, seed
        self.local_batch_size = global_batch_size // world_size
        self.epoch = 0
        self.strengths = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_strengths(self, strengths) -> None:
        """Per-item RandAugment strengths w in [0, 1] (BCL), one per item of the dataset this sampler orders
        (an ``IdOodDataset``: the ID items, then the chosen OOD items), for the passes from now on; None: no
        RandAugment. Call it in the main process before each epoch's pass: the strengths travel inside the
        keys, so persistent workers never see stale ones."""
        if strengths is None:
            self.strengths = None
            return
        s = torch.as_tensor(strengths).detach().to("cpu", torch.float32).reshape(-1)
        if len(s) != self.size:
            raise ValueError(f"got {len(s)} RandAugment strengths for {self.size} items")
        if not bool(((s >= 0) & (s <= 1)).all()):
            raise ValueError("RandAugment strengths must lie in [0, 1]")
        self.strengths = s.clone()

    @property
    def batches_per_epoch(self) -> int:
        return self.size // self.global_batch_size

    def __len__(self) -> int:
        return self.batches_per_epoch * self.local_batch_size

    def epoch_order(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices, seeds) of this rank for the current epoch, in the order they are yielded."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=g)
        seeds = torch.randint(0, 2**63 - 1, (self.size,), generator=g)
        used = self.batches_per_epoch * self.global_batch_size
        shape = (self.batches_per_epoch, self.world_size, self.local_batch_size)
        mine = lambda t: t[:used].view(shape)[:, self.rank].reshape(-1)
        return mine(order), mine(seeds)

    def epoch_strengths(self) -> torch.Tensor | None:
        """This rank's items' strengths for the current epoch, in the order they are yielded (None if unset)."""
        if self.strengths is None:
            return None
        return self.strengths[self.epoch_order()[0]]

    def __iter__(self):
        order, seeds = self.epoch_order()
        if self.strengths is None:
            return iter(zip(order.tolist(), seeds.tolist()))
        return iter(zip(order.tolist(), seeds.tolist(), self.strengths[order].tolist()))


class SeededViews(Dataset):
    """Wraps a dataset of ``(uint8 image, *fields)`` items: key ``(index, seed)`` -> ``(views, *fields)``,
    the views made by ``view_transform(image)`` under ``torch.manual_seed(seed)``; key ``(index, seed,
    strength)`` -> ``view_transform(image, strength)`` (RandAugment at that strength, ``data.views.TwoViews``)."""

    def __init__(self, base: Dataset, view_transform):
        self.base, self.view_transform = base, view_transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key):
        index, seed, *strength = key
        image, *fields = self.base[index]
        torch.manual_seed(seed)
        return (self.view_transform(image, *strength), *fields)
