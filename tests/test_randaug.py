"""BCL's RandAugment: the op table against the release's list, the per-image path against the release's PIL
calls, the batched path against the per-image path op by op (exact: the same arithmetic as Pillow's C
code, see data/randaug.py), the parameter distributions of the BCL-I and BCL-D rules, and the pipelines:
strengths carried with the keys (per-image workers, batched workers, file-list crops, ranks), strength 0
and no strengths giving today's SimCLR views bit for bit."""
import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps
from torch.utils.data import DataLoader

from data import randaug as R
from data.datasets import ArrayImageDataset
from data.device_loader import CroppedViewBatches, DeviceBatches, array_images
from data.gpu_aug import AugConfig, augment, aug_config, batch_generator, sample_params, two_views
from data.ood import IdOodDataset
from data.sampler import EpochSampler, SeededViews
from data.views import TwoViews, simclr_augmentation, simclr_crop
from tests.multiprocess import run_processes

CPU = torch.device("cpu")
# the ImageNet view (blur included) at 96 px: whole batches stay quick; 224 px is tested op by op and on
# the file-list path
IMAGENET_96 = AugConfig(size=96, scale=(0.08, 1.0), blur_p=0.5)


def varied_images(n: int, size: int, seed: int) -> torch.Tensor:
    """uint8 (n, 3, size, size) cycling through kinds that exercise the ops' edge cases: noise, smooth
    colour waves, low-contrast noise, a constant image, a nearly constant one (equalize's step 0), grey."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    out = []
    for k in range(n):
        kind = k % 6
        if kind == 0:
            im = torch.randint(0, 256, (3, size, size), generator=g).float()
        elif kind == 1:
            phase = torch.rand(3, 1, 1, generator=g) * 6
            im = 128 + 110 * torch.sin(xx / (size / 6) + phase) * torch.cos(yy / (size / 5) - phase)
        elif kind == 2:
            im = 60 + torch.randint(0, 40, (3, size, size), generator=g).float()
        elif kind == 3:
            im = torch.full((3, size, size), float(torch.randint(0, 256, (1,), generator=g)))
        elif kind == 4:
            im = torch.full((3, size, size), 200.0)
            im[:, :2, :3] = 10.0  # fewer than 255 pixels below the top level
        else:
            im = torch.randint(0, 256, (1, size, size), generator=g).float().expand(3, -1, -1)
        out.append(im.round().clamp(0, 255).to(torch.uint8))
    return torch.stack(out)


def params_for(op: str, n: int, seed: int, k: int = 1) -> R.RandAugParams:
    """n views whose every slot applies ``op`` with a value spread over the op's range and random signs."""
    g = torch.Generator().manual_seed(seed)
    p = R.sample_randaug_params(torch.ones(n), R.RandAugConfig(k=k), g)
    _, lo, hi = R.OPS[R.OP_ID[op]]
    p.op[:] = R.OP_ID[op]
    p.value = lo + (hi - lo) * torch.rand(n, k, dtype=torch.float64, generator=g)
    return p


def to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(image.permute(1, 2, 0).numpy())


def from_pil(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)


def test_op_table_is_the_releases_list():
    assert R.OPS == (("ShearX", 0.0, 0.6), ("ShearY", 0.0, 0.6), ("TranslateX", 0.0, 0.66),
                     ("TranslateY", 0.0, 0.66), ("Rotate", 0.0, 60.0), ("AutoContrast", 0.0, 1.0),
                     ("Invert", 0.0, 1.0), ("Equalize", 0.0, 1.0), ("Solarize", 0.0, 110.0),
                     ("Posterize", 4.0, 8.0), ("Contrast", 0.1, 1.9), ("Color", 0.1, 1.9),
                     ("Brightness", 0.1, 1.9), ("Sharpness", 0.1, 1.9), ("Cutout", 0.0, 0.4))
    assert R.SIGNED == ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


