"""A whole pre-trained SimCLR network (encoder and projection head) rebuilt from a checkpoint."""
from __future__ import annotations

from pathlib import Path

from models.sdclr import dense_state_dict
from models.simclr import build_simclr
from utils.checkpoint import load_checkpoint


def load_simclr(path: str | Path):
    """(network, pre-training args) of a checkpoint of ours, a DDP one or the original releases'; of an
    SDCLR checkpoint (ours or the release's) the dense branch.

    The architecture is read off the weights (ResNet-18/50, width, stem, head size), so nothing has to
    be restated on the command line. Raises ValueError for a file that holds no such network.
    """
    state = load_checkpoint(path, map_location="cpu")
    weights = state.get("state_dict", state.get("model", state)) if isinstance(state, dict) else None
    weights = dense_state_dict(weights) if isinstance(weights, dict) else None  # SDCLR: its dense branch
    if weights is None or "conv1.weight" not in weights:
        raise ValueError(f"{path}: no SimCLR network found (expected a 'state_dict' with conv1.weight)")
    if "fc.fc2.weight" not in weights:
        raise ValueError(f"{path}: the checkpoint has no projection head (fc.fc1 / fc.fc2): "
                         f"inference needs a pre-training checkpoint, not a probe")
    name = "res50" if any(k.startswith("layer1.0.conv3") for k in weights) else "res18"
    net = build_simclr(name, width=weights["conv1.weight"].shape[0],
                       cifar_stem=weights["conv1.weight"].shape[-1] == 3,
                       output_ch=weights["fc.fc2.weight"].shape[0])
    missing, unexpected = net.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit a {name} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return net, (state.get("args", {}) or {})
