"""Atomic checkpoint writes, safe loads, and the RNG state that exact resumption needs."""
from __future__ import annotations

import math
import os
import random
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from utils.errors import WriteError, os_error_message


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it into place.

    A crash leaves either the old file or the new one, never half of one. A failure of the file system (a
    full disk, a read-only mount, torch's stream writer failing) raises WriteError, an OSError whose message
    names ``path`` and says that an earlier file there is unchanged.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results should be as readable as any file
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        error = WriteError(write_failure(path, e))  # before the temporary goes: its size tells a full disk
        error.errno = getattr(e, "errno", None) or _errno_of(e, path.parent)
        _remove_quietly(tmp)
        raise error from e
    except BaseException:
        _remove_quietly(tmp)
        raise


def _remove_quietly(tmp) -> None:
    try:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    except OSError:
        pass


def _errno_of(error: Exception, folder: Path | None = None) -> int | None:
    """torch's stream writer reports a full disk as a RuntimeError ("file write failed", or an "enforce
    fail" about the position it reached); such a failure on a file system with (almost) no free space left
    is taken for ENOSPC."""
    text = str(error)
    if "No space left" in text:
        return 28
    if isinstance(error, RuntimeError) and ("write failed" in text or "inline_container" in text):
        try:
            free = shutil.disk_usage(folder).free if folder is not None else None
        except OSError:
            free = None
        if free is None or free < (1 << 20):
            return 28
    return None


def write_failure(path: Path, error: Exception) -> str:
    """``cannot write <path>: <why>; <what is kept>``."""
    if isinstance(error, OSError) and error.errno is not None:
        reason = os_error_message(error).split(": ", 1)[-1] if error.filename else os_error_message(error)
    elif _errno_of(error, path.parent) == 28:
        reason = "no space left on device: free some space or write elsewhere"
    elif isinstance(error, RuntimeError):
        reason = f"torch's writer failed ({' '.join(str(error).split())[:200]})"
    else:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    kept = f"the earlier {path.name} is unchanged" if path.is_file() else "nothing was written there"
    return f"cannot write {path}: {reason}; {kept}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | os.PathLike, map_location="cpu"):
    """Load with ``weights_only=True``: tensors and plain containers only, never arbitrary pickled code.

    Every failure is one line: FileNotFoundError for a missing file, ValueError for a folder, an unreadable,
    unsafe or damaged file (with torch's reason, shortened to one line)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"checkpoint {path} is a folder: name the checkpoint file in it (e.g. {path / 'model.pt'})")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except OSError as e:
        raise ValueError(f"cannot read checkpoint {path}: {os_error_message(e).split(': ', 1)[-1]}") from e
    except Exception as e:  # torch raises several types for corrupt or unsafe files
        raise ValueError(f"cannot load checkpoint {path}: {load_failure_reason(e)}") from e


def load_failure_reason(error: Exception) -> str:
    """torch.load's reason on one line: the refused global of an unsafe file, or what is damaged."""
    text = str(error)
    if "Weights only load failed" in text:
        found = re.search(r"(?:WeightsUnpickler error: |Trying to load )([^\n]*)", text)
        detail = found.group(1).split(". Please")[0].rstrip(". ") if found else "an object that is not a tensor"
        return (f"it holds pickled objects other than tensors and plain containers, refused for safety "
                f"({detail})")
    if isinstance(error, KeyError) or "invalid load key" in text or "magic number" in text.lower():
        return "not a PyTorch checkpoint file"
    first = text.strip().split(". ")[0].splitlines()[0] if text.strip() else type(error).__name__
    return f"the file is damaged or truncated ({first})"


def check_weights(weights, path, what: str = "weights") -> dict:
    """A state dict of named tensors, every floating tensor finite; ValueError naming ``path`` if not."""
    if not isinstance(weights, dict) or not weights:
        found = "an empty dict" if isinstance(weights, dict) else type(weights).__name__
        raise ValueError(f"{path}: {what} must be a dict of named tensors, found {found}")
    wrong = [k for k, v in weights.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if wrong:
        value = weights[wrong[0]]
        raise ValueError(f"{path}: {what} entry {wrong[0]!r} is of type {type(value).__name__}, not a tensor "
                         f"({len(wrong)} such entries)")
    bad = [k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"{path}: {len(bad)} {what} tensor(s) hold NaN or infinite values (e.g. {bad[0]}): "
                         f"the run that saved it diverged; use an earlier checkpoint")
    return weights


def check_training_state(state, path) -> dict:
    """A checkpoint to resume training from: weights, epoch, optimiser, scheduler and RNG states."""
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a pre-training checkpoint of this project (it holds a "
                         f"{type(state).__name__}, not a dict)")
    missing = [k for k in ("state_dict", "epoch", "optimizer", "scheduler", "rng") if k not in state]
    if missing:
        raise ValueError(f"{path} is not a pre-training checkpoint of this project (no {', '.join(missing)})")
    check_weights(state["state_dict"], path, "state_dict")
    epoch = state["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"{path}: 'epoch' must be a whole number >= 0, found {epoch!r}")
    for key in ("optimizer", "scheduler", "rng"):
        if not isinstance(state[key], dict):
            raise ValueError(f"{path}: {key!r} must be a dict, found a {type(state[key]).__name__}")
    if not isinstance(state.get("args", {}) or {}, dict):
        raise ValueError(f"{path}: 'args' must be a dict of the run's settings")
    rng = state["rng"]
    if not {"python", "numpy", "torch"} <= rng.keys() or not isinstance(rng["torch"], torch.Tensor):
        raise ValueError(f"{path}: 'rng' lacks the python / numpy / torch generator states")
    return state


def is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
