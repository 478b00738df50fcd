"""Training batches for the batched augmentation path (``--aug_device gpu``).

Array datasets (synthetic, CIFAR, an array OOD pool): the ID images and the chosen OOD items live on the
training device as one uint8 (N, 3, H, W) tensor; a batch is an index gather in the order of
``EpochSampler.epoch_order()`` (the per-image path's order) and both views are made there by
``data.gpu_aug.two_views``, so there are no DataLoader workers on a GPU (on the CPU, worker processes
can make the next batches' views while the model trains). File-list datasets (ImageNet-100, Places)
keep decoding in workers, which also do the random resized crop to a fixed size; flip, jitter, grayscale
and blur run batched on the device. Views come out as float32 whole levels in [0, 255] on the device;
``utils.device.to_device`` turns them into the model's input as it does uint8 views.

BCL: with a ``RandAugConfig`` and strengths set on the sampler (``sampler.set_strengths(w)`` in the main
process before each epoch's pass), each batch also gets RandAugment after the SimCLR view at its items'
strengths; the strengths are read when the epoch's pass starts and travel with the batch keys, so worker
processes never use stale ones.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from data.datasets import ArrayImageDataset
from data.gpu_aug import AugConfig, two_views
from data.ood import IdOodDataset
from data.randaug import RandAugConfig
from data.sampler import EpochSampler, SeededViews


def is_array_dataset(dataset) -> bool:
    return isinstance(dataset, ArrayImageDataset)


def array_images(dataset: ArrayImageDataset, positions=None) -> torch.Tensor:
    """uint8 (n, 3, H, W) CPU tensor of the dataset's items at ``positions`` (all if None), read in sorted
    source order (a memory-mapped pool is read sequentially) and returned in the order asked."""
    source = dataset.indices if positions is None else dataset.indices[np.asarray(positions, dtype=np.int64)]
    order = np.argsort(source, kind="stable")
    pixels = np.empty((len(source),) + dataset.images.shape[1:], dtype=np.uint8)
    pixels[order] = dataset.images[source[order]]
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()


class DeviceBatches:
    """Iterates one epoch of ``(views, None, index, is_ood)`` like the per-image DataLoader, for
    ``IdOodDataset`` over array datasets; ``images`` is the ID set already on the device (kept across
    sampling rounds), the chosen OOD items are gathered and moved here.

    On the CPU with ``num_workers`` > 0, worker processes (one torch thread each) make the next batches'
    views while the model trains: on a shared 2-core CPU, two-thread ops in the training process waited on
    each other (the augmentation of a batch of 256 took 3.7 s with 2 threads, 0.3 s with 1, under load) and
    the model's step left no time for them in between. Their views come back as uint8 (whole levels:
    exact, a quarter of the bytes); views depend on (seed, epoch, step) only, so the workers change nothing.
    ``randaug``: RandAugment at the strengths set on the sampler (none while they are unset).
    """

    def __init__(self, data: IdOodDataset, id_images: torch.Tensor, sampler: EpochSampler, config: AugConfig,
                 seed: int, device: torch.device, num_workers: int = 0, randaug: RandAugConfig | None = None):
        self.sampler, self.config, self.seed, self.device = sampler, config, seed, device
        self.n_id = data.n_id
        self.ood_indices = torch.as_tensor(np.array(data.ood_indices), dtype=torch.int64)
        images = id_images
        if len(self.ood_indices):
            chosen = array_images(data.ood_pool, data.ood_indices).to(device)
            images = torch.cat([id_images, chosen])
        self.images = images
        self.keys = _Keys()
        # no reference back to self: the workers end with this object, not at the next garbage collection
        self.step_views = _StepViews(images, config, seed, sampler.rank, sampler.world_size,
                                     sampler.batches_per_epoch, randaug)
        self.loader = None
        if device.type == "cpu" and num_workers > 0:
            self.loader = DataLoader(self.step_views, batch_size=None, sampler=self.keys, num_workers=num_workers,
                                     persistent_workers=True, prefetch_factor=2)

    def __len__(self) -> int:
        return self.sampler.batches_per_epoch

    def __iter__(self):
        order, _ = self.sampler.epoch_order()
        b = self.sampler.local_batch_size
        is_ood = order >= self.n_id
        source = torch.where(is_ood, self.ood_indices[(order - self.n_id).clamp(min=0)] if len(self.ood_indices)
                             else order, order)
        gather = order.to(self.device)
        strengths = self.sampler.epoch_strengths()
        self.keys.keys = [(self.sampler.epoch, step, gather[step * b:(step + 1) * b].clone(),
                           None if strengths is None else strengths[step * b:(step + 1) * b].clone())
                          for step in range(len(self))]
        made = iter(self.loader) if self.loader is not None else map(self.step_views.views, self.keys.keys)
        for step, views in enumerate(made):
            sl = slice(step * b, (step + 1) * b)
            yield views, None, source[sl], is_ood[sl]


class _Keys(Sampler):
    """The (epoch, step, gather, strengths) keys of the current epoch; set by ``DeviceBatches`` before each pass, so
    persistent workers serve every epoch."""

    def __init__(self):
        self.keys = []

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self):
        return iter(self.keys)


class _StepViews(Dataset):
    """key (epoch, step, gather, strengths) -> both views (b, 2, 3, size, size) of the images at ``gather``
    (RandAugment at ``strengths`` unless None): float levels in the training process (``views``), uint8 from
    a worker process (``__getitem__``)."""

    def __init__(self, images, config, seed, rank, world_size, steps, randaug=None):
        self.images, self.config, self.seed = images, config, seed
        self.rank, self.world_size, self.steps, self.randaug = rank, world_size, steps, randaug

    def __len__(self) -> int:
        return self.steps

    def views(self, key) -> torch.Tensor:
        epoch, step, gather, strengths = key
        return two_views(self.images[gather], self.config, self.seed, epoch, step, self.rank, self.world_size,
                         strengths=strengths, randaug=self.randaug)

    def __getitem__(self, key) -> torch.Tensor:
        return self.views(key).to(torch.uint8)


class CroppedViewBatches:
    """File-list datasets: workers decode and crop both views (per-image seeds, as the per-image path);
    flip, jitter, grayscale and blur are batched on the device, then RandAugment (``randaug``, at the
    strengths set on the sampler) after the whole SimCLR view."""

    def __init__(self, data, crop_views, sampler: EpochSampler, config: AugConfig, seed: int,
                 device: torch.device, num_workers: int, randaug: RandAugConfig | None = None):
        self.sampler, self.config, self.seed, self.device, self.randaug = sampler, config, seed, device, randaug
        self.loader = DataLoader(SeededViews(data, crop_views), batch_size=sampler.local_batch_size,
                                 sampler=_CropKeys(sampler), num_workers=num_workers,
                                 pin_memory=device.type == "cuda", drop_last=True,
                                 persistent_workers=num_workers > 0)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        strengths = self.sampler.epoch_strengths()  # read as the pass starts, like the sampler's order
        b = self.sampler.local_batch_size
        for step, (crops, labels, index, is_ood) in enumerate(self.loader):
            views = two_views(crops.to(self.device, non_blocking=True), self.config, self.seed,
                              self.sampler.epoch, step, self.sampler.rank, self.sampler.world_size, crop=False,
                              strengths=None if strengths is None else strengths[step * b:(step + 1) * b],
                              randaug=self.randaug)
            yield views, labels, index, is_ood


class _CropKeys(Sampler):
    """The sampler's (index, seed) keys without strengths: the workers only crop, RandAugment runs batched."""

    def __init__(self, sampler: EpochSampler):
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        return (key[:2] for key in self.sampler)
