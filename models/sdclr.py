r"""SDCLR (Jiang et al., "Self-Damaging Contrastive Learning", ICML 2021): one weight set, two branches.

The dense branch is the SimCLR network. The pruned branch is the same network with the smallest-magnitude
convolution weights set to zero: for every convolution weight :math:`W_l` it convolves with
:math:`W_l \odot M_l`, where the masks :math:`M_l \in \{0, 1\}` come from one global magnitude threshold
over all convolutions (stem, blocks, shortcuts; never BatchNorm, the projection head or biases), rebuilt
from the weights at the start of every epoch (:meth:`SDCLRNetwork.update_masks`). With dual BatchNorm
every BatchNorm (backbone and head) has a second set that only the pruned branch uses; without it both
branches share the BatchNorms. Linear layers and biases are shared and unpruned.

A step contrasts view 1 through the dense branch with view 2 through the pruned one:
``z1, z2 = net(x1, x2)`` runs both in one forward, so one backward of NT-Xent(z1, z2) gives
:math:`\partial L / \partial \theta = \partial L / \partial z_1 \cdot \partial z_1 / \partial \theta +
\partial L / \partial z_2 \cdot \partial z_2 / \partial \theta`, the sum that the release accumulates in
two forward/backward passes. Since :math:`\partial (W \odot M) / \partial W = M`, a pruned weight gets
gradient from the dense branch only.

``net(x)``, ``net.features(x)`` and ``net.fc(h)`` are the dense branch, so embedding passes, probes and
inference treat the network as a plain SimCLR one. Parameter names are those of ``build_simclr``, except the
dual BatchNorms' ``<bn>.dense.*`` / ``<bn>.pruned.*``; :func:`dense_state_dict` turns our checkpoints and
the release's into ``build_simclr`` weights.

Masks are buffers that are not saved: after a resume the next epoch start recomputes them. They are equal on
every rank because they are computed, deterministically, from weights that DDP keeps equal.
"""
from __future__ import annotations

import copy
import math
from fractions import Fraction

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.heads import ProjectionHead
from models.resnet import MODEL_NAMES, ResNetEncoder
from utils.device import IMAGENET_MEAN, IMAGENET_STD


class MaskedConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose pruned branch convolves with ``weight * mask``.

    ``mask`` is a bool buffer of the weight's shape (1: kept), all ones until the first
    :meth:`SDCLRNetwork.update_masks`; it is not part of the state dict.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros":
            raise ValueError(f"MaskedConv2d supports padding_mode 'zeros' only, got {self.padding_mode!r}")
        self.register_buffer("mask", torch.ones_like(self.weight, dtype=torch.bool), persistent=False)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> "MaskedConv2d":
        """A masked convolution holding ``conv``'s own parameters (not copies)."""
        masked = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                     padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
                     padding_mode=conv.padding_mode, device=conv.weight.device, dtype=conv.weight.dtype)
        masked.weight = conv.weight
        masked.bias = conv.bias
        return masked

    def forward(self, x: torch.Tensor, pruned: bool = False) -> torch.Tensor:
        weight = self.weight * self.mask if pruned else self.weight
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class DualBatchNorm(nn.Module):
    """Two BatchNorms of one kind and size (1d, 2d or SyncBatchNorm): ``dense`` normalises the dense
    branch, ``pruned`` the pruned one. ``forward(x)`` is the dense set.

    Both are ordinary BatchNorm children, so ``nn.SyncBatchNorm.convert_sync_batchnorm`` converts both.
    """

    def __init__(self, norm: nn.modules.batchnorm._BatchNorm):
        super().__init__()
        self.dense = norm
        self.pruned = copy.deepcopy(norm)

    def forward(self, x: torch.Tensor, pruned: bool = False) -> torch.Tensor:
        return self.pruned(x) if pruned else self.dense(x)


def _norm(module: nn.Module, x: torch.Tensor, pruned: bool) -> torch.Tensor:
    """A BatchNorm of either branch: the branch's set of a DualBatchNorm, else the shared one."""
    return module(x, pruned) if isinstance(module, DualBatchNorm) else module(x)


