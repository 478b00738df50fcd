"""Batched SimCLR augmentation with independent random parameters per image, on any device.

Both this and the per-image pipeline (``data.views.simclr_augmentation``, torchvision v2 in DataLoader
workers) are built from the image kind's ``AugConfig`` (``data.registry``). The per-image pipeline draws
one parameter set per image call; stock torchvision cannot draw per-image parameters for a batch. Here a
whole batch of uint8 (B, 3, H, W) images is augmented at once, each image with its own parameters, so on a
GPU the augmentation costs about as much as a few elementwise kernels.

Each op reproduces torchvision's functional op on uint8 images, including its intermediate uint8
rounding, so the two paths agree to within one grey level per op (tests/test_gpu_aug.py):

* random resized crop + bicubic resize: torchvision resizes uint8 tensors with
  ``interpolate(bicubic, antialias=True)``, i.e. PIL's separable resampling (cubic a = -0.5, support
  widened by the scale when shrinking, weights renormalised at the crop's edges). Here the same weights are
  built per image as two matrices, Wy (H_out x H) and Wx (W_out x W), that are zero outside the crop box:
  out = Wy @ round(image @ Wx^T), one batched matmul per axis, rounded in between as torchvision's uint8
  CPU kernel does (its float path, used on CUDA, does not round in between and differs by up to ~15
  levels near strong edges). A horizontal flip reverses the rows of Wx (free).
  ``grid_sample(bicubic)`` or ``roi_align`` (bilinear) would read pixels outside the box and not
  antialias, so they would not agree with the per-image path.
* colour jitter (p 0.8; brightness, contrast, saturation in [0.6, 1.4], hue in [-0.1, 0.1]) in a random
  order per image, as torchvision's ColorJitter. Brightness, contrast and saturation are all
  ``clamp(f x + (1 - f) ref)`` (ref = 0, the mean grey level, the grey image), so each of the four order
  slots is one blend over the batch with a per-image reference; hue runs only on the images whose slot it is.
* grayscale (p 0.2): 0.2989 R + 0.587 G + 0.114 B, truncated, as torchvision.
* Gaussian blur (p 0.5, kernel 23, sigma in [0.1, 2], reflect padding) for ImageNet-size views: one
  grouped separable convolution with a kernel per image.

Parameters are drawn on the CPU from an explicit ``torch.Generator`` (the same numbers on every device).
``batch_generator(seed, epoch, step)`` seeds one per global batch; the parameters of the whole global batch
are drawn and each rank takes its slice, so N processes see the augmentation of one.

BCL's RandAugment (``data.randaug``) runs after the whole SimCLR view when ``two_views`` gets per-item
strengths; its parameters come from the same generator after all SimCLR parameters, so views without
strengths are exactly those of the SimCLR view alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import lru_cache

import torch
import torch.nn.functional as F

from data.randaug import RandAugConfig, randaugment, sample_two_view_params
from data.registry import AugConfig, aug_config  # noqa: F401  (the config of each image kind lives there)

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


@dataclass
class AugParams:
    """Per-image parameters of n views. boxes: (n, 4) int64 (top, left, height, width); flip, jitter, gray,
    blur: (n,) bool; factors: (n, 4) float (brightness, contrast, saturation, hue); order: (n, 4) int64, a
    permutation of 0..3 (the jitter ops in the order applied); sigma: (n,) float."""
    boxes: torch.Tensor
    flip: torch.Tensor
    jitter: torch.Tensor
    factors: torch.Tensor
    order: torch.Tensor
    gray: torch.Tensor
    blur: torch.Tensor
    sigma: torch.Tensor

    def __getitem__(self, key) -> "AugParams":
        return AugParams(**{f.name: getattr(self, f.name)[key] for f in fields(self)})

    def to(self, device) -> "AugParams":
        return AugParams(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def batch_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """A CPU generator for one global batch, seeded by (seed, epoch, step) only: resumable, worker-free."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_003 + step)


