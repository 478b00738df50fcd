"""One image, one model input: every path (per-image and batched training views, file-list batched views,
probes, embedding passes, MAK inference) feeds the model (x / 255 - ImageNet mean) / ImageNet std."""
from argparse import Namespace

import numpy as np
import pytest
import torch
from PIL import Image

import infer_features
import train_linear
import train_simclr
from data.datasets import ArrayImageDataset, ImageListDataset
from data.device_loader import CroppedViewBatches, DeviceBatches, array_images
from data.gpu_aug import AugConfig, aug_config
from data.ood import IdOodDataset
from data.sampler import EpochSampler, SeededViews
from data.views import TwoViews, simclr_crop
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
    args = train_simclr.parse_args(["--temperature", "0.2"])
    train_simclr.contrastive_loss(model, torch.stack([x, x], dim=1), args, CPU)  # per-image: uint8 views
    data = IdOodDataset(ArrayImageDataset(images))
    sampler = EpochSampler(len(data), 8, seed=1)
    sampler.set_epoch(1)
    views, _, index, _ = next(iter(DeviceBatches(data, array_images(data.id_set), sampler, IDENTITY, 1, CPU)))
    train_simclr.contrastive_loss(model, views, args, CPU)  # batched: float level views on the device
    cropped = CroppedViewBatches(data, TwoViews(lambda image: image), sampler, IDENTITY, 1, CPU, num_workers=0)
    views, _, index2, _ = next(iter(cropped))
    train_simclr.contrastive_loss(model, views, args, CPU)  # file-list path: worker crops, batched rest
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


@pytest.fixture
def image_root(tmp_path):
    rng = np.random.default_rng(0)
    lines = []
    for i, size in enumerate([(40, 30), (25, 50), (64, 64), (33, 47)]):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png {i % 2}")
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_file_list_batched_path_crops_in_workers_and_augments_on_the_device(image_root):
    data = IdOodDataset(ImageListDataset(image_root, image_root / "train.txt"))
    crop = TwoViews(simclr_crop("imagenet"))
    sampler = EpochSampler(len(data), 2, seed=3)
    sampler.set_epoch(1)
    config = aug_config("imagenet")
    batches = list(CroppedViewBatches(data, crop, sampler, config, 3, CPU, num_workers=0))
    assert len(batches) == 2
    views, labels, index, is_ood = batches[0]
    assert views.shape == (2, 2, 3, 224, 224) and views.dtype == torch.float32
    assert torch.equal(views, views.round()) and views.min() >= 0 and views.max() <= 255
    assert labels.tolist() == [int(i) % 2 for i in index] and not is_ood.any()
    # the workers' crops are those of the per-image path (same item seeds); the device adds the rest
    order, seeds = sampler.epoch_order()
    crops = torch.stack([SeededViews(data, crop)[(int(i), int(s))][0] for i, s in zip(order[:2], seeds[:2])])
    assert index.tolist() == order[:2].tolist()
    plain = list(CroppedViewBatches(data, crop, sampler, IDENTITY, 3, CPU, num_workers=0))[0][0]
    assert torch.equal(plain, crops.float())
    assert not torch.equal(views, plain)  # jitter, grayscale, flip or blur changed something
    again = list(CroppedViewBatches(data, crop, sampler, config, 3, CPU, num_workers=0))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))
