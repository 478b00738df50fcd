"""Embedding passes: the direct array path equals the per-item DataLoader path."""
import numpy as np
import pytest
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


@pytest.mark.cuda
def test_embeddings_on_the_accelerator_under_bf16_and_fp32_match_the_cpu(accelerator):
    """96 images through a width-16 ResNet-18 (eval mode), projections and backbone features. fp32 on the
    accelerator against the CPU: every row's cosine >= 0.999 (cuDNN's TF32 convolutions, PyTorch's
    default). bf16 autocast against fp32: every row's cosine >= 0.98, their mean >= 0.995. The per-item
    DataLoader path (pinned memory on CUDA) gives the direct array path's rows within 1e-5 (its batches
    arrive in another memory layout, which the CPU's convolutions may sum in another order)."""
    torch.manual_seed(0)
    images = np.random.default_rng(2).integers(0, 256, (96, 32, 32, 3), dtype=np.uint8)
    data = ArrayImageDataset(images)
    model = build_simclr("res18", width=16, output_ch=32)
    cpu = {p: embed_dataset(model, data, torch.device("cpu"), batch_size=32, projection=p) for p in (True, False)}
    model.to(accelerator)
    if accelerator.type == "cuda":
        model.to(memory_format=torch.channels_last)
    for projection in (True, False):
        fp32 = embed_dataset(model, data, accelerator, batch_size=32, projection=projection, precision="fp32")
        bf16 = embed_dataset(model, data, accelerator, batch_size=32, projection=projection, precision="bf16")
        assert fp32.device.type == accelerator.type and bf16.dtype == torch.float32
        assert (fp32.cpu() * cpu[projection]).sum(dim=1).min() >= 0.999
        cosine = (bf16 * fp32).sum(dim=1)
        assert cosine.min() >= 0.98 and cosine.mean() >= 0.995
        pinned = embed_dataset(model, with_transform(data, lambda x: x), accelerator, batch_size=32,
                               num_workers=1, projection=projection, precision="bf16")
        torch.testing.assert_close(pinned, bf16, rtol=0, atol=1e-5)