def sample_crop_boxes(n: int, height: int, width: int, scale, ratio, g: torch.Generator,
                      tries: int = 10) -> torch.Tensor:
    """torchvision's RandomResizedCrop rule, vectorised: per image up to ``tries`` draws of
    area ~ U(scale) * H * W and log aspect ~ U(log ratio), w = round(sqrt(area * aspect)),
    h = round(sqrt(area / aspect)); the first draw that fits is kept, its top-left uniform over the valid
    positions; if none fits, the central crop of the whole image clipped to the ratio range."""
    area = height * width
    target = torch.empty(n, tries, dtype=torch.float64).uniform_(scale[0], scale[1], generator=g) * area
    log_r = torch.empty(n, tries, dtype=torch.float64).uniform_(math.log(ratio[0]), math.log(ratio[1]),
                                                                 generator=g)
    aspect = torch.exp(log_r)
    w = torch.round(torch.sqrt(target * aspect)).long()
    h = torch.round(torch.sqrt(target / aspect)).long()
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = ok.long().argmax(dim=1, keepdim=True)  # index of the first fitting try (0 if none)
    found = ok.any(dim=1)
    w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]
    # fallback: central crop of the whole image, clipped to the ratio range
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fw, fh = int(round(height * max(ratio))), height
    else:
        fw, fh = width, height
    w, h = torch.where(found, w, fw), torch.where(found, h, fh)
    u = torch.rand(n, 2, generator=g, dtype=torch.float64)
    top = torch.where(found, torch.floor(u[:, 0] * (height - h + 1)).long(), (height - fh) // 2)
    left = torch.where(found, torch.floor(u[:, 1] * (width - w + 1)).long(), (width - fw) // 2)
    return torch.stack([top, left, h, w], dim=1)


def sample_params(n: int, height: int, width: int, config: AugConfig, g: torch.Generator,
                  crop: bool = True) -> AugParams:
    """Parameters of n views of (height x width) images, all drawn from ``g`` in a fixed order.
    ``crop`` False: the images are already cropped (file-list data): the box is the whole image."""
    if crop:
        boxes = sample_crop_boxes(n, height, width, config.scale, config.ratio, g)
    else:
        boxes = torch.tensor([0, 0, height, width]).repeat(n, 1)
    flip = torch.rand(n, generator=g) < config.flip_p
    jitter = torch.rand(n, generator=g) < config.jitter_p
    lo_hi = [(max(0.0, 1 - s), 1 + s) for s in config.jitter[:3]] + [(-config.jitter[3], config.jitter[3])]
    u = torch.rand(n, 4, generator=g)
    factors = torch.stack([lo + (hi - lo) * u[:, k] for k, (lo, hi) in enumerate(lo_hi)], dim=1)
    order = torch.rand(n, 4, generator=g).argsort(dim=1)  # a uniform random permutation per image
    gray = torch.rand(n, generator=g) < config.gray_p
    blur = torch.rand(n, generator=g) < config.blur_p
    sigma = config.blur_sigma[0] + (config.blur_sigma[1] - config.blur_sigma[0]) * torch.rand(n, generator=g)
    return AugParams(boxes, flip, jitter, factors, order, gray, blur, sigma)


def _cubic(x: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """PIL's bicubic filter (a = -0.5), the one antialiased resizing uses."""
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def resample_matrix(start: torch.Tensor, length: torch.Tensor, in_size: int, out_size: int,
                    flip: torch.Tensor | None = None) -> torch.Tensor:
    """(n, out_size, in_size) weights mapping the source span [start, start + length) of each image to
    out_size pixels, as antialiased bicubic resizing computes them:
    s = length / out, centre_i = s (i + 1/2), support = 2 max(s, 1), taps j in
    [trunc(centre - support + 1/2), trunc(centre + support + 1/2)) clipped to the span,
    w_ij = cubic((j - centre_i + 1/2) / max(s, 1)), each row normalised to sum 1.
    ``flip`` reverses the output order of the flagged images."""
    start, length = start.to(torch.float64), length.to(torch.float64)
    s = (length / out_size)[:, None, None]
    stretch = s.clamp(min=1.0)
    centre = s * (torch.arange(out_size, dtype=torch.float64, device=start.device)[None, :, None] + 0.5)
    support = 2.0 * stretch
    lo = torch.trunc(centre - support + 0.5).clamp(min=0)
    hi = torch.minimum(torch.trunc(centre + support + 0.5), length[:, None, None])
    j = torch.arange(in_size, dtype=torch.float64, device=start.device)[None, None, :] - start[:, None, None]
    w = _cubic((j - centre + 0.5) / stretch) * ((j >= lo) & (j < hi))
    w = w / w.sum(dim=2, keepdim=True)
    if flip is not None:
        w = torch.where(flip[:, None, None], w.flip(1), w)
    return w.float()


TABLE_MAX_SIZE = 64  # up to here the weights of every (start, length) span are built once and looked up


@lru_cache(maxsize=8)
def resample_table(in_size: int, out_size: int, device: torch.device) -> torch.Tensor:
    """``resample_matrix`` of every span, row start * (in_size + 1) + length (zero where the span does not
    fit): (in_size (in_size + 1), out_size, in_size) float32, computed once on the CPU (4.3 MB at 32 px)."""
    start, length = torch.meshgrid(torch.arange(in_size), torch.arange(in_size + 1), indexing="ij")
    start, length = start.reshape(-1), length.reshape(-1)
    valid = (length > 0) & (start + length <= in_size)
    table = torch.zeros(len(start), out_size, in_size)
    table[valid] = resample_matrix(start[valid], length[valid], in_size, out_size)
    return table.to(device)


def span_weights(start: torch.Tensor, length: torch.Tensor, in_size: int, out_size: int,
                 flip: torch.Tensor | None = None) -> torch.Tensor:
    """``resample_matrix``, looked up in ``resample_table`` for small images (the same numbers, without
    evaluating the cubic for every image of every batch)."""
    if in_size > TABLE_MAX_SIZE:
        return resample_matrix(start, length, in_size, out_size, flip)
    w = resample_table(in_size, out_size, start.device)[start * (in_size + 1) + length]
    if flip is not None:
        w = torch.where(flip[:, None, None], w.flip(1), w)
    return w


def resized_crop(images: torch.Tensor, boxes: torch.Tensor, size: int, flip: torch.Tensor | None = None
                 ) -> torch.Tensor:
    """Crop each image's box and resize it to size x size (antialiased bicubic, rounded and clamped to
    [0, 255] as torchvision does for uint8), then flip where ``flip``; float output in [0, 255]."""
    n, _, height, width = images.shape
    boxes = boxes.to(images.device)
    wy = span_weights(boxes[:, 0], boxes[:, 2], height, size)
    wx = span_weights(boxes[:, 1], boxes[:, 3], width, size, flip)
    # horizontal pass first, rounded to whole levels in between, as the uint8 CPU kernel the per-image
    # path uses (clamping the bicubic overshoot between passes changes pixels by up to ~15 levels)
    rows = torch.matmul(images.float(), wx.transpose(1, 2)[:, None]).clamp_(0, 255).round_()
    return torch.matmul(wy[:, None], rows).clamp_(0, 255).round_()


def grey(x: torch.Tensor) -> torch.Tensor:
    """(n, 1, H, W) luma of float images in [0, 255], truncated to whole levels as torchvision's uint8 path."""
    r, g, b = x.unbind(dim=1)
    return r.mul(GRAY_WEIGHTS[0]).add_(g, alpha=GRAY_WEIGHTS[1]).add_(b, alpha=GRAY_WEIGHTS[2]).floor_()[:, None]


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """torchvision's adjust_hue on uint8 values held as floats: to [0, 1], HSV, h += shift (mod 1), RGB,
    back to 0..255 by x (256 - 1e-3) truncated."""
    x = x.mul(1.0 / 255)
    r, g, _ = x.unbind(dim=1)
    maxc, minc = x.amax(dim=1), x.amin(dim=1)
    eqc = maxc == minc
    span = maxc - minc
    ones = torch.ones_like(maxc)
    s = span / torch.where(eqc, ones, maxc)
    rc, gc, bc = ((maxc[:, None] - x) / torch.where(eqc, ones, span)[:, None]).unbind(dim=1)
    neq_r, eq_g = maxc != r, maxc == g
    h = (bc - gc) * ~neq_r + (rc + 2.0 - bc) * (eq_g & neq_r) + (gc + 4.0 - rc) * (neq_r & ~eq_g)
    h = (h * (1.0 / 6.0) + 1.0).fmod(1.0)
    h = (h + shift[:, None, None]).remainder(1.0)
    h6 = h * 6
    i = torch.floor(h6)
    f = h6 - i
    i = i.long().remainder(6)
    v = maxc
    p = ((1.0 - s) * v).clamp(0.0, 1.0)
    q = ((1.0 - s * f) * v).clamp(0.0, 1.0)
    t = ((s * f + (1.0 - s)) * v).clamp(0.0, 1.0)
    vpqt = torch.stack([v, p, q, t], dim=1)  # (n, 4, H, W)
    select = torch.tensor([[0, 2, 1, 1, 3, 0], [3, 0, 0, 2, 1, 1], [1, 1, 3, 0, 0, 2]], device=x.device)
    rgb = torch.gather(vpqt, 1, select[:, i].permute(1, 0, 2, 3))
    return rgb.mul_(256.0 - 1e-3).floor_()


def colour_jitter(x: torch.Tensor, apply: torch.Tensor, factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast, saturation and hue with per-image factors, in each image's own ``order``
    (0 brightness, 1 contrast, 2 saturation, 3 hue), where ``apply``; each op ends on whole levels in
    [0, 255] like torchvision's uint8 ops (brightness, contrast, saturation: clamp then truncate)."""
    for slot in range(4):
        op = torch.where(apply, order[:, slot], torch.full_like(order[:, slot], -1))
        # brightness / contrast / saturation: x f + (1 - f) ref with ref 0 / mean grey / grey
        f = torch.where((op >= 0) & (op < 3), factors.gather(1, op.clamp(0, 3)[:, None])[:, 0], 1.0)
        g = grey(x)
        ref = torch.where((op == 1)[:, None, None, None], g.mean(dim=(1, 2, 3), keepdim=True), g)
        ref = torch.where((op == 0)[:, None, None, None], 0.0, ref)
        f4 = f[:, None, None, None]
        alpha = (1.0 - f4.double()).float()  # torchvision computes 1 - factor in double precision
        x = x.mul(f4).add_(ref * alpha).clamp_(0, 255).floor_()
        hue = op == 3
        if x.is_cuda:  # no host sync: compute for all, keep where chosen
            x = torch.where(hue[:, None, None, None], adjust_hue(x, factors[:, 3]), x)
        else:  # on the CPU compute only the chosen images
            idx = hue.nonzero()[:, 0]
            if len(idx):
                x = x.index_copy(0, idx, adjust_hue(x[idx], factors[idx, 3]))
    return x


def grayscale(x: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    return torch.where(apply[:, None, None, None], grey(x).expand_as(x), x)


def gaussian_blur(x: torch.Tensor, apply: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Per-image Gaussian blur (torchvision's kernel: softmax of -(d / sigma)^2 / 2 over d = -k/2..k/2,
    reflect padding, rounded), as one grouped separable convolution.

    On CUDA the convolution runs in float64: cuDNN may compute float32 convolutions in TF32 (PyTorch's
    default), whose 10-bit mantissa would move many pixels across a rounding boundary (a level off the CPU's
    result); the blur is a small part of a step, so the cost does not matter."""
    n, c, h, w = x.shape
    half = (kernel_size - 1) / 2
    d = torch.linspace(-half, half, kernel_size, device=x.device)
    k = torch.softmax(-(d[None] / sigma.to(x.device)[:, None]).pow(2) / 2, dim=1)  # (n, k)
    k = k.repeat_interleave(c, dim=0)  # one kernel per (image, channel) group
    dtype = torch.float64 if x.is_cuda else x.dtype
    k = k.to(dtype)
    pad = kernel_size // 2
    y = F.pad(x.reshape(1, n * c, h, w).to(dtype), (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, k[:, None, None, :], groups=n * c)
    y = F.conv2d(y, k[:, None, :, None], groups=n * c)
    return torch.where(apply[:, None, None, None], y.reshape(n, c, h, w).round_().to(x.dtype), x)


def augment(images: torch.Tensor, params: AugParams, config: AugConfig, crop: bool = True) -> torch.Tensor:
    """uint8 (n, 3, H, W) on any device -> augmented float32 (n, 3, size, size) holding whole levels in
    [0, 255]. ``crop`` False: images are already cropped to size (file-list data); the rest still runs."""
    params = params.to(images.device)
    if crop:
        x = resized_crop(images, params.boxes, config.size, params.flip)
    else:
        x = torch.where(params.flip[:, None, None, None], images.flip(-1), images).float()
    x = colour_jitter(x, params.jitter, params.factors, params.order)
    x = grayscale(x, params.gray)
    if config.blur_p > 0:
        x = gaussian_blur(x, params.blur, params.sigma, config.blur_kernel)
    return x


def two_views(images: torch.Tensor, config: AugConfig, seed: int, epoch: int, step: int,
              rank: int = 0, world_size: int = 1, crop: bool = True, strengths: torch.Tensor | None = None,
              randaug: RandAugConfig | None = None) -> torch.Tensor:
    """Two augmented views (b, 2, 3, size, size), float in [0, 255], of this rank's b images of global batch
    ``step``: parameters are drawn for all world_size x b images (view 1 of every image, then view 2) and
    this rank takes its slice. ``crop`` False: ``images`` is (b, 2, 3, size, size), views cropped already.

    ``strengths`` (b,) in [0, 1], this rank's items' (BCL): ``randaug`` RandAugment after the whole SimCLR
    view (blur included), its parameters drawn for the whole global batch after all SimCLR parameters (their
    number does not depend on the strengths, so the other ranks' strengths are not needed)."""
    b = images.shape[0]
    n = b * world_size
    hw = images.shape[-2:]
    g = batch_generator(seed, epoch, step)
    params = sample_params(2 * n, hw[0], hw[1], config, g, crop=crop)
    mine = torch.cat([torch.arange(rank * b, (rank + 1) * b), n + torch.arange(rank * b, (rank + 1) * b)])
    src = torch.cat([images, images]) if crop else torch.cat([images[:, 0], images[:, 1]])
    out = augment(src, params[mine], config, crop=crop)
    if strengths is not None:
        if randaug is None:
            raise ValueError("RandAugment strengths were given without a RandAugConfig")
        strengths = torch.as_tensor(strengths).detach().to("cpu", torch.float64).reshape(-1)
        if len(strengths) != b:
            raise ValueError(f"got {len(strengths)} RandAugment strengths for {b} images")
        everyone = torch.zeros(n, dtype=torch.float64)  # other ranks' rows are drawn, then dropped
        everyone[rank * b:(rank + 1) * b] = strengths
        out = randaugment(out, sample_two_view_params(everyone, randaug, g)[mine])
    return torch.stack([out[:b], out[b:]], dim=1)
