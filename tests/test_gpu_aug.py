"""The batched augmentation: each op against torchvision's functional op on the same image, the parameter
distributions against the configured ranges, repeatability and the rank slicing.

Tolerance of the op comparisons: at most 1 grey level per pixel, on at most 2% of the pixels (float vs the
fixed-point uint8 arithmetic of torchvision's CPU kernels); flip, brightness, contrast, hue and grayscale
are exact on these inputs. A chain of four jitter ops and grayscale: at most 3 levels on at most 5%.
"""
import math

import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from data import gpu_aug as A


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=g)


def assert_close_levels(ours: torch.Tensor, ref: torch.Tensor, frac: float = 0.02, levels: int = 1):
    diff = (ours - ref.float()).abs()
    assert diff.max() <= levels, diff.max()
    assert (diff > 0).float().mean() <= frac


BOXES = torch.tensor([[0, 0, 32, 32], [3, 5, 10, 20], [10, 2, 22, 17], [0, 0, 5, 7], [1, 1, 31, 30], [20, 20, 12, 12]])


@pytest.mark.parametrize("flip", [False, True])
def test_crop_resize_and_flip_equal_torchvision(images, flip):
    out = A.resized_crop(images, BOXES, 32, torch.full((6,), flip))
    for k, (t, l, h, w) in enumerate(BOXES.tolist()):
        ref = TF.resized_crop(images[k], t, l, h, w, [32, 32], interpolation=InterpolationMode.BICUBIC,
                              antialias=True)
        assert_close_levels(out[k], TF.horizontal_flip(ref) if flip else ref)


