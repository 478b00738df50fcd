"""Embeddings of a whole dataset, computed in shards across ranks and gathered back in dataset order."""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from utils.device import to_device
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
    rows = []
    for batch in _batches(dataset, shard, batch_size, num_workers, device):
        x = to_device(batch, device)
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


def _batches(dataset, shard: np.ndarray, batch_size: int, num_workers: int, device: torch.device):
    """uint8 batches of the shard's images: sliced straight out of the (memory-mapped) array for an array
    dataset with no per-item transform (no DataLoader, no per-item copies), else from a DataLoader."""
    images, indices = getattr(dataset, "images", None), getattr(dataset, "indices", None)
    if isinstance(images, np.ndarray) and indices is not None and getattr(dataset, "transform", None) is None:
        for start in range(0, len(shard), batch_size):
            source = indices[shard[start:start + batch_size]]
            yield torch.from_numpy(np.ascontiguousarray(images[source])).permute(0, 3, 1, 2)
        return
    loader = DataLoader(Subset(dataset, shard.tolist()), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, pin_memory=device.type == "cuda")
    for batch in loader:
        yield batch[0]


def _output_dim(net, projection: bool) -> int:
    return net.fc.fc2.out_features if projection else net.feature_dim