def _block(block: nn.Module, x: torch.Tensor, pruned: bool) -> torch.Tensor:
    """torchvision's BasicBlock / Bottleneck forward with the branch passed to every conv and BatchNorm."""
    out = F.relu(_norm(block.bn1, block.conv1(x, pruned), pruned), inplace=True)
    out = _norm(block.bn2, block.conv2(out, pruned), pruned)
    if hasattr(block, "conv3"):  # Bottleneck
        out = _norm(block.bn3, block.conv3(F.relu(out, inplace=True), pruned), pruned)
    identity = x
    if block.downsample is not None:
        conv, norm = block.downsample
        identity = _norm(norm, conv(x, pruned), pruned)
    return F.relu(out + identity, inplace=True)


class SDCLRProjectionHead(ProjectionHead):
    """The SimCLR projection head (fc1-bn1-relu-fc2-bn2) whose BatchNorms may be dual; the Linear layers
    are shared by both branches and never pruned."""

    def forward(self, x: torch.Tensor, pruned: bool = False) -> torch.Tensor:
        x = F.relu(_norm(self.bn1, self.fc1(x), pruned), inplace=True)
        return _norm(self.bn2, self.fc2(x), pruned)


class SDCLRNetwork(ResNetEncoder):
    """The two-branch network: ``forward(x)`` the dense branch's projections, ``forward(x, x_pruned)``
    ``(dense(x), pruned(x_pruned))`` in one call (one DDP forward per backward)."""

    def __init__(self, block, layers, width: int = 64, cifar_stem: bool = True, output_ch: int = 128,
                 dual_bn: bool = True):
        super().__init__(block, layers, width=width, cifar_stem=cifar_stem)
        self.fc = SDCLRProjectionHead(self.feature_dim, output_ch)
        self.dual_bn = dual_bn
        for parent in list(self.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Conv2d):
                    setattr(parent, name, MaskedConv2d.from_conv(child))
                elif dual_bn and isinstance(child, nn.modules.batchnorm._BatchNorm):
                    setattr(parent, name, DualBatchNorm(child))

    def features(self, x: torch.Tensor, pruned: bool = False) -> torch.Tensor:
        """Pooled backbone features of one branch (the dense one by default)."""
        x = self.maxpool(F.relu(_norm(self.bn1, self.conv1(x, pruned), pruned), inplace=True))
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                x = _block(block, x, pruned)
        return torch.flatten(self.avgpool(x), 1)

    def forward_branch(self, x: torch.Tensor, pruned: bool) -> torch.Tensor:
        """Projections of one branch."""
        return self.fc(self.features(x, pruned), pruned)

    def forward(self, x: torch.Tensor, x_pruned: torch.Tensor | None = None):
        if x_pruned is None:
            return self.forward_branch(x, False)
        return self.forward_branch(x, False), self.forward_branch(x_pruned, True)

    def masked_convs(self) -> list[MaskedConv2d]:
        """Every convolution (stem, blocks, shortcuts) in module order: the prunable weights."""
        return [m for m in self.modules() if isinstance(m, MaskedConv2d)]

    @torch.no_grad()
    def update_masks(self, prune_percent: float) -> float:
        """Global magnitude pruning: zero the ``prune_count(prune_percent, N)`` smallest |w| of the N
        convolution weights (ties broken by position, see :func:`magnitude_keep`). Returns the threshold."""
        convs = self.masked_convs()
        # reshape(-1) walks each weight in its logical order whatever its memory format (channels_last)
        magnitudes = torch.cat([c.weight.detach().reshape(-1).abs() for c in convs])
        keep, threshold = magnitude_keep(magnitudes, prune_percent)
        for conv, part in zip(convs, keep.split([c.weight.numel() for c in convs])):
            conv.mask.copy_(part.view(conv.weight.shape))
        return threshold

    @torch.no_grad()
    def density(self) -> float:
        """Fraction of the convolution weights that the pruned branch keeps."""
        convs = self.masked_convs()
        kept = torch.stack([c.mask.sum() for c in convs]).sum()
        return kept.item() / sum(c.mask.numel() for c in convs)


def prune_count(prune_percent: float, n: int) -> int:
    """ceil(p N) as the release prunes, computed exactly on p's decimal form: in floating point
    0.07 * 100 = 7.000000000000001 would prune one weight more."""
    p = float(prune_percent)
    if not 0 <= p < 1:  # also refuses nan
        raise ValueError(f"prune_percent must be in [0, 1), got {prune_percent!r}")
    return math.ceil(Fraction(repr(p)) * n)


