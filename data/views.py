"""SimCLR augmentations, split into a per-sample step and a per-batch step.

Per sample (in DataLoader workers): uint8 CHW in, two augmented uint8 views out, stacked as (2, C, H, W).
Per batch (on the training device): uint8 -> the normalised float input (``utils.device.to_device``).
Images stay uint8 until the device, so workers and host-to-device copies move a quarter of the bytes.
The numbers of both augmentations are the image kind's ``AugConfig`` in ``data.registry``.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2

from data import registry
from data.randaug import RandAugConfig, randaugment_image, sample_two_view_params


class _ImageKindByDataset(Mapping):
    """dataset name -> its image kind ("cifar" or "imagenet"), read from the registry at each lookup."""

    def __getitem__(self, name: str) -> str:
        entry = registry.find_dataset(name)
        if entry is None:
            raise KeyError(name)
        return entry.image_kind

    def __iter__(self):
        return iter(registry.dataset_names())

    def __len__(self) -> int:
        return len(registry.dataset_names())


IMAGE_KIND = _ImageKindByDataset()


def simclr_augmentation(kind: str) -> v2.Compose:
    """The papers' SimCLR view from the kind's AugConfig: RandomResizedCrop (bicubic), flip, colour jitter,
    grayscale, and Gaussian blur where the config has it (CIFAR: 32 px, scale 0.1-1, no blur; ImageNet:
    224 px, scale 0.08-1, blur p 0.5)."""
    c = registry.aug_config(kind)
    ops = [v2.RandomResizedCrop(c.size, scale=c.scale, ratio=c.ratio, interpolation=InterpolationMode.BICUBIC),
           v2.RandomHorizontalFlip(p=c.flip_p), v2.RandomApply([v2.ColorJitter(*c.jitter)], p=c.jitter_p),
           v2.RandomGrayscale(p=c.gray_p)]
    if c.blur_p > 0:
        ops.append(v2.RandomApply([v2.GaussianBlur(kernel_size=c.blur_kernel, sigma=c.blur_sigma)], p=c.blur_p))
    return v2.Compose(ops)


def simclr_crop(kind: str) -> v2.Compose:
    """Only the random resized crop of ``simclr_augmentation`` (workers' part of the batched path for
    file-list data; the rest runs batched on the device)."""
    return v2.Compose(simclr_augmentation(kind).transforms[:1])


def eval_transform(kind: str):
    """Deterministic evaluation view: identity at 32x32; for ImageNet-size data the releases' test transform,
    Resize(256) (bilinear, antialiased as PIL) then CenterCrop(224)."""
    k = registry.image_kind(kind)
    if k.eval_resize is None:
        return None
    return v2.Compose([v2.Resize(k.eval_resize, interpolation=InterpolationMode.BILINEAR, antialias=True),
                       v2.CenterCrop(k.eval_crop)])


class TwoViews:
    """Apply one random augmentation twice to the same image; returns a (2, C, H, W) uint8 tensor.

    With ``randaug`` (BCL), a call with a strength w adds RandAugment after each whole view (blur included
    for ImageNet-size views): both SimCLR views are made first, as without a strength, then the two views'
    RandAugment parameters are drawn from the same (seeded) default generator, so w = 0 gives exactly the
    views of a call without a strength."""

    def __init__(self, augmentation, randaug: RandAugConfig | None = None):
        self.augmentation, self.randaug = augmentation, randaug

    def __call__(self, image: torch.Tensor, strength: float | None = None) -> torch.Tensor:
        views = [self.augmentation(image), self.augmentation(image)]
        if strength is not None:
            if self.randaug is None:
                raise ValueError("a RandAugment strength was given to views made without a RandAugConfig")
            params = sample_two_view_params(torch.tensor([strength], dtype=torch.float64), self.randaug, None)
            views = [randaugment_image(view, params[k]) for k, view in enumerate(views)]
        return torch.stack(views)
