"""The one step from image levels to the model's input, on the training device.

Every path that feeds a model goes through ``to_device``: the per-image and batched training views, the
probes, the embedding passes and the MAK inference. So one image gives one input tensor everywhere.
"""
from __future__ import annotations

from functools import lru_cache

import torch

# The papers normalise inputs with the ImageNet statistics (of images in [0, 1]), CIFAR runs included.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_device(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Image levels (..., 3, H, W) -> the model's input on ``device``: float32 (x / 255 - mean) / std per
    channel, computed as x * (1 / (255 std)) - mean / std; channels_last on CUDA.

    ``images`` holds levels in [0, 255]: uint8 (moved as uint8, a quarter of the bytes, then converted) or
    float (the batched augmentation's views, whole levels already on the device)."""
    images = images.to(device, non_blocking=True)
    scale, shift = _scale_shift(images.device)
    images = torch.addcmul(shift, images.float(), scale)
    if device.type == "cuda" and images.dim() == 4:
        images = images.contiguous(memory_format=torch.channels_last)
    return images


@lru_cache(maxsize=None)
def _scale_shift(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(3, 1, 1) float32 1 / (255 std) and -mean / std on ``device``, computed once in float64."""
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64)
    scale = (1.0 / (255.0 * std)).float()[:, None, None]
    shift = (-torch.tensor(IMAGENET_MEAN, dtype=torch.float64) / std).float()[:, None, None]
    return scale.to(device), shift.to(device)


def pick_device(name: str) -> torch.device:
    """``--device`` auto / cuda / cpu -> a device; ValueError for cuda on a machine without one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available here (torch.cuda.is_available() is False); "
                         "use --device cpu or auto")
    return torch.device(name)