def test_downscaling_crop_equals_torchvision_antialiased_resize():
    big = torch.randint(0, 256, (2, 3, 90, 70), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    boxes = torch.tensor([[5, 3, 80, 60], [0, 0, 90, 70]])
    out = A.resized_crop(big, boxes, 24)
    for k, (t, l, h, w) in enumerate(boxes.tolist()):
        assert_close_levels(out[k], TF.resized_crop(big[k], t, l, h, w, [24, 24],
                                                    interpolation=InterpolationMode.BICUBIC, antialias=True))


@pytest.mark.parametrize("op,fn", [(0, TF.adjust_brightness), (1, TF.adjust_contrast), (2, TF.adjust_saturation)])
@pytest.mark.parametrize("factor", [0.6, 0.83, 1.0, 1.4])
def test_each_jitter_factor_equals_torchvision(images, op, fn, factor):
    factors = torch.tensor([[1.0, 1.0, 1.0, 0.0]]).repeat(6, 1)
    factors[:, op] = factor
    order = torch.tensor([[op] + [o for o in range(4) if o != op]]).repeat(6, 1)  # the others are identities
    out = A.colour_jitter(images.float(), torch.ones(6, dtype=torch.bool), factors, order)
    f32 = torch.tensor(factor).item()  # ColorJitter draws its factors as float32
    assert_close_levels(out, torch.stack([fn(im, f32) for im in images]))


@pytest.mark.parametrize("shift", [-0.1, 0.037, 0.1])
def test_hue_equals_torchvision(images, shift):
    out = A.adjust_hue(images.float(), torch.full((6,), shift))
    assert torch.equal(out, torch.stack([TF.adjust_hue(im, shift) for im in images]).float())


def test_jitter_order_and_grayscale_equal_torchvision_composition(images):
    factors = torch.tensor([[1.3, 0.7, 1.2, 0.08], [0.6, 1.4, 0.65, -0.1]]).repeat(3, 1)
    order = torch.tensor([[3, 1, 0, 2], [2, 0, 3, 1]]).repeat(3, 1)
    apply = torch.tensor([True, True, True, True, False, False])
    out = A.grayscale(A.colour_jitter(images.float(), apply, factors, order), torch.tensor([0, 1, 0, 0, 0, 1]) > 0)
    fns = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    for k in range(6):
        ref = images[k]
        if apply[k]:
            for op in order[k].tolist():
                ref = fns[op](ref, factors[k, op].item())
        if k in (1, 5):
            ref = TF.rgb_to_grayscale(ref, 3)
        assert_close_levels(out[k], ref, frac=0.05, levels=3)  # one-level differences compound over 4 ops


@pytest.mark.parametrize("sigma", [0.1, 0.7, 2.0])
def test_blur_equals_torchvision(sigma):
    x = torch.randint(0, 256, (2, 3, 40, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    out = A.gaussian_blur(x.float(), torch.tensor([True, False]), torch.full((2,), sigma), 23)
    assert_close_levels(out[0], TF.gaussian_blur(x[0], [23, 23], [sigma, sigma]))
    assert torch.equal(out[1], x[1].float())


def test_parameter_distributions_match_the_configured_ranges():
    n, cfg = 20000, A.aug_config("cifar")
    p = A.sample_params(n, 32, 32, cfg, torch.Generator().manual_seed(3))
    top, left, h, w = p.boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 32).all()
    area = (h * w).float() / 1024
    # rounding to whole pixels widens the ranges a little: area by ~(1 +- 1/sqrt(area*1024))^2
    assert area.min() >= 0.1 * 0.8 and area.max() <= 1.0
    ratio = (w / h).float()
    assert ratio.min() >= 0.75 * 0.8 and ratio.max() <= 4 / 3 * 1.25
    # most first draws fit at 32 px; the mean area is below the uniform mean 0.55 as large, off-ratio
    # draws are rejected; log-ratio is symmetric
    assert 0.4 < area.mean() < 0.56
    assert abs(ratio.log().mean()) < 0.01
    for rate, expected in [(p.flip, 0.5), (p.jitter, 0.8), (p.gray, 0.2), (p.blur, 0.0)]:
        assert abs(rate.float().mean() - expected) < 0.015  # > 4 standard errors at n = 20000
    for k, (lo, hi) in enumerate([(0.6, 1.4)] * 3 + [(-0.1, 0.1)]):
        f = p.factors[:, k]
        assert f.min() >= lo and f.max() <= hi and abs(f.mean() - (lo + hi) / 2) < 0.01 * (hi - lo)
    assert (p.order.sort(dim=1).values == torch.arange(4)).all()  # permutations
    first = torch.bincount(p.order[:, 0], minlength=4).float() / n
    assert (first - 0.25).abs().max() < 0.015
    blur = A.sample_params(n, 224, 224, A.aug_config("imagenet"), torch.Generator().manual_seed(4))
    assert abs(blur.blur.float().mean() - 0.5) < 0.015
    assert blur.sigma.min() >= 0.1 and blur.sigma.max() <= 2.0
    assert ((blur.boxes[:, 2] * blur.boxes[:, 3]).float() / 224**2).min() >= 0.08 * 0.95


def test_fallback_is_the_central_crop_clipped_to_the_ratio():
    # a 4:1 image: no draw with aspect <= 4/3 and area >= 0.9 fits, so every box is the fallback
    boxes = A.sample_crop_boxes(50, 8, 32, (0.9, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(5))
    assert (boxes == torch.tensor([0, 10, 8, 11])).all()


def test_same_seed_same_views_and_ranks_see_slices_of_the_global_batch(images):
    cfg = A.aug_config("cifar")
    one = A.two_views(images, cfg, seed=1, epoch=2, step=3)
    assert torch.equal(one, A.two_views(images, cfg, seed=1, epoch=2, step=3))
    assert not torch.equal(one, A.two_views(images, cfg, seed=1, epoch=2, step=4))
    assert one.shape == (6, 2, 3, 32, 32) and one.min() >= 0 and one.max() <= 255
    halves = [A.two_views(images[r * 3:(r + 1) * 3], cfg, 1, 2, 3, rank=r, world_size=2) for r in range(2)]
    assert torch.equal(torch.cat(halves), one)


def test_precropped_views_get_the_rest_of_the_pipeline(images):
    cfg = A.aug_config("imagenet")
    pairs = torch.stack([images, images.flip(-1)], dim=1)
    out = A.two_views(pairs, cfg, seed=0, epoch=1, step=0, crop=False)
    assert out.shape == pairs.shape and out.dtype == torch.float32
    assert not math.isnan(out.sum().item())


def assert_levels_agree(ours: torch.Tensor, cpu: torch.Tensor, levels: int = 3, frac: float = 0.01):
    """Accelerator vs CPU on the same input and parameters: every op ends on whole levels, so float
    reductions in another order move a value only where it sat on a rounding boundary; such a 1-level step
    can grow through a later contrast or saturation factor (<= 1.4) and hue, hence a few levels, rarely."""
    diff = (ours.cpu() - cpu).abs()
    assert diff.max() <= levels, diff.max()
    assert (diff > 0).float().mean() <= frac, (diff > 0).float().mean()


@pytest.mark.cuda
@pytest.mark.parametrize("kind,shape", [("cifar", (32, 32)), ("imagenet", (72, 96))])
def test_batched_augmentation_on_the_accelerator_equals_the_cpu(accelerator, kind, shape):
    """Both views of 24 images, the same parameters (drawn on the CPU): crop and resize, flip, jitter in each
    image's order, grayscale, and for ImageNet-size views the blur. At most 3 levels apart on at most 1% of
    the values (assert_levels_agree)."""
    cfg = A.aug_config(kind)
    x = torch.randint(0, 256, (24, 3) + shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(6))
    cpu = A.two_views(x, cfg, seed=3, epoch=2, step=5)
    ours = A.two_views(x.to(accelerator), cfg, seed=3, epoch=2, step=5)
    assert ours.device.type == accelerator.type and ours.dtype == torch.float32
    assert_levels_agree(ours, cpu)
    # each op alone, on the views' own inputs
    params = A.sample_params(24, *shape, cfg, torch.Generator().manual_seed(7))
    crop_cpu = A.resized_crop(x, params.boxes, cfg.size, params.flip)
    crop = A.resized_crop(x.to(accelerator), params.boxes, cfg.size, params.flip.to(accelerator))
    assert_levels_agree(crop, crop_cpu, levels=1)
    jitter_cpu = A.colour_jitter(crop_cpu, params.jitter, params.factors, params.order)
    jitter = A.colour_jitter(crop_cpu.to(accelerator), params.jitter.to(accelerator),
                             params.factors.to(accelerator), params.order.to(accelerator))
    assert_levels_agree(jitter, jitter_cpu)
    blur_cpu = A.gaussian_blur(crop_cpu, params.blur | True, params.sigma, cfg.blur_kernel)
    blur = A.gaussian_blur(crop_cpu.to(accelerator), (params.blur | True).to(accelerator), params.sigma, cfg.blur_kernel)
    assert_levels_agree(blur, blur_cpu, levels=1)