def release_op(img: Image.Image, name: str, v: float, sign: float, u) -> Image.Image:
    """What the release's op does, written out independently of data/randaug.py (sign, scaling to pixels,
    cutout geometry) with numpy where that is simpler than PIL."""
    w, h = img.size
    affine = Image.Transform.AFFINE
    if name == "ShearX":
        return img.transform((w, h), affine, (1, sign * v, 0, 0, 1, 0))
    if name == "ShearY":
        return img.transform((w, h), affine, (1, 0, 0, sign * v, 1, 0))
    if name == "TranslateX":
        return img.transform((w, h), affine, (1, 0, sign * v * w, 0, 1, 0))
    if name == "TranslateY":
        return img.transform((w, h), affine, (1, 0, 0, 0, 1, sign * v * h))
    if name == "Rotate":
        return img.rotate(sign * v)
    a = np.array(img).astype(np.int64)
    if name == "AutoContrast":
        return ImageOps.autocontrast(img)
    if name == "Invert":
        return Image.fromarray((255 - a).astype(np.uint8))
    if name == "Equalize":
        return ImageOps.equalize(img)
    if name == "Solarize":
        return Image.fromarray(np.where(a < v, a, 255 - a).astype(np.uint8))
    if name == "Posterize":
        bits = max(1, int(v))
        return Image.fromarray((a >> (8 - bits) << (8 - bits)).astype(np.uint8))
    if name in ("Contrast", "Color", "Brightness", "Sharpness"):
        return {"Contrast": ImageEnhance.Contrast, "Color": ImageEnhance.Color,
                "Brightness": ImageEnhance.Brightness, "Sharpness": ImageEnhance.Sharpness}[name](img).enhance(v)
    if name == "Cutout":
        side = v * w
        cx, cy = np.float64(w) + (1.0 - w) * u[0], np.float64(h) + (1.0 - h) * u[1]  # np.random.uniform(w)
        x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        x1, y1 = int(min(w, x0 + side)), int(min(h, y0 + side))
        a[y0:y1 + 1, x0:x1 + 1] = (125, 123, 114)  # PIL's rectangle includes both corners
        return Image.fromarray(a.astype(np.uint8))
    raise AssertionError(name)


@pytest.mark.parametrize("op", R.OP_NAMES)
def test_per_image_path_is_the_releases_op(op):
    images = varied_images(12, 32, seed=1)
    p = params_for(op, 12, seed=2)
    for i in range(12):
        expected = release_op(to_pil(images[i]), op, float(p.value[i, 0]), float(p.sign[i, 0]),
                              p.cutout[i, 0].tolist())
        assert torch.equal(R.randaugment_image(images[i], p[i]), from_pil(expected)), (op, i)


def test_per_image_path_applies_the_slots_in_order_and_skips_the_others():
    image = varied_images(2, 32, seed=3)[1]
    p = params_for("Rotate", 1, seed=4, k=3)[0]
    p.op[:] = torch.tensor([R.OP_ID["Posterize"], R.OP_ID["Invert"], R.OP_ID["Rotate"]])
    p.value[:] = torch.tensor([5.5, 0.5, 20.0], dtype=torch.float64)
    p.sign[:] = torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    p.applied[:] = torch.tensor([True, False, True])
    expected = ImageOps.posterize(to_pil(image), 5).rotate(-20.0)
    assert torch.equal(R.randaugment_image(image, p), from_pil(expected))
    p.applied[:] = False
    assert R.randaugment_image(image, p) is image


def assert_batched_equals_per_image(images, p, subset=None):
    x = images.float()
    ours = R.randaugment(x, p, subset=subset)
    assert torch.equal(x, images.float())  # the input is left as it was
    ref = torch.stack([R.randaugment_image(images[i], p[i]) for i in range(len(images))])
    assert ours.dtype == torch.float32 and torch.equal(ours, ours.round())
    diff = (ours - ref.float()).abs()
    assert torch.equal(ours, ref.float()), f"{int((diff > 0).sum())} pixels differ, by up to {diff.max()}"


