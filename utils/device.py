"""Moving image batches to the training device (shared by data/, the training scripts and utils/embed.py)."""
from __future__ import annotations

import torch


def to_device(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 batch (..., C, H, W) -> float32 in [0, 1] on ``device`` (channels_last on CUDA). A float batch
    (the batched augmentation's views) is taken as already in [0, 1] and only moved."""
    images = images.to(device, non_blocking=True)
    if not images.is_floating_point():
        images = images.float().div_(255)
    if device.type == "cuda" and images.dim() == 4:
        images = images.contiguous(memory_format=torch.channels_last)
    return images
