"""The one reader of pre-training checkpoints: every entry point that loads an encoder comes here.

A checkpoint of ours, a DDP one or the original releases' is loaded safely (``weights_only``), its
structure, tensor shapes and finiteness are checked, its weight names are normalised in one place
(:func:`normalise_keys`), and the architecture is read off the weights (ResNet-18/50, width, stem, head
size), so nothing has to be restated on the command line. Every problem is a ValueError (or
FileNotFoundError) of one line naming the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from models.resnet import build_encoder
from models.sdclr import dense_state_dict
from models.simclr import build_simclr
from utils.checkpoint import check_weights, load_checkpoint, shape_mismatches, strip_module_prefix


def normalise_keys(weights: dict) -> dict:
    """Weight names of any supported checkpoint -> this project's names (conv1.*, layer1-4.*, fc.fc1.*,
    fc.fc2.*). The only place where names are converted: DDP's ``module.`` prefix, and SDCLR's (ours or the
    releases') dual BatchNorm and pruned-head names, whose dense branch is kept."""
    return dense_state_dict(strip_module_prefix(weights))


@dataclass
class Pretrained:
    """A checked pre-training checkpoint: normalised weights, the run's settings, its whole state and the
    architecture read off the weights."""
    path: Path
    weights: dict
    args: dict
    state: dict
    model: str
    width: int
    cifar_stem: bool
    output_ch: int | None  # None: no projection head in the file

    def describe(self) -> str:
        return f"{self.model} of width {self.width}{' (32x32 stem)' if self.cifar_stem else ''}"


def read_pretrained(path: str | Path) -> Pretrained:
    """Load and check a pre-training checkpoint (ValueError / FileNotFoundError of one line)."""
    path = Path(path)
    state = load_checkpoint(path, map_location="cpu")
    if isinstance(state, dict) and isinstance(state.get("state_dict", state.get("model")), dict):
        weights = state.get("state_dict", state.get("model"))
    elif isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values()):
        weights, state = state, {"state_dict": state}  # a bare state dict
    else:
        found = type(state).__name__ if not isinstance(state, dict) else f"a dict of {', '.join(map(str, list(state)[:5]))}"
        raise ValueError(f"{path}: not a pre-training checkpoint (expected a dict with a 'state_dict' of "
                         f"weights, found {found})")
    weights = normalise_keys(check_weights(weights, path))
    args = state.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ValueError(f"{path}: its 'args' entry is a {type(args).__name__}, not the run's settings (a dict)")
    conv1 = weights.get("conv1.weight")
    if conv1 is None or conv1.dim() != 4 or conv1.shape[1] != 3 or conv1.shape[-1] not in (3, 7):
        found = "missing" if conv1 is None else f"of shape {tuple(conv1.shape)}"
        raise ValueError(f"{path}: no ResNet encoder found (conv1.weight is {found}; expected "
                         f"(width, 3, 3, 3) or (width, 3, 7, 7))")
    head = weights.get("fc.fc2.weight")
    if head is not None and head.dim() != 2:
        raise ValueError(f"{path}: fc.fc2.weight has shape {tuple(head.shape)}, expected (output_ch, hidden)")
    return Pretrained(path=path, weights=weights, args=args, state=state,
                      model="res50" if any(k.startswith("layer1.0.conv3") for k in weights) else "res18",
                      width=int(conv1.shape[0]), cifar_stem=conv1.shape[-1] == 3,
                      output_ch=None if head is None else int(head.shape[0]))


def load_into(net: torch.nn.Module, weights: dict, path, what: str) -> None:
    """``net.load_state_dict(weights)`` over the keys of ``net``, with one line instead of torch's
    missing-key / size-mismatch traceback."""
    mismatches = shape_mismatches(net.state_dict(), weights)
    if mismatches:
        raise ValueError(f"{path}: the weights do not fit {what} ({len(mismatches)} tensors differ, e.g. "
                         f"{mismatches[0]})")
    net.load_state_dict({k: weights[k] for k in net.state_dict()}, strict=True)


def load_simclr(path: str | Path):
    """(network with projection head, pre-training args) of a checkpoint; for inference."""
    ckpt = read_pretrained(path)
    if ckpt.output_ch is None:
        raise ValueError(f"{path}: the checkpoint has no projection head (fc.fc1 / fc.fc2): inference needs a "
                         f"pre-training checkpoint, not a probe or a bare encoder")
    net = build_simclr(ckpt.model, width=ckpt.width, cifar_stem=ckpt.cifar_stem, output_ch=ckpt.output_ch)
    load_into(net, ckpt.weights, path, f"a {ckpt.describe()} with a {ckpt.output_ch}-d head")
    return net, ckpt.args


def load_encoder(path: str | Path, device: torch.device | str = "cpu"):
    """(encoder without projection head, pre-training args) of a checkpoint; for probing."""
    ckpt = read_pretrained(path)
    encoder = build_encoder(ckpt.model, width=ckpt.width, cifar_stem=ckpt.cifar_stem)
    weights = {k: v for k, v in ckpt.weights.items() if not k.startswith("fc.")}
    load_into(encoder, weights, path, f"a {ckpt.describe()}")
    return encoder.to(device), ckpt.args
