"""Embedding passes: the direct array path equals the per-item DataLoader path."""
import numpy as np
import torch

from data.datasets import ArrayImageDataset
from models import build_simclr
from utils.embed import embed_dataset, with_transform


def test_array_chunks_equal_the_dataloader_path():
    torch.manual_seed(0)
    images = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    data = ArrayImageDataset(images, indices=np.random.default_rng(1).permutation(40)[:30])
    model = build_simclr("res18", width=4, output_ch=8)
    direct = embed_dataset(model, data, torch.device("cpu"), batch_size=7)
    per_item = embed_dataset(model, with_transform(data, lambda x: x), torch.device("cpu"), batch_size=7)
    torch.testing.assert_close(direct, per_item)
    assert direct.shape == (30, 8)
