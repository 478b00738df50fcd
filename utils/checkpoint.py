"""Atomic checkpoint writes, safe loads, and the RNG state that exact resumption needs."""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it into place.

    A crash leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results should be as readable as any file
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load with ``weights_only=True``: tensors and plain containers only, never arbitrary pickled code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or unsafe files
        raise ValueError(f"cannot load checkpoint {path}: {e}") from e


def rng_state() -> dict:
    """Every RNG the training loop touches, in types that ``weights_only`` loading accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x):
    """torch.save keeps tuples, but be tolerant of lists from other writers."""
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the ``.<name>.*.tmp`` files that an interrupted :func:`atomic_write` left in ``folder``.

    Call it only from the one process that owns the folder, before it writes anything: a temporary is
    stale once no writer is running.
    """
    removed = []
    folder = Path(folder)
    if folder.is_dir():
        for tmp in folder.glob(".*.tmp"):
            if tmp.is_file():
                tmp.unlink()
                removed.append(tmp)
    return removed


def shape_mismatches(expected: dict, loaded: dict) -> list[str]:
    """Keys of ``expected`` (a model's state dict) that ``loaded`` lacks or holds with another shape."""
    out = []
    for key, value in expected.items():
        other = loaded.get(key)
        if other is None or tuple(getattr(other, "shape", ())) != tuple(value.shape):
            out.append(f"{key} {tuple(value.shape)} (checkpoint: "
                       f"{'missing' if other is None else tuple(other.shape)})")
    return out


def strip_module_prefix(state_dict: dict) -> dict:
    """Drop the ``module.`` prefix that DDP-wrapped models add to every key."""
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}
