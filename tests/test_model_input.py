"""One image, one model input: every path (per-image and batched training views, file-list batched views,
probes, embedding passes, MAK inference) feeds the model (x / 255 - ImageNet mean) / ImageNet std."""
from argparse import Namespace

import numpy as np
import pytest
import torch

import infer_features
import train_linear
from data.datasets import ArrayImageDataset
from data.device_loader import CroppedViewBatches, DeviceBatches, array_images
from data.gpu_aug import AugConfig
from data.ood import IdOodDataset
from data.sampler import EpochSampler
from data.views import TwoViews
from methods import Batch, SimCLR
from models import build_simclr
from utils.device import IMAGENET_MEAN, IMAGENET_STD, to_device
from utils.embed import embed_dataset, with_transform

CPU = torch.device("cpu")
# scale and ratio 1, no flip, jitter or grayscale: the batched augmentation returns the image itself
IDENTITY = AugConfig(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, gray_p=0.0)


def expected(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    return (images.double() / 255 - mean.double()) / std.double()


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)


@pytest.fixture
def model():
    torch.manual_seed(0)
    net = build_simclr("res18", width=4, output_ch=8)
    net.seen = []
    net.conv1.register_forward_pre_hook(lambda module, args: net.seen.append(args[0].detach().clone()))
    return net


def nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2)


def test_to_device_normalises_uint8_and_float_levels_alike(images):
    x = nchw(images)
    out = to_device(x, CPU)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), expected(x), rtol=0, atol=1e-5)
    assert torch.equal(to_device(x.float(), CPU), out)
    means = out.mean(dim=(0, 2, 3))  # uniform levels: mean 0.5 -> (0.5 - m) / s
    torch.testing.assert_close(means, (0.5 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD),
                               rtol=0, atol=0.05)


def test_training_views_per_image_and_batched_feed_the_same_input(images, model):
    x = nchw(images)
    method = SimCLR(model, temperature=0.2)
    step = lambda views: method.step(Batch(views, torch.arange(len(views)), torch.zeros(len(views), dtype=torch.bool)))
    step(torch.stack([x, x], dim=1))  # per-image: uint8 views
    data = IdOodDataset(ArrayImageDataset(images))
    sampler = EpochSampler(len(data), 8, seed=1)
    sampler.set_epoch(1)
    views, _, index, _ = next(iter(DeviceBatches(data, array_images(data.id_set), sampler, IDENTITY, 1, CPU)))
    step(views)  # batched: float level views on the device
    cropped = CroppedViewBatches(data, TwoViews(lambda image: image), sampler, IDENTITY, 1, CPU, num_workers=0)
    views, _, index2, _ = next(iter(cropped))
    step(views)  # file-list path: worker crops, batched rest
    reference = torch.cat([to_device(x, CPU)] * 2)
    assert torch.equal(model.seen[0], reference)
    assert torch.equal(model.seen[1], torch.cat([reference[:8][index]] * 2))
    assert torch.equal(model.seen[2], torch.cat([reference[:8][index2]] * 2))
    torch.testing.assert_close(model.seen[0].double(), torch.cat([expected(x)] * 2), rtol=0, atol=1e-5)


def test_embeddings_probes_and_mak_inference_feed_the_same_input(images, model):
    x = nchw(images)
    data = ArrayImageDataset(images, labels=np.arange(8))
    embed_dataset(model, data, CPU, batch_size=8)  # direct array slices
    embed_dataset(model, with_transform(data, lambda image: image), CPU, batch_size=8)  # DataLoader
    train_linear.extract(model, data, CPU, batch_size=8, num_workers=0)  # probe features
    args = Namespace(seed=0, batch_size=8, num_workers=0, inference_noAug=True, precision="fp32")
    for batches in (infer_features.array_batches(data, 0, 8, 0, 0, args, CPU),  # MAK inference, array slices
                    infer_features.item_batches(data, 0, 8, 0, args, CPU, infer_features.unchanged)):  # files
        infer_features.infer_chunk(model, batches, args, CPU)
    reference = to_device(x, CPU)
    assert len(model.seen) == 5
    for seen in model.seen:
        assert torch.equal(seen, reference)


@pytest.mark.cuda
def test_model_input_from_pinned_memory_in_channels_last_on_the_accelerator(accelerator, images, monkeypatch):
    """uint8 and float-level batches, from pinned memory on CUDA (moved with non_blocking), give the CPU's
    model input within 1e-6 (the same multiply-add, perhaps fused), in channels_last on CUDA; a
    channels_last model on it gives the CPU model's output with cosine >= 0.9999 per row (TF32 off)."""
    x = nchw(images).contiguous()
    cpu_input = to_device(x, CPU)
    for batch in (x, x.float()):
        if accelerator.type == "cuda":
            batch = batch.pin_memory()
            assert batch.is_pinned()
        out = to_device(batch, accelerator)
        assert out.device.type == accelerator.type and out.dtype == torch.float32
        if accelerator.type == "cuda":
            assert out.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(out.cpu(), cpu_input, rtol=0, atol=1e-6)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(0)
    net = build_simclr("res18", width=8, output_ch=16).eval()
    with torch.no_grad():
        reference = net(cpu_input)
        net.to(accelerator)
        if accelerator.type == "cuda":
            net.to(memory_format=torch.channels_last)
        ours = net(to_device(x, accelerator)).cpu()
    cosine = torch.nn.functional.cosine_similarity(ours, reference, dim=1)
    assert cosine.min() >= 0.9999, cosine.min()
