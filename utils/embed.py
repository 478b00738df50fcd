"""Embeddings of a whole dataset, computed in shards across ranks and gathered back in dataset order."""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from data.views import to_device
from utils import distributed
from utils.precision import DEFAULT_PRECISION, autocast


def with_transform(dataset, transform):
    """A shallow copy of ``dataset`` with another per-item transform (the images are shared, not copied)."""
    clone = copy.copy(dataset)
    clone.transform = transform
    return clone


@torch.no_grad()
def embed_dataset(model: torch.nn.Module, dataset, device: torch.device, batch_size: int = 512,
                  num_workers: int = 0, projection: bool = True,
                  precision: str = DEFAULT_PRECISION) -> torch.Tensor:
    """L2-normalised embeddings (N, d) of every item of ``dataset``, identical on every rank.

    Rank r embeds the r-th of ``world_size`` contiguous shards; rows are then placed by their dataset index,
    so nothing depends on padding or on how the shards fall. ``projection`` picks the head's output (else
    the backbone features); ``precision`` is that of ``utils.precision`` (bf16 autocast on CUDA, or fp32).
    The model is put in eval mode and restored afterwards.
    """
    net = model.module if hasattr(model, "module") else model
    was_training = net.training
    net.eval()
    shard = np.array_split(np.arange(len(dataset)), distributed.world_size())[distributed.rank()]
    loader = DataLoader(Subset(dataset, shard.tolist()), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, pin_memory=device.type == "cuda")
    rows = []
    for batch in loader:
        x = to_device(batch[0], device)
        with autocast(device, precision):
            z = net(x) if projection else net.features(x)
        rows.append(F.normalize(z.float(), dim=1))
    dim = rows[0].shape[1] if rows else _output_dim(net, projection)
    local = torch.cat(rows) if rows else torch.empty(0, dim, device=device)
    gathered = distributed.all_gather_variable(local)
    order = distributed.all_gather_variable(torch.as_tensor(shard, dtype=torch.int64, device=device))
    out = torch.empty(len(dataset), dim, device=device)
    out[order] = gathered
    net.train(was_training)
    return out


def _output_dim(net, projection: bool) -> int:
    return net.fc.fc2.out_features if projection else net.feature_dim