@pytest.mark.parametrize("op", R.OP_NAMES)
def test_each_batched_op_equals_the_per_image_path_at_32_px(op):
    """Tolerance: none (see each op's docstring in data/randaug.py)."""
    assert_batched_equals_per_image(varied_images(36, 32, seed=5), params_for(op, 36, seed=6))


@pytest.mark.parametrize("op", R.OP_NAMES)
def test_each_batched_op_equals_the_per_image_path_at_224_px(op):
    """Translate and cutout sizes scale with the image (v W pixels)."""
    assert_batched_equals_per_image(varied_images(6, 224, seed=7), params_for(op, 6, seed=8))


def test_mixed_ops_over_two_slots_equal_the_per_image_path_both_ways_of_selecting_images():
    """The CPU's index-select strategy and the GPUs' compute-all-then-select strategy give the same pixels."""
    images = varied_images(120, 32, seed=9)
    p = R.sample_randaug_params(torch.rand(120, generator=torch.Generator().manual_seed(10)),
                                R.RandAugConfig(k=2), torch.Generator().manual_seed(11))
    assert 0.2 < p.applied.float().mean() < 0.8
    for subset in (True, False):
        assert_batched_equals_per_image(images, p, subset=subset)


def test_non_square_images_follow_the_releases_axes():
    """Translate uses the width for x and the height for y; the cutout side is a fraction of the width."""
    images = torch.randint(0, 256, (15, 3, 20, 36), dtype=torch.uint8, generator=torch.Generator().manual_seed(12))
    p = R.sample_randaug_params(torch.ones(15), R.RandAugConfig(k=1), torch.Generator().manual_seed(13))
    p.op[:, 0] = torch.arange(15)
    p.value = torch.tensor([[lo + 0.7 * (hi - lo)] for _, lo, hi in R.OPS], dtype=torch.float64)
    assert_batched_equals_per_image(images, p)


def test_batched_path_rejects_uint8_and_mismatched_rows():
    p = params_for("Invert", 2, seed=14)
    with pytest.raises(ValueError, match="float"):
        R.randaugment(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), p)
    with pytest.raises(ValueError, match="one parameter row"):
        R.randaugment(torch.zeros(3, 3, 8, 8), p)


# ---------------------------------------------------------------------------------------------------------
# parameters


def test_config_follows_the_releases_rand_k_rule_and_checks_its_range():
    assert R.RandAugConfig(k=1).min_strength == 10 and not R.RandAugConfig(k=1).shares_u
    for k in (2, 3):
        assert R.RandAugConfig(k=k).min_strength == 5 and R.RandAugConfig(k=k).shares_u
    assert R.RandAugConfig().max_strength == 30
    with pytest.raises(ValueError, match="at least one op"):
        R.RandAugConfig(k=0)
    with pytest.raises(ValueError, match="at most 30"):
        R.RandAugConfig(max_strength=31)


