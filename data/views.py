"""SimCLR augmentations, split into a per-sample step and a per-batch step.

Per sample (in DataLoader workers): uint8 CHW in, two augmented uint8 views out, stacked as (2, C, H, W).
Per batch (on the training device): uint8 -> the normalised float input (``utils.device.to_device``).
Images stay uint8 until the device, so workers and host-to-device copies move a quarter of the bytes.
"""
from __future__ import annotations

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2

from data.randaug import RandAugConfig, randaugment_image, sample_two_view_params

# Input resolution and the kind of augmentation each dataset uses.
IMAGE_KIND = {"synthetic": "cifar", "cifar10": "cifar", "cifar100": "cifar",
              "imagenet100": "imagenet", "places": "imagenet"}


def _colour(jitter_p: float = 0.8, gray_p: float = 0.2) -> list:
    return [v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=jitter_p), v2.RandomGrayscale(p=gray_p)]


def simclr_augmentation(kind: str) -> v2.Compose:
    """The papers' SimCLR view: CIFAR RandomResizedCrop(32, scale 0.1-1, bicubic), flip, colour jitter
    (p 0.8), grayscale (p 0.2); ImageNet crop 224 (scale 0.08-1), the same, plus Gaussian blur (p 0.5)."""
    if kind == "cifar":
        return v2.Compose([v2.RandomResizedCrop(32, scale=(0.1, 1.0), interpolation=InterpolationMode.BICUBIC),
                           v2.RandomHorizontalFlip(), *_colour()])
    if kind == "imagenet":
        return v2.Compose([v2.RandomResizedCrop(224, scale=(0.08, 1.0), interpolation=InterpolationMode.BICUBIC),
                           v2.RandomHorizontalFlip(), *_colour(),
                           v2.RandomApply([v2.GaussianBlur(kernel_size=23, sigma=(0.1, 2.0))], p=0.5)])
    raise ValueError(f"unknown image kind {kind!r}")


def simclr_crop(kind: str) -> v2.Compose:
    """Only the random resized crop of ``simclr_augmentation`` (workers' part of the batched path for
    file-list data; the rest runs batched on the device)."""
    return v2.Compose(simclr_augmentation(kind).transforms[:1])


def eval_transform(kind: str):
    """Deterministic evaluation view: identity at 32x32, resize 256 + centre crop 224 for ImageNet-size data."""
    if kind == "cifar":
        return None
    if kind == "imagenet":
        return v2.Compose([v2.Resize(256, interpolation=InterpolationMode.BICUBIC), v2.CenterCrop(224)])
    raise ValueError(f"unknown image kind {kind!r}")


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
