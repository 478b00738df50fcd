"""BCL's memorisation-boosted RandAugment (Zhou et al., ICML 2022, "Contrastive Learning with Boosted
Memorization"): after the SimCLR view, each view gets ``k`` ops drawn with replacement from ``OPS``, each
applied with probability p, at a magnitude set by the item's strength w in [0, 1] (from the momentum loss).

The release's rule (``RandAugment_prob(k, m, p)`` on a PIL image): for each of the k slots, an op drawn
uniformly; applied if U(0, 1) < p; value = m / 30 * (max - min) + min with the op's (min, max) below; shear,
translate and rotate negate the value with probability 1/2. The magnitude and probability per item:

* BCL-I (k = 1): m = 10 + (M - 10) w, p = w;
* BCL-D (k >= 2, with SDCLR): m = 5 + (M - 5) w U, U ~ U(0, 1) drawn once per item per epoch, p = w;

M = ``--rand_strength`` (30). Both views of an item share w and U; the ops, whether each is applied, the
signs and the cutout centres are drawn per view. w = 0 applies nothing (the SimCLR view is unchanged).

Two implementations of the same ops on the same parameters:

* ``randaugment_image``: one uint8 CHW image and one row of ``RandAugParams`` -> uint8, with PIL's own
  calls, as the release (used by the per-image pipeline, ``data.views.TwoViews``);
* ``randaugment``: float32 whole levels (n, 3, H, W) on any device, every op vectorised over the images
  that drew it (used by the batched path, ``data.gpu_aug.two_views``). Each op reproduces the arithmetic of
  Pillow's C code (fixed-point affine maps, float32 blends, integer histograms), so the two agree exactly
  on every pixel except where a source coordinate lies within about 1e-12 pixel of a pixel edge
  (tests/test_randaug.py).

Parameters are drawn from an explicit ``torch.Generator`` (the default one in the per-image path, seeded per
item) in a fixed order whose count does not depend on the strengths, so a rank needs only its own items'
strengths to take its slice of a global batch's parameters.

Use: ``config = RandAugConfig(k=args.rand_k, max_strength=args.rand_strength)`` given to
``data.views.TwoViews`` (per-image path), ``DeviceBatches`` or ``CroppedViewBatches`` (``randaug=config``);
before each epoch's pass, in the main process, ``sampler.set_epoch(e)`` then ``sampler.set_strengths(w)``
with w (N,) in [0, 1] indexed like the sampler's dataset. The strengths travel with the batch keys.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

MAX_MAGNITUDE = 30.0  # the release divides m by 30 whatever --rand_strength is
CUTOUT_FILL = (125, 123, 114)

# (name, min, max) of the release's op list, in its order (op id = position). value = m / 30 (max - min) + min.
# x, y: output pixel column / row; W, H: image width / height; PIL samples source pixel centres, nearest.
OPS = (
    ("ShearX", 0.0, 0.6),       # out(x, y) = in(x + v y, y), v = +-value; 0 outside the image
    ("ShearY", 0.0, 0.6),       # out(x, y) = in(x, y + v x)
    ("TranslateX", 0.0, 0.66),  # out(x, y) = in(x + v W, y), v = +-value
    ("TranslateY", 0.0, 0.66),  # out(x, y) = in(x, y + v H)
    ("Rotate", 0.0, 60.0),      # rotate by +-value degrees counter-clockwise about (W / 2, H / 2)
    ("AutoContrast", 0.0, 1.0),  # per channel: trunc((x - lo) 255 / (hi - lo)); unchanged if hi <= lo
    ("Invert", 0.0, 1.0),       # 255 - x
    ("Equalize", 0.0, 1.0),     # per channel: (step // 2 + #{pixels < x}) // step, step = (N - n_max) // 255
    ("Solarize", 0.0, 110.0),   # x if x < value else 255 - x
    ("Posterize", 4.0, 8.0),    # keep the top b = max(1, int(value)) bits
    ("Contrast", 0.1, 1.9),     # blend(mean grey, x, value)
    ("Color", 0.1, 1.9),        # blend(grey, x, value)
    ("Brightness", 0.1, 1.9),   # blend(0, x, value)
    ("Sharpness", 0.1, 1.9),    # blend(smooth(x), x, value), smooth = PIL's 3x3 SMOOTH, border kept
    ("Cutout", 0.0, 0.4),       # a (value W)-pixel square of CUTOUT_FILL at a random centre
)
OP_NAMES = tuple(name for name, _, _ in OPS)
OP_ID = {name: k for k, name in enumerate(OP_NAMES)}
SIGNED = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


@dataclass(frozen=True)
class RandAugConfig:
    """k = ``--rand_k`` ops per view; ``max_strength`` = ``--rand_strength`` (M, at most 30). The minimum
    magnitude follows the release's ``if rand_k == 1``: 10 for BCL-I (k = 1), 5 for BCL-D (k >= 2)."""
    k: int = 1
    max_strength: float = 30.0

    def __post_init__(self):
        if self.k < 1:
            raise ValueError(f"RandAugment needs at least one op per view, got k = {self.k}")
        if not 0 <= self.max_strength <= MAX_MAGNITUDE:
            raise ValueError(f"the RandAugment strength is at most {MAX_MAGNITUDE:g}, got {self.max_strength}")

    @property
    def min_strength(self) -> float:
        return 10.0 if self.k == 1 else 5.0

    @property
    def shares_u(self) -> bool:
        """BCL-D scales the magnitude by a uniform U per item."""
        return self.k >= 2

    def magnitude(self, strength: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """m per item: min + (M - min) w (BCL-I) or min + (M - min) w U (BCL-D)."""
        scale = strength * u if self.shares_u else strength
        return self.min_strength + (self.max_strength - self.min_strength) * scale


@dataclass
class RandAugParams:
    """Per-view parameters of n views with k slots. op: (n, k) int64 ids into ``OPS``; applied: (n, k) bool;
    value: (n, k) float64, the release's unsigned value of the slot's op; sign: (n, k) float64 +-1 (used by
    the signed ops); cutout: (n, k, 2) float64 uniforms (ux, uy) of the cutout centre, which is
    (W + (1 - W) ux, H + (1 - H) uy) as the release's ``np.random.uniform(W)`` (low W, high 1) draws it;
    magnitude: (n,) float64 m; strength: (n,) float64 w."""
    op: torch.Tensor
    applied: torch.Tensor
    value: torch.Tensor
    sign: torch.Tensor
    cutout: torch.Tensor
    magnitude: torch.Tensor
    strength: torch.Tensor

    def __getitem__(self, key) -> "RandAugParams":
        return RandAugParams(**{f.name: getattr(self, f.name)[key] for f in fields(self)})

    def to(self, device) -> "RandAugParams":
        return RandAugParams(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def __len__(self) -> int:
        return len(self.op)


def _checked_strength(strength) -> torch.Tensor:
    s = torch.as_tensor(strength).detach().to("cpu", torch.float64).reshape(-1)
    if not bool(((s >= 0) & (s <= 1)).all()):
        raise ValueError("RandAugment strengths must lie in [0, 1]")
    return s


def sample_randaug_params(strength, config: RandAugConfig, generator: torch.Generator | None,
                          shared_u: torch.Tensor | None = None) -> RandAugParams:
    """Parameters of n views with strengths ``strength`` (n,), drawn on the CPU from ``generator`` (None: the
    default generator) in this order: U (n,) unless ``shared_u`` is given, op ids (n, k), application
    uniforms (n, k), sign uniforms (n, k), cutout uniforms (n, k, 2). The number of draws does not depend
    on the strengths. Applied: uniform < w; sign: -1 where the uniform > 1/2 (the release's
    ``random.random() > 0.5``)."""
    s = _checked_strength(strength)
    n, k = len(s), config.k
    g = dict(generator=generator)
    u = torch.rand(n, dtype=torch.float64, **g) if shared_u is None else shared_u.to("cpu", torch.float64)
    op = torch.randint(0, len(OPS), (n, k), **g)
    applied = torch.rand(n, k, dtype=torch.float64, **g) < s[:, None]
    sign = torch.where(torch.rand(n, k, dtype=torch.float64, **g) > 0.5, -1.0, 1.0).double()
    cutout = torch.rand(n, k, 2, dtype=torch.float64, **g)
    m = config.magnitude(s, u)
    low = torch.tensor([lo for _, lo, _ in OPS], dtype=torch.float64)
    high = torch.tensor([hi for _, _, hi in OPS], dtype=torch.float64)
    value = m[:, None] / MAX_MAGNITUDE * (high[op] - low[op]) + low[op]
    return RandAugParams(op, applied, value, sign, cutout, m, s)


def sample_two_view_params(strength, config: RandAugConfig, generator: torch.Generator | None) -> RandAugParams:
    """Parameters of both views of n items (rows: view 1 of every item, then view 2): U (n,) first, one per
    item, shared by its two views with its strength; then ``sample_randaug_params`` for the 2n views."""
    s = _checked_strength(strength)
    u = torch.rand(len(s), dtype=torch.float64, generator=generator)
    return sample_randaug_params(torch.cat([s, s]), config, generator, shared_u=torch.cat([u, u]))


# ---------------------------------------------------------------------------------------------------------
# per-image reference: the release's PIL calls


def _pil_op(img: Image.Image, name: str, value: float, sign: float, cutout_u) -> Image.Image:
    v = value * sign if name in SIGNED else value
    if name == "ShearX":
        return img.transform(img.size, Image.Transform.AFFINE, (1, v, 0, 0, 1, 0))
    if name == "ShearY":
        return img.transform(img.size, Image.Transform.AFFINE, (1, 0, 0, v, 1, 0))
    if name == "TranslateX":
        return img.transform(img.size, Image.Transform.AFFINE, (1, 0, v * img.size[0], 0, 1, 0))
    if name == "TranslateY":
        return img.transform(img.size, Image.Transform.AFFINE, (1, 0, 0, 0, 1, v * img.size[1]))
    if name == "Rotate":
        return img.rotate(v)
    if name == "AutoContrast":
        return ImageOps.autocontrast(img)
    if name == "Invert":
        return ImageOps.invert(img)
    if name == "Equalize":
        return ImageOps.equalize(img)
    if name == "Solarize":
        return ImageOps.solarize(img, v)
    if name == "Posterize":
        return ImageOps.posterize(img, max(1, int(v)))
    if name in ("Contrast", "Color", "Brightness", "Sharpness"):
        return getattr(ImageEnhance, name)(img).enhance(v)
    if name == "Cutout":
        size = v * img.size[0]
        if size <= 0:
            return img
        w, h = img.size
        cx, cy = w + (1.0 - w) * cutout_u[0], h + (1.0 - h) * cutout_u[1]
        x0, y0 = int(max(0, cx - size / 2.0)), int(max(0, cy - size / 2.0))
        img = img.copy()
        ImageDraw.Draw(img).rectangle((x0, y0, min(w, x0 + size), min(h, y0 + size)), CUTOUT_FILL)
        return img
    raise ValueError(f"unknown RandAugment op {name!r}")


def randaugment_image(image: torch.Tensor, params: RandAugParams) -> torch.Tensor:
    """One uint8 (3, H, W) image and one row of params (fields (k,), (k, 2)) -> uint8 (3, H, W): the slots'
    ops in order, each where applied, by the release's PIL calls."""
    if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a uint8 (3, H, W) image, got {tuple(image.shape)} {image.dtype}")
    applied = params.applied.tolist()
    if not any(applied):
        return image
    img = Image.fromarray(image.permute(1, 2, 0).numpy())
    for slot, on in enumerate(applied):
        if on:
            img = _pil_op(img, OP_NAMES[int(params.op[slot])], float(params.value[slot]),
                          float(params.sign[slot]), params.cutout[slot].tolist())
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).contiguous()


# ---------------------------------------------------------------------------------------------------------
# batched path: float32 whole levels (n, 3, H, W), any device


def _rotation_matrix(angle: torch.Tensor, width: int, height: int) -> list[torch.Tensor]:
    """PIL's ``Image.rotate`` output -> input affine (a, b, c, d, e, f), float64, as Image.rotate builds it."""
    theta = -(torch.remainder(angle, 360.0) * (math.pi / 180.0))
    cos, sin = torch.round(torch.cos(theta), decimals=15), torch.round(torch.sin(theta), decimals=15)
    a, b, d, e = cos, sin, -sin, cos
    cx, cy = width / 2, height / 2
    c = (a * -cx + b * -cy) + 0.0 + cx
    f = (d * -cx + e * -cy) + 0.0 + cy
    return [a, b, c, d, e, f]


def _affine_ops(x: torch.Tensor, op: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """ShearX, ShearY, TranslateX, TranslateY, Rotate (``value`` signed), nearest neighbour, 0 outside, as
    PIL's ``Image.transform(AFFINE)``: pure translations take its float path (source = floor(x + 1/2 + c)),
    the others its 16.16 fixed-point path (source = (FIX(c + a/2 + b/2) + a' x + b' y) >> 16 with
    a' = FIX(a) = floor(65536 a + 1/2)). Integer arithmetic: exact up to the rotation's cos / sin in the last
    bit (a difference only where 65536 a lands within 1e-11 of a half)."""
    n, c, h, w = x.shape
    dev = x.device
    one, zero = torch.ones_like(value), torch.zeros_like(value)
    rot = _rotation_matrix(value, w, h)
    is_ = lambda name: op == OP_ID[name]
    # output -> input matrix (a, b, c, d, e, f) of each image
    a = torch.where(is_("Rotate"), rot[0], one)
    b = torch.where(is_("ShearX"), value, torch.where(is_("Rotate"), rot[1], zero))
    cc = torch.where(is_("TranslateX"), value * w, torch.where(is_("Rotate"), rot[2], zero))
    d = torch.where(is_("ShearY"), value, torch.where(is_("Rotate"), rot[3], zero))
    e = torch.where(is_("Rotate"), rot[4], one)
    f = torch.where(is_("TranslateY"), value * h, torch.where(is_("Rotate"), rot[5], zero))
    xs = torch.arange(w, device=dev, dtype=torch.float64)[None, None, :]
    ys = torch.arange(h, device=dev, dtype=torch.float64)[None, :, None]
    col = lambda t: t[:, None, None]
    # float path (a == e == 1, b == d == 0): translations; clamped far outside, so int32 holds them
    far = float(4 * max(h, w))
    fx = torch.floor(col(cc + 0.5) + xs).clamp(-far, far).int().expand(n, h, w)
    fy = torch.floor(col(f + 0.5) + ys).clamp(-far, far).int().expand(n, h, w)
    # fixed-point path: shears and rotations, in 32-bit integers as PIL
    fix = lambda v: torch.floor(v * 65536.0 + 0.5).int()
    a0, a1, a3, a4 = fix(a), fix(b), fix(d), fix(e)
    a2, a5 = fix(cc + a * 0.5 + b * 0.5), fix(f + d * 0.5 + e * 0.5)
    xi = torch.arange(w, device=dev, dtype=torch.int32)[None, None, :]
    yi = torch.arange(h, device=dev, dtype=torch.int32)[None, :, None]
    qx = (col(a2) + xi * col(a0) + yi * col(a1)) >> 16
    qy = (col(a5) + xi * col(a3) + yi * col(a4)) >> 16
    translate = col(is_("TranslateX") | is_("TranslateY"))
    sx, sy = torch.where(translate, fx, qx), torch.where(translate, fy, qy)
    inside = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
    source = (sy.clamp(0, h - 1) * w + sx.clamp(0, w - 1)).long().reshape(n, 1, h * w).expand(n, c, h * w)
    out = x.reshape(n, c, h * w).gather(2, source).reshape(n, c, h, w)
    return out * inside[:, None]


def _per_image(mask: torch.Tensor, fn, x: torch.Tensor, fallback: torch.Tensor, subset: bool) -> torch.Tensor:
    """``fn(x)`` for the images where ``mask``, ``fallback`` elsewhere (per-image tensors of one shape);
    ``subset``: ``fn`` runs on those images only, else on all of them (no host synchronisation)."""
    view = (-1,) + (1,) * (fallback.dim() - 1)
    if not subset:
        return torch.where(mask.reshape(view), fn(x), fallback)
    idx = mask.nonzero()[:, 0]
    return fallback if len(idx) == 0 else fallback.index_copy(0, idx, fn(x[idx]))


def _autocontrast_lut(x: torch.Tensor) -> torch.Tensor:
    """(n, 3, 256): int(i * scale + offset), scale = 255 / (hi - lo), offset = -lo * scale in float64, clipped;
    the identity where hi <= lo."""
    levels = torch.arange(256, device=x.device, dtype=torch.float64)
    lo, hi = x.amin(dim=(2, 3)).double(), x.amax(dim=(2, 3)).double()
    scale = torch.full_like(lo, 255.0) / (hi - lo).clamp(min=1)  # not 255 / t: torch takes a reciprocal
    lut = torch.trunc(levels * scale[..., None] + (-lo * scale)[..., None]).clamp(0, 255)
    return torch.where((hi > lo)[..., None], lut, levels)


def _equalize_lut(x: torch.Tensor) -> torch.Tensor:
    """(n, 3, 256) in integers: step = (pixels - count of the highest level) // 255,
    lut[i] = (step // 2 + #{pixels < i}) // step, clipped to 255; the identity with one level or step 0."""
    n, c = x.shape[:2]
    levels = torch.arange(256, device=x.device)
    bins = x.reshape(n * c, -1).long() + 256 * torch.arange(n * c, device=x.device)[:, None]
    hist = torch.bincount(bins.reshape(-1), minlength=n * c * 256).reshape(n, c, 256)
    seen = hist > 0
    hi = torch.where(seen, levels, -1).amax(dim=2)
    step = (x[0, 0].numel() - hist.gather(2, hi[..., None])[..., 0]) // 255
    below = torch.cumsum(hist, dim=2) - hist
    lut = (((step // 2)[..., None] + below) // step.clamp(min=1)[..., None]).clamp(max=255)
    return torch.where(((seen.sum(dim=2) > 1) & (step > 0))[..., None], lut, levels).double()


def _lut_ops(x: torch.Tensor, op: torch.Tensor, value: torch.Tensor, subset: bool) -> torch.Tensor:
    """AutoContrast, Invert, Equalize, Solarize, Posterize as one lookup table per image and channel, as
    ImageOps builds them (entries clipped to [0, 255] as ``Image.point`` does): exact."""
    n, c, h, w = x.shape
    levels = torch.arange(256, device=x.device, dtype=torch.float64).expand(n, c, 256)
    is_ = lambda name: op == OP_ID[name]
    v = value[:, None, None]
    drop = torch.exp2(8.0 - torch.trunc(v).clamp(min=1))
    lut = torch.where(is_("Invert")[:, None, None], 255.0 - levels, levels)
    lut = torch.where(is_("Solarize")[:, None, None], torch.where(levels < v, levels, 255.0 - levels), lut)
    lut = torch.where(is_("Posterize")[:, None, None], torch.floor(levels / drop) * drop, lut)
    lut = _per_image(is_("AutoContrast"), _autocontrast_lut, x, lut, subset)
    lut = _per_image(is_("Equalize"), _equalize_lut, x, lut, subset)
    return lut.float().gather(2, x.reshape(n, c, -1).long()).reshape(n, c, h, w)


def _pil_grey(x: torch.Tensor) -> torch.Tensor:
    """PIL's RGB -> L: (19595 R + 38470 G + 7471 B + 32768) >> 16; float32 holds these integers exactly."""
    r, g, b = x.unbind(dim=1)
    return torch.floor((r * 19595 + g * 38470 + b * 7471 + 32768) / 65536)[:, None]


def _pil_smooth(x: torch.Tensor) -> torch.Tensor:
    """PIL's ImageFilter.SMOOTH (3x3 kernel 1 1 1 / 1 5 1 / 1 1 1 over 13) in its float32 order of
    operations: 0.5 + row below + row + row above, each row (left k0 + centre k1) + right k2, truncated
    and clamped; the outermost rows and columns are copied."""
    k = torch.tensor([1.0, 5.0], dtype=torch.float32) / 13.0
    k1, k5 = float(k[0]), float(k[1])
    mid = lambda t: t[..., 1:-1]

    def row(r, centre_weight):
        return (r[..., :-2] * k1 + mid(r) * centre_weight) + r[..., 2:] * k1

    ss = 0.5 + row(x[:, :, 2:], k1)
    ss = ss + row(x[:, :, 1:-1], k5)
    ss = ss + row(x[:, :, :-2], k1)
    out = x.clone()
    out[:, :, 1:-1, 1:-1] = torch.trunc(ss.clamp(0, 255))
    return out


def _blend_ops(x: torch.Tensor, op: torch.Tensor, value: torch.Tensor, subset: bool) -> torch.Tensor:
    """Contrast, Color, Brightness, Sharpness: ImageEnhance's ``Image.blend(degenerate, x, factor)``, i.e.
    (uint8)(deg + factor (x - deg)) in float32 with the factor rounded to float32, clipped to [0, 255];
    degenerate: the grey image's mean level int(mean + 0.5), the grey image, 0, the SMOOTH-filtered image.
    The same float32 operations in the same order: exact."""
    grey = _pil_grey(x)
    mean = torch.floor(grey.double().mean(dim=(1, 2, 3), keepdim=True) + 0.5).float()
    pick = lambda name: (op == OP_ID[name])[:, None, None, None]
    deg = torch.where(pick("Contrast"), mean, torch.where(pick("Color"), grey, 0.0))
    deg = _per_image(op == OP_ID["Sharpness"], _pil_smooth, x, deg.expand_as(x), subset)
    factor = value.float()[:, None, None, None]
    return torch.trunc((deg + factor * (x - deg)).clamp(0, 255))


def _cutout(x: torch.Tensor, value: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """The release's CutoutAbs: size s = value W pixels; centre (W + (1 - W) ux, H + (1 - H) uy);
    x0 = int(max(0, cx - s / 2)), x1 = min(W, x0 + s) (y likewise); PIL fills the columns x0..int(x1) and
    rows y0..int(y1), both ends included, clipped to the image: exact."""
    n, c, h, w = x.shape
    size = value * w
    cx = w + (1.0 - w) * uniforms[:, 0]
    cy = h + (1.0 - h) * uniforms[:, 1]
    x0, y0 = torch.floor((cx - size / 2).clamp(min=0)), torch.floor((cy - size / 2).clamp(min=0))
    x1, y1 = torch.trunc(torch.minimum(x0 + size, torch.full_like(x0, w))), \
        torch.trunc(torch.minimum(y0 + size, torch.full_like(y0, h)))
    cols = torch.arange(w, device=x.device, dtype=torch.float64)[None, :]
    rows = torch.arange(h, device=x.device, dtype=torch.float64)[None, :]
    inside_x = (cols >= x0[:, None]) & (cols <= x1[:, None])
    inside_y = (rows >= y0[:, None]) & (rows <= y1[:, None])
    box = (inside_y[:, :, None] & inside_x[:, None, :] & (size > 0)[:, None, None])[:, None]
    fill = torch.tensor(CUTOUT_FILL, dtype=x.dtype, device=x.device)[None, :, None, None]
    return torch.where(box, fill, x)


# op ids of each kind and its vectorised function of (images, (op, value, sign, cutout), subset)
_KINDS = (
    (tuple(OP_ID[k] for k in SIGNED), lambda x, p, subset: _affine_ops(x, p[0], p[1] * p[2])),
    (tuple(OP_ID[k] for k in ("AutoContrast", "Invert", "Equalize", "Solarize", "Posterize")),
     lambda x, p, subset: _lut_ops(x, p[0], p[1], subset)),
    (tuple(OP_ID[k] for k in ("Contrast", "Color", "Brightness", "Sharpness")),
     lambda x, p, subset: _blend_ops(x, p[0], p[1], subset)),
    ((OP_ID["Cutout"],), lambda x, p, subset: _cutout(x, p[1], p[3])),
)


def randaugment(x: torch.Tensor, params: RandAugParams, subset: bool | None = None) -> torch.Tensor:
    """float32 whole levels (n, 3, H, W) in [0, 255] on any device -> the same after each view's k slots.
    Per slot, the images whose applied op is of one kind (affine, lookup table, blend, cutout) go through
    one vectorised function. ``subset`` (default: on the CPU) runs each function on those images only
    (index select, which waits for the device); otherwise on all images, the result kept where chosen
    (no host synchronisation, the choice for GPUs). Both give the same pixels."""
    if not x.is_floating_point() or x.dim() != 4 or x.shape[1] != 3 or len(params) != x.shape[0]:
        raise ValueError(f"expected float (n, 3, H, W) images with one parameter row each, got "
                         f"{tuple(x.shape)} {x.dtype} and {len(params)} rows")
    params = params.to(x.device)
    subset = x.device.type == "cpu" if subset is None else subset
    if subset:
        x = x.clone()  # then written in place, image subsets at a time
    for slot in range(params.op.shape[1]):
        op, on = params.op[:, slot], params.applied[:, slot]
        slot_params = (op, params.value[:, slot], params.sign[:, slot], params.cutout[:, slot])
        for ids, fn in _KINDS:
            chosen = on & torch.isin(op, torch.tensor(ids, device=x.device))
            if subset:
                idx = chosen.nonzero()[:, 0]
                if len(idx):
                    x.index_copy_(0, idx, fn(x[idx], [t[idx] for t in slot_params], True))
            else:
                x = torch.where(chosen[:, None, None, None], fn(x, slot_params, False), x)
    return x