def test_application_rate_follows_the_strength_and_ops_are_uniform():
    n = 20000
    levels = torch.tensor([0.0, 0.25, 0.5, 0.9, 1.0])
    strength = levels.repeat_interleave(n // 5)
    p = R.sample_randaug_params(strength, R.RandAugConfig(k=2), torch.Generator().manual_seed(20))
    assert p.op.shape == p.applied.shape == p.value.shape == p.sign.shape == (n, 2) and p.cutout.shape == (n, 2, 2)
    rate = p.applied.float().reshape(5, n // 5 * 2).mean(dim=1)
    assert rate[0] == 0 and rate[-1] == 1  # w = 0: nothing; w = 1: every slot
    assert (rate - levels).abs().max() < 0.015  # > 4 standard errors at 8000 draws
    freq = torch.bincount(p.op.reshape(-1), minlength=15).float() / (2 * n)
    assert (freq - 1 / 15).abs().max() < 0.006  # ~ 4 standard errors
    assert abs((p.sign < 0).float().mean() - 0.5) < 0.01 and set(p.sign.unique().tolist()) == {-1.0, 1.0}
    assert p.cutout.min() >= 0 and p.cutout.max() < 1 and abs(p.cutout.mean() - 0.5) < 0.01


@pytest.mark.parametrize("k", [1, 2])
def test_values_are_the_releases_formula_within_the_ranges(k):
    n = 6000
    strength = torch.rand(n, generator=torch.Generator().manual_seed(21))
    p = R.sample_randaug_params(strength, R.RandAugConfig(k=k), torch.Generator().manual_seed(22))
    m = p.magnitude
    low = torch.tensor([lo for _, lo, _ in R.OPS], dtype=torch.float64)[p.op]
    high = torch.tensor([hi for _, _, hi in R.OPS], dtype=torch.float64)[p.op]
    assert torch.allclose(p.value, m[:, None] / 30 * (high - low) + low, rtol=0, atol=1e-12)
    assert (p.value >= low).all() and (p.value <= high).all()
    assert torch.equal(p.strength, strength.double())
    w = strength.double()
    if k == 1:  # BCL-I: m = 10 + 20 w
        assert torch.allclose(m, 10 + 20 * w, rtol=0, atol=1e-12)
    else:  # BCL-D: m = 5 + 25 w U, U ~ U(0, 1)
        u = (m - 5) / (25 * w)
        assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.02 and abs(u.var() - 1 / 12) < 0.005
        assert m.min() >= 5 and m.max() <= 30


def test_max_strength_sets_the_top_of_the_magnitude_range():
    p = R.sample_randaug_params(torch.ones(4), R.RandAugConfig(k=1, max_strength=20), torch.Generator())
    assert torch.equal(p.magnitude, torch.full((4,), 20.0, dtype=torch.float64))


def test_both_views_share_w_and_u_and_draw_their_own_ops():
    n = 4000
    strength = torch.rand(n, generator=torch.Generator().manual_seed(23))
    p = R.sample_two_view_params(strength, R.RandAugConfig(k=2), torch.Generator().manual_seed(24))
    assert len(p) == 2 * n
    assert torch.equal(p.strength[:n], p.strength[n:]) and torch.equal(p.magnitude[:n], p.magnitude[n:])
    for field in (p.op, p.applied, p.sign, p.cutout):
        assert (field[:n] != field[n:]).float().mean() > 0.3  # drawn per view
    assert (p.magnitude[:n - 1] != p.magnitude[1:n]).all()  # U is drawn per item


def test_the_draws_do_not_depend_on_the_strengths():
    """Fixed count and order: a rank can take its slice of a global batch knowing only its own strengths."""
    cfg = R.RandAugConfig(k=2)
    g1, g2 = torch.Generator().manual_seed(25), torch.Generator().manual_seed(25)
    a = R.sample_two_view_params(torch.rand(50), cfg, g1)
    b = R.sample_two_view_params(torch.zeros(50), cfg, g2)
    assert torch.equal(a.op, b.op) and torch.equal(a.sign, b.sign) and torch.equal(a.cutout, b.cutout)
    assert torch.equal(g1.get_state(), g2.get_state())


def test_bad_strengths_are_refused():
    for bad in (torch.tensor([0.5, 1.5]), torch.tensor([-0.1]), torch.tensor([math.nan])):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            R.sample_randaug_params(bad, R.RandAugConfig(), torch.Generator())


# ---------------------------------------------------------------------------------------------------------
# pipelines


def simclr_then_reference(simclr_views: torch.Tensor, params: R.RandAugParams) -> torch.Tensor:
    """(b, 2, 3, H, W) SimCLR views and the rows of both views (view 1 of every item, then view 2) -> each view
    through the per-image RandAugment."""
    b = simclr_views.shape[0]
    return torch.stack([torch.stack([R.randaugment_image(simclr_views[i, v].to(torch.uint8), params[v * b + i])
                                     for v in range(2)]) for i in range(b)]).float()


def todays_two_views(images, config, seed, epoch, step, rank=0, world_size=1, crop=True):
    """``two_views`` as it was before RandAugment, from its parts."""
    b, n = images.shape[0], images.shape[0] * world_size
    params = sample_params(2 * n, *images.shape[-2:], config, batch_generator(seed, epoch, step), crop=crop)
    mine = torch.cat([torch.arange(rank * b, (rank + 1) * b), n + torch.arange(rank * b, (rank + 1) * b)])
    src = torch.cat([images, images]) if crop else torch.cat([images[:, 0], images[:, 1]])
    out = augment(src, params[mine], config, crop=crop)
    return torch.stack([out[:b], out[b:]], dim=1)


def batch_of(kind: str, b: int):
    """(config, images, crop): CIFAR images to crop, or ImageNet-style pairs of views cropped already."""
    if kind == "cifar":
        return aug_config("cifar"), varied_images(b, 32, seed=30), True
    return IMAGENET_96, torch.stack([varied_images(b, 96, seed=31), varied_images(b, 96, seed=32)], dim=1), False


@pytest.mark.parametrize("kind", ["cifar", "imagenet"])
def test_without_strengths_or_at_strength_0_the_views_are_todays_simclr_views(kind):
    config, images, crop = batch_of(kind, 6)
    today = todays_two_views(images, config, 3, 2, 1, crop=crop)
    assert torch.equal(two_views(images, config, 3, 2, 1, crop=crop), today)
    zero = two_views(images, config, 3, 2, 1, crop=crop, strengths=torch.zeros(6), randaug=R.RandAugConfig(k=2))
    assert torch.equal(zero, today)


@pytest.mark.parametrize("kind,k", [("cifar", 1), ("cifar", 2), ("imagenet", 2)])
def test_batched_views_are_the_simclr_views_through_the_per_image_randaugment(kind, k):
    """Whole two-view batches: the batched path equals its SimCLR views, each through ``randaugment_image``
    with the parameters drawn after the SimCLR ones from the batch's generator (ImageNet: after the blur)."""
    config, images, crop = batch_of(kind, 6)
    strengths = torch.tensor([0.0, 0.3, 0.6, 0.8, 1.0, 1.0])
    ra = R.RandAugConfig(k=k)
    out = two_views(images, config, 3, 2, 1, crop=crop, strengths=strengths, randaug=ra)
    simclr = two_views(images, config, 3, 2, 1, crop=crop)
    g = batch_generator(3, 2, 1)
    sample_params(12, *images.shape[-2:], config, g, crop=crop)
    params = R.sample_two_view_params(strengths, ra, g)
    assert torch.equal(out, simclr_then_reference(simclr, params))
    assert torch.equal(out[0], simclr[0]) and not torch.equal(out[4:], simclr[4:])


def test_ranks_take_their_slice_of_the_global_batch_with_their_own_strengths():
    images, cfg, ra = varied_images(8, 32, seed=33), aug_config("cifar"), R.RandAugConfig(k=2)
    strengths = torch.rand(8, generator=torch.Generator().manual_seed(34))
    one = two_views(images, cfg, 1, 2, 3, strengths=strengths, randaug=ra)
    halves = [two_views(images[r * 4:(r + 1) * 4], cfg, 1, 2, 3, rank=r, world_size=2,
                        strengths=strengths[r * 4:(r + 1) * 4], randaug=ra) for r in range(2)]
    assert torch.equal(torch.cat(halves), one)


def test_two_views_refuses_strengths_without_a_config_or_of_the_wrong_length():
    images, cfg = varied_images(4, 32, seed=35), aug_config("cifar")
    with pytest.raises(ValueError, match="without a RandAugConfig"):
        two_views(images, cfg, 1, 1, 0, strengths=torch.ones(4))
    with pytest.raises(ValueError, match="3 RandAugment strengths for 4 images"):
        two_views(images, cfg, 1, 1, 0, strengths=torch.ones(3), randaug=R.RandAugConfig())


@pytest.mark.parametrize("k", [1, 2])
def test_per_image_views_are_simclr_views_then_randaugment_under_the_item_seed(k):
    image, ra = varied_images(2, 32, seed=36)[1], R.RandAugConfig(k=k)
    augmentation = simclr_augmentation("cifar")
    torch.manual_seed(7)
    simclr = TwoViews(augmentation)(image)
    torch.manual_seed(7)
    views = TwoViews(augmentation, ra)(image, 0.9)
    torch.manual_seed(7)
    augmentation(image), augmentation(image)  # the SimCLR draws come first
    params = R.sample_two_view_params(torch.tensor([0.9]), ra, None)
    assert torch.equal(views.float(), simclr_then_reference(simclr[None], params)[0])
    assert torch.equal(views.float(), R.randaugment(simclr.float(), params))  # and the batched op agrees
    torch.manual_seed(7)
    assert torch.equal(TwoViews(augmentation, ra)(image, 0.0), simclr)  # strength 0: the SimCLR views
    with pytest.raises(ValueError, match="without a RandAugConfig"):
        TwoViews(augmentation)(image, 0.5)


def array_data(n: int, size: int = 32, seed: int = 40) -> IdOodDataset:
    return IdOodDataset(ArrayImageDataset(varied_images(n, size, seed).permute(0, 2, 3, 1).numpy().copy()))


def test_persistent_per_image_workers_use_each_epochs_strengths():
    """The release keeps the strengths on the dataset, which persistent workers copied at their start; here
    they travel with the keys, so epoch 2's views are those of epoch 2's strengths."""
    data, ra = array_data(16), R.RandAugConfig(k=1)
    views = SeededViews(data, TwoViews(simclr_augmentation("cifar"), ra))
    sampler = EpochSampler(len(data), 4, seed=2)
    loader = DataLoader(views, batch_size=4, sampler=sampler, num_workers=2, persistent_workers=True,
                        drop_last=True)
    first, second = torch.rand(16, generator=torch.Generator().manual_seed(41)), torch.ones(16)
    sampler.set_epoch(1), sampler.set_strengths(first)
    list(loader)
    sampler.set_epoch(2), sampler.set_strengths(second)
    got = torch.cat([batch[0] for batch in loader])
    direct = torch.stack([views[key][0] for key in sampler])
    assert torch.equal(got, direct)
    sampler.set_strengths(first)
    stale = torch.stack([views[key][0] for key in sampler])
    assert not torch.equal(got, stale)


def test_persistent_batched_workers_use_each_epochs_strengths():
    data, ra, cfg = array_data(16), R.RandAugConfig(k=2), aug_config("cifar")
    sampler = EpochSampler(len(data), 8, seed=3)
    batches = DeviceBatches(data, array_images(data.id_set), sampler, cfg, 3, CPU, num_workers=2, randaug=ra)
    first, second = torch.rand(16, generator=torch.Generator().manual_seed(42)), torch.ones(16)
    sampler.set_epoch(1), sampler.set_strengths(first)
    list(batches)
    sampler.set_epoch(2), sampler.set_strengths(second)
    got = [views for views, *_ in batches]
    order, _ = sampler.epoch_order()
    images = array_images(data.id_set)
    for step, views in enumerate(got):
        items = order[step * 8:(step + 1) * 8]
        expected = two_views(images[items], cfg, 3, 2, step, strengths=second[items], randaug=ra)
        assert torch.equal(views.float(), expected)
        assert not torch.equal(views.float(), two_views(images[items], cfg, 3, 2, step, strengths=first[items],
                                                        randaug=ra))


def test_batched_loader_without_strengths_or_at_0_gives_the_simclr_views():
    data, cfg = array_data(16), aug_config("cifar")
    sampler = EpochSampler(len(data), 8, seed=3)
    sampler.set_epoch(1)
    make = lambda: [v for v, *_ in DeviceBatches(data, array_images(data.id_set), sampler, cfg, 3, CPU,
                                                 randaug=R.RandAugConfig())]
    plain = make()
    sampler.set_strengths(torch.zeros(16))
    assert all(torch.equal(a, b) for a, b in zip(make(), plain))


def test_file_list_path_adds_randaugment_after_the_whole_simclr_view():
    """Workers crop (their keys carry no strength); the device adds flip, jitter, grayscale, blur, then
    RandAugment at the strengths of the batch's items."""
    data, ra, cfg = array_data(4, size=40, seed=43), R.RandAugConfig(k=2), aug_config("imagenet")
    crop = TwoViews(simclr_crop("imagenet"))
    sampler = EpochSampler(len(data), 2, seed=5)
    sampler.set_epoch(1)
    strengths = torch.tensor([0.2, 0.9, 0.5, 1.0])
    sampler.set_strengths(strengths)
    got = list(CroppedViewBatches(data, crop, sampler, cfg, 5, CPU, num_workers=0, randaug=ra))
    order, seeds = sampler.epoch_order()
    for step, (views, _, index, _) in enumerate(got):
        items = order[step * 2:(step + 1) * 2]
        assert index.tolist() == items.tolist()
        crops = torch.stack([SeededViews(data, crop)[(int(i), int(s))][0]
                             for i, s in zip(items, seeds[step * 2:(step + 1) * 2])])
        expected = two_views(crops, cfg, 5, 1, step, crop=False, strengths=strengths[items], randaug=ra)
        assert views.shape == (2, 2, 3, 224, 224) and torch.equal(views, expected)
    sampler.set_strengths(None)
    plain = list(CroppedViewBatches(data, crop, sampler, cfg, 5, CPU, num_workers=0, randaug=ra))
    assert not torch.equal(plain[1][0], got[1][0])


def _rank_views(rank: int, world_size: int, images: np.ndarray, strengths: torch.Tensor) -> list:
    data = IdOodDataset(ArrayImageDataset(images))
    sampler = EpochSampler(len(data), 8, world_size, rank, seed=4)
    sampler.set_epoch(1)
    sampler.set_strengths(strengths)
    batches = DeviceBatches(data, array_images(data.id_set), sampler, aug_config("cifar"), 4, CPU,
                            randaug=R.RandAugConfig(k=2))
    return [views for views, *_ in batches]


def test_two_gloo_processes_see_the_augmentation_of_one():
    images = varied_images(16, 32, seed=44).permute(0, 2, 3, 1).numpy().copy()
    strengths = torch.rand(16, generator=torch.Generator().manual_seed(45))
    one = _rank_views(0, 1, images, strengths)
    ranks = run_processes(_rank_views, 2, images, strengths)
    for step in range(2):
        assert torch.equal(torch.cat([ranks[0][step], ranks[1][step]]), one[step])


@pytest.mark.cuda
def test_batched_path_on_cuda_equals_the_cpu(accelerator):
    cuda = accelerator
    for size, n in ((32, 120), (224, 30)):
        images = varied_images(n, size, seed=46).float()
        p = R.sample_randaug_params(torch.rand(n, generator=torch.Generator().manual_seed(47)) * 0.5 + 0.5,
                                    R.RandAugConfig(k=2), torch.Generator().manual_seed(48))
        assert torch.equal(R.randaugment(images.to(cuda), p).cpu(), R.randaugment(images, p))
    # whole batches: the CUDA views are their CUDA SimCLR views through the CPU's RandAugment
    images, cfg, ra = varied_images(16, 32, seed=49).to(cuda), aug_config("cifar"), R.RandAugConfig(k=2)
    strengths = torch.rand(16, generator=torch.Generator().manual_seed(50))
    out = two_views(images, cfg, 1, 1, 0, strengths=strengths, randaug=ra)
    simclr = two_views(images, cfg, 1, 1, 0)
    assert out.device.type == accelerator.type
    g = batch_generator(1, 1, 0)
    sample_params(32, 32, 32, cfg, g)
    params = R.sample_two_view_params(strengths, ra, g)
    assert torch.equal(out.cpu(), simclr_then_reference(simclr.cpu(), params))