def magnitude_keep(magnitudes: torch.Tensor, prune_percent: float) -> tuple[torch.Tensor, float]:
    r"""(keep, threshold) for a flat tensor of N magnitudes: ``keep`` is False at exactly
    :math:`k = \lceil p N \rceil` entries, the k smallest in the order (magnitude, position).

    ``threshold`` :math:`t` is the k-th smallest magnitude (0 when k = 0): every entry below :math:`t` is
    pruned, every entry above it kept, and of the entries equal to :math:`t` the first
    :math:`k - |\{i: m_i < t\}|` by position are pruned. Without ties this is the release's rule
    (keep :math:`m_i \ge` the (k+1)-th smallest) with the same k.
    """
    n = magnitudes.numel()
    k = prune_count(prune_percent, n)
    if k == 0:
        return torch.ones_like(magnitudes, dtype=torch.bool), 0.0
    threshold = magnitudes.kthvalue(k).values
    below = magnitudes < threshold
    tie = magnitudes == threshold
    still_to_prune = k - below.sum()
    pruned = below | (tie & (tie.cumsum(0) <= still_to_prune))
    return ~pruned, float(threshold)


def build_sdclr(name: str, width: int = 64, cifar_stem: bool = True, output_ch: int = 128,
                dual_bn: bool = True) -> SDCLRNetwork:
    """The SDCLR network of a ResNet (``res18`` / ``res50``) with the SimCLR projection head; ``dual_bn``:
    a second BatchNorm set for the pruned branch (the release's ``--prune_dual_bn``)."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODEL_NAMES)}")
    block, layers = MODEL_NAMES[name]
    return SDCLRNetwork(block, layers, width=width, cifar_stem=cifar_stem, output_ch=output_ch, dual_bn=dual_bn)


_PREFIXES = ("module.", "backbone.")  # DDP / DataParallel wrapping; the BCL release's SDCLR wrapper


def dense_state_dict(weights: dict) -> dict:
    """The dense branch of an SDCLR state dict in ``build_simclr``'s key layout; plain weights unchanged.

    Accepts ours (``<bn>.dense.*`` kept, ``<bn>.pruned.*`` dropped) and the releases' (SDCLR and BCL):
    ``module.`` / ``backbone.`` prefixes stripped; ``<bn>.bn_list.0.*`` kept (the "nonprune" set, the
    release's ``--bnNameCnt 0``), other ``bn_list`` indices dropped; the ``*_prune`` head copies dropped;
    ``downsample.conv`` / ``downsample.bn`` renamed ``downsample.0`` / ``downsample.1``; the input
    normalisation buffers (``normalize.mean`` / ``.std``) dropped once checked to be the ImageNet statistics,
    which our inputs already carry. Raises ValueError for other normalisation statistics or when two keys
    would give the same name.
    """
    out, source = {}, {}
    for key, value in weights.items():
        new = _dense_key(key, value) if isinstance(key, str) else key
        if new is None:
            continue
        if new in out:
            raise ValueError(f"checkpoint keys {source[new]!r} and {key!r} both give {new!r}")
        out[new], source[new] = value, key
    return out


def _dense_key(key: str, value) -> str | None:
    """``key`` in the plain layout, or None for a key of the pruned branch or the input normalisation."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    parts = key.split(".")
    if parts[0] == "normalize" and len(parts) == 2:
        _check_normalisation(parts[1], value)
        return None
    if any(p.endswith("_prune") for p in parts) or "pruned" in parts[:-1]:
        return None
    if "bn_list" in parts[:-1]:
        i = parts.index("bn_list")
        if parts[i + 1].isdigit() and i + 2 < len(parts):
            if parts[i + 1] != "0":
                return None
            del parts[i:i + 2]
        else:  # the release's single-set BatchNorm wrapper
            del parts[i]
    if "dense" in parts[:-1]:
        parts.remove("dense")
    for i in range(len(parts) - 2):
        if parts[i] == "downsample" and parts[i + 1] in ("conv", "bn"):
            parts[i + 1] = "0" if parts[i + 1] == "conv" else "1"
    return ".".join(parts)


def _check_normalisation(name: str, value) -> None:
    expected = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}.get(name)
    if expected is None or not torch.is_tensor(value) or value.numel() != 3 or \
            not torch.allclose(value.detach().double().cpu().flatten(), torch.tensor(expected, dtype=torch.float64),
                               atol=1e-6):
        raise ValueError(f"the checkpoint normalises its inputs with normalize.{name} = "
                         f"{value.tolist() if torch.is_tensor(value) else value!r}; this project's inputs are "
                         f"normalised with the ImageNet statistics (mean {IMAGENET_MEAN}, std {IMAGENET_STD})")
