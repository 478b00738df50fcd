"""Arithmetic precision of the encoder's forward passes (pre-training, embeddings, probes).

``bf16``: the forward runs under bfloat16 autocast on CUDA (convolutions and matmuls in bf16, BatchNorm and
reductions in float32); the losses, similarities and tailness scores are computed in float32 on the
embeddings cast back (``z.float()``). ``fp32``: no autocast, as in the papers' released code. On the CPU both
are float32: autocast is never enabled there, so a CPU run gives the same numbers with either value.
"""
from __future__ import annotations

import torch

PRECISIONS = ("bf16", "fp32")
# bf16 by default: on GPUs with bf16 tensor cores it is the usual choice for speed and memory, it needs no loss
# scaling, and every sensitive step (NT-Xent's exp(s / t), the softmax tailness, k-means) stays float32.
# --precision fp32 reproduces the papers' arithmetic exactly (TF32 convolutions aside, PyTorch's default).
DEFAULT_PRECISION = "bf16"
PRECISION_HELP = ("forward-pass precision on CUDA: bf16 autocast (faster) or fp32 (the papers' arithmetic); "
                  "the CPU always computes in fp32")


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The autocast context of ``precision`` on ``device``: enabled only for bf16 on CUDA."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=precision == "bf16" and device.type == "cuda")
