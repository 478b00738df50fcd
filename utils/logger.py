"""Per-run outputs: log.txt, TensorBoard events and args.json, written by rank 0 only.

Log lines go through ``tqdm.write``, so on a terminal they print on their own line above any progress bar.
Progress bars are drawn only when stderr is a terminal (``progress_disabled``): in a redirected output the
bars' carriage returns would run into the log lines.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from tqdm import tqdm

from utils.checkpoint import atomic_write


def progress_disabled(is_main: bool = True) -> bool | None:
    """tqdm's ``disable`` value: off on other ranks; None (tqdm: off unless stderr is a terminal) on rank 0."""
    return None if is_main else True


class RunLogger:
    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._file = self._tb = None
        if enabled:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._file = open(self.run_dir / "log.txt", "a", buffering=1)
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))

    def info(self, message: str) -> None:
        if not self.enabled:
            return
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        tqdm.write(line, file=sys.stdout)
        sys.stdout.flush()
        self._file.write(line + "\n")

    def scalars(self, values: dict, step: int, prefix: str = "") -> None:
        if self._tb is not None:
            for name, value in values.items():
                self._tb.add_scalar(prefix + name, value, step)

    def histogram(self, name: str, values, step: int) -> None:
        if self._tb is not None and len(values):
            self._tb.add_histogram(name, values, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._file is not None:
            self._file.close()


def write_args(args, path: str | Path, ran: dict | None = None) -> None:
    """args.json: every flag of the run, to read back or to repeat it, and under "run" what actually ran
    (``ran``: e.g. the augmentation path and arithmetic a flag's "auto" or a CPU turned into), the code's
    commit and the library versions (written atomically)."""
    record = json_safe(vars(args))
    record["run"] = {**(ran or {}), **environment()}
    text = json.dumps(record, indent=2, sort_keys=True, default=str, allow_nan=False) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def environment() -> dict:
    """The checkout's commit (with "+changes" when the work tree differs from it, or "not a git checkout")
    and the versions of Python and the libraries the numbers depend on."""
    import platform
    import subprocess

    import numpy
    import torch
    import torchvision
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        changed = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
        commit += "+changes" if changed else ""
    except (OSError, subprocess.SubprocessError):
        commit = "not a git checkout"
    return {"commit": commit, "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": numpy.__version__, "cpu": cpu_name(),
            "cuda": torch.version.cuda if torch.cuda.is_available() else None}


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else the machine type."""
    import platform
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def json_safe(value):
    """``value`` with non-finite floats as the strings "nan", "inf", "-inf": JSON has no NaN or Infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
