"""BCL's RandAugment: the op table against the release's list, the per-image path against the release's PIL
calls, the batched path against the per-image path op by op (exact: the same arithmetic as Pillow's C
code, see data/randaug.py), and the parameter distributions of the BCL-I and BCL-D rules."""
import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from data import randaug as R


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
    ours = R.randaugment(images.float(), p, subset=subset)
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
