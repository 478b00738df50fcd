"""The views: both SimCLR pipelines from one AugConfig per image kind, and the releases' evaluation view."""
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as v1
from torchvision.transforms import InterpolationMode, v2

from data import registry
from data.views import IMAGE_KIND, eval_transform, simclr_augmentation


@pytest.mark.parametrize("kind", ["cifar", "imagenet"])
def test_the_per_image_augmentation_is_built_from_the_kinds_config(kind):
    config = registry.aug_config(kind)
    crop, flip, jitter, gray, *blur = simclr_augmentation(kind).transforms
    assert (tuple(crop.size), tuple(crop.scale), tuple(crop.ratio), crop.interpolation) == (
        (config.size, config.size), config.scale, config.ratio, InterpolationMode.BICUBIC)
    assert flip.p == config.flip_p and jitter.p == config.jitter_p and gray.p == config.gray_p
    colour = jitter.transforms[0]
    assert (colour.brightness, colour.contrast, colour.saturation, colour.hue) == (
        (0.6, 1.4), (0.6, 1.4), (0.6, 1.4), (-0.1, 0.1))
    if config.blur_p:
        (blur,) = blur
        assert blur.p == config.blur_p and tuple(blur.transforms[0].kernel_size) == (config.blur_kernel,) * 2
        assert list(blur.transforms[0].sigma) == list(config.blur_sigma)
    else:
        assert blur == []


def test_image_kinds_follow_the_registry():
    assert {name: IMAGE_KIND[name] for name in IMAGE_KIND} == {d.name: d.image_kind for d in registry.datasets()}
    assert eval_transform("cifar") is None


def test_the_imagenet_evaluation_view_is_the_releases():
    """Resize(256) (bilinear, as PIL) then CenterCrop(224), as the releases' test transform on PIL images."""
    rng = np.random.default_rng(0)
    for height, width in [(300, 400), (500, 260), (256, 256)]:
        array = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        ours = eval_transform("imagenet")(torch.from_numpy(array).permute(2, 0, 1))
        release = np.asarray(v1.Compose([v1.Resize(256), v1.CenterCrop(224)])(Image.fromarray(array)))
        ours = ours.permute(1, 2, 0).numpy().astype(int)
        assert ours.shape == release.shape == (224, 224, 3)
        assert np.abs(ours - release).max() <= 1 and (ours != release).mean() < 0.05  # rounding only
        bicubic = v2.Compose([v2.Resize(256, interpolation=InterpolationMode.BICUBIC), v2.CenterCrop(224)])(
            torch.from_numpy(array).permute(2, 0, 1)).permute(1, 2, 0).numpy().astype(int)
        if min(height, width) != 256:  # the test tells the two resizes apart
            assert np.abs(bicubic - release).max() > 10
