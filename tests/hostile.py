"""Shared inputs and checks of the hostile-input suites (tests/test_hostile_*.py).

A case runs an entry point on bad input as its own process (tests/case_runner.py) and passes when the
process exits non-zero with exactly one ``error: ...`` line on stderr (no traceback), and every file that
must survive has the same SHA-256 afterwards. Read-only and full-disk cases mount a read-only bind or a
small tmpfs (root only; they skip with the reason elsewhere); unreadable files are made with mode 000 and
read as an unprivileged user when the tests run as root (root reads anything).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

NOBODY = 65534


def image_list_with_a_bad_image(folder: Path, count: int, bad: int, prefix: str = "",
                                list_name: str = "list.txt") -> tuple[Path, Path]:
    """``folder/images/`` with ``count`` 40x40 PNGs (``<prefix><i>.png``, labels i % 2), image ``bad`` a few
    bytes that do not decode, and ``folder/<list_name>`` listing them all; returns (image root, list)."""
    from PIL import Image
    root = folder / "images"
    root.mkdir()
    lines = []
    for i in range(count):
        name = f"{prefix}{i}.png"
        if i == bad:
            (root / name).write_bytes(b"truncated")
        else:
            Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 40, 3), np.uint8)).save(root / name)
        lines.append(f"{name} {i % 2}")
    listing = folder / list_name
    listing.write_text("\n".join(lines) + "\n")
    return root, listing


@dataclass
class World:
    """Tiny inputs every suite reads (never written by a case: cases copy what they change)."""
    server: object
    base: Path
    synthetic: Path = None
    split: Path = None  # 100 indices into the synthetic training set
    pool: Path = None  # 60 images, the 300K Random Images format
    run: Path = None  # a finished pre-training run (width 4, 1 epoch), with model.pt
    checkpoint: Path = None
    imagenet_checkpoint: Path = None  # a 7x7-stem network, never trained
    probe: Path = None  # a finished probe of ``checkpoint``
    infer: Path = None  # inference outputs pool_noaug, pool_aug (3 passes), train_noaug
    cases: int = 0
    mounts: list = field(default_factory=list)

    def case_dir(self, name: str = "case") -> Path:
        """A fresh folder for one case, writable by the unprivileged user too."""
        self.cases += 1
        folder = self.base / "cases" / f"{self.cases:04d}_{re.sub('[^A-Za-z0-9_.-]', '_', name)[:60]}"
        folder.mkdir(parents=True)
        folder.chmod(0o777)
        return folder

    def pretrain_argv(self, save_dir, name: str = "run", *extra) -> list[str]:
        return [name, "--dataset", "synthetic", "--data", str(self.synthetic), "--save-dir", str(save_dir),
                "--width", "4", "--batch_size", "16", "--epochs", "1", "--max_steps_per_epoch", "2",
                "--lr_warmup_epochs", "1", "--num_workers", "0", "--device", "cpu", "--print_freq", "1", *extra]

    def probe_argv(self, save_dir, name: str = "p", *extra, checkpoint=None) -> list[str]:
        return [name, "--checkpoint", str(checkpoint or self.checkpoint), "--data", str(self.synthetic),
                "--save-dir", str(save_dir), "--epochs", "1", "--lr", "0.1", "--num_workers", "0", "--device", "cpu",
                "--batch_size", "64", "--cached_features", *extra]

    def infer_argv(self, save_dir, which: str = "pool_noaug", *extra, checkpoint=None) -> list[str]:
        common = ["--checkpoint", str(checkpoint or self.checkpoint), "--save-dir", str(save_dir),
                  "--num_workers", "0", "--device", "cpu", "--chunk_size", "25", "--batch_size", "32"]
        if which == "train_noaug":
            return ["train_noaug", "--inference_dataset", "synthetic", "--data", str(self.synthetic),
                    "--inference_dataset_split", str(self.split), "--inference_noAug", *common, *extra]
        pool = ["--inference_dataset", "300K_random_images", "--inference_dataset_split", str(self.pool)]
        if which == "pool_noaug":
            return ["pool_noaug", *pool, "--inference_noAug", *common, *extra]
        return [which, *pool, "--inference_repeat_time", "3", *common, *extra]

    def sample_argv(self, inference_root, out, *extra) -> list[str]:
        return ["--inference_root", str(inference_root), "--no_aug_sampling_dataset_inference_exp", "pool_noaug",
                "--no_aug_training_dataset_inference_exp", "train_noaug",
                "--aug_sampling_dataset_inference_exp", "pool_aug", "--loss_repeat_time", "3",
                "--ecle_batch_size", "16", "--ecle_batch_repeats", "2", "--K_means_num", "3", "--sampling_num", "10",
                "--split_save_dir", str(out), "--loss_dist_save_dir", str(Path(out) / "cache"), "--device", "cpu",
                *extra]

    def copy(self, source: Path, into: Path) -> Path:
        """A copy of ``source`` (file or folder) in ``into``, writable by the unprivileged user too."""
        target = into / source.name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        for p in [target, *target.rglob("*")]:
            p.chmod(0o777 if p.is_dir() else 0o666)
        return target

    def run_case(self, entry: str, argv, cwd=None, **kwargs):
        return self.server.run(entry, argv, cwd or self.base, **kwargs)

    def cleanup(self) -> None:
        for mount in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


def build_world(server) -> World:
    from data.synthetic import load_synthetic
    from models import build_simclr

    base = Path(tempfile.mkdtemp(prefix="ltssl-hostile-"))
    base.chmod(0o755)
    world = World(server=server, base=base)
    world.synthetic = base / "synthetic"
    arrays = load_synthetic(world.synthetic)
    world.split = base / "lt_split.npy"
    np.save(world.split, np.arange(0, 1600, 16, dtype=np.int64))
    world.pool = base / "pool.npy"
    np.save(world.pool, arrays["ood_x"][::100][:60])
    runs = base / "runs"
    check(world.run_case("train_simclr", world.pretrain_argv(runs, "base")), 0)
    world.run = runs / "base"
    world.checkpoint = world.run / "model.pt"
    torch.manual_seed(0)
    net = build_simclr("res18", width=4, cifar_stem=False, output_ch=16)
    world.imagenet_checkpoint = base / "imagenet_untrained.pt"
    torch.save({"state_dict": net.state_dict(), "epoch": 0, "args": {"dataset": "imagenet100"}},
               world.imagenet_checkpoint)
    check(world.run_case("train_linear", world.probe_argv(base / "probes", "p")), 0)
    world.probe = base / "probes" / "p"
    world.infer = base / "infer"
    for which in ("pool_noaug", "pool_aug", "train_noaug"):
        check(world.run_case("infer_features", world.infer_argv(world.infer, which)), 0)
    for p in [base, *base.rglob("*")]:  # readable by the unprivileged user
        p.chmod(0o755 if p.is_dir() else 0o644)
    return world


def check(result, code: int) -> None:
    assert result.returncode == code, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


# ---- what a refusal must look like ------------------------------------------------------------------------

def error_lines(stderr: str) -> list[str]:
    """stderr's lines, each as the terminal would show it (after any carriage return)."""
    return [line.split("\r")[-1].strip() for line in stderr.splitlines() if line.split("\r")[-1].strip()]


def assert_refused(result, pattern: str | None = None, code: int | None = None) -> str:
    """Exit non-zero (not killed), exactly one ``error:`` line on stderr and nothing else; returns it."""
    lines = error_lines(result.stderr)
    assert result.returncode > 0, f"exit {result.returncode}; stderr:\n{result.stderr[-3000:]}\nstdout:\n" \
                                  f"{result.stdout[-2000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-4000:]
    if code is not None:
        assert result.returncode == code, result.returncode
    if pattern is not None:
        assert re.search(pattern, lines[0]), f"{pattern!r} not in {lines[0]!r}"
    return lines[0]


def checksums(*paths) -> dict:
    """SHA-256 of every file under the given files and folders (hidden ones included)."""
    out = {}
    for path in map(Path, paths):
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def tree(path: Path) -> list[str]:
    """Every entry under ``path`` (relative names), to compare before and after."""
    return sorted(p.relative_to(path).as_posix() for p in Path(path).rglob("*"))


# ---- hostile file systems -------------------------------------------------------------------------------

def _mount(world: World, args: list[str], target: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("read-only and full-disk cases mount a read-only bind or a tmpfs: they need root")
    result = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip() or result.returncode}): these cases need mount")
    world.mounts.append(target)


@contextlib.contextmanager
def read_only(world: World, folder: Path):
    """``folder`` (which must exist) seen read-only, at its own path, for the duration."""
    _mount(world, ["--bind", str(folder)], folder)
    try:
        result = subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot remount read-only ({result.stderr.strip()})")
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        world.mounts.remove(folder)


@contextlib.contextmanager
def small_disk(world: World, folder: Path, megabytes: float = 4):
    """A tmpfs of ``megabytes`` mounted on ``folder`` (created empty) for the duration."""
    folder.mkdir(parents=True, exist_ok=True)
    _mount(world, ["-t", "tmpfs", "-o", f"size={int(megabytes * 1024)}k,mode=777", "tmpfs"], folder)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        world.mounts.remove(folder)


def fill_disk(folder: Path, leave_bytes: int = 0) -> None:
    """Fill ``folder``'s file system until only about ``leave_bytes`` are free."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    with open(folder / ".filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave_bytes))


@contextlib.contextmanager
def unreadable(path: Path):
    """``path`` with mode 000; yields the uid a case must run as to be refused (root reads anything)."""
    mode = path.stat().st_mode & 0o777
    path.chmod(0)
    try:
        yield NOBODY if os.geteuid() == 0 else None
    finally:
        path.chmod(mode)


def nobody_env(world: World) -> dict:
    """The environment of a case run as the unprivileged user: a home of its own."""
    home = world.base / "home"
    home.mkdir(exist_ok=True)
    home.chmod(0o777)
    return {"HOME": str(home), "MPLCONFIGDIR": str(home)}


# ---- files with the right name and the wrong content ------------------------------------------------------

def write_torch(path: Path, value) -> Path:
    torch.save(value, path)
    return path


class Unsafe:
    """A pickled object that would run a command when unpickled without weights_only."""

    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def checkpoint_variants(checkpoint: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    """Checkpoint files of the right name and the wrong content: {case: (path, expected error pattern)}."""
    state = torch.load(checkpoint, weights_only=True)
    weights = state["state_dict"]
    out = {}

    def make(name, value, pattern):
        path = folder / name / "model.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(value, path)
        out[name] = (path, pattern)

    make("bare_tensor", torch.zeros(3), r"not a pre-training checkpoint|holds a Tensor")
    make("list", [weights], r"not a pre-training checkpoint|holds a list")
    make("int_for_tensor", {**state, "state_dict": {**weights, "conv1.weight": 7}},
         r"conv1.weight' is of type int, not a tensor")
    nan = {k: v.clone() for k, v in weights.items()}
    nan["layer1.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    make("nan_weights", {**state, "state_dict": nan}, r"NaN or infinite")
    wide = {k: v for k, v in weights.items()}
    wide["layer2.0.conv1.weight"] = torch.zeros(16, 4, 3, 3)
    make("wrong_shape", {**state, "state_dict": wide}, r"do not fit|differ")
    make("unsafe", {"state_dict": weights, "payload": Unsafe()}, r"refused for safety")
    path = folder / "truncated" / "model.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(checkpoint.read_bytes()[:2000])
    out["truncated"] = (path, r"damaged or truncated")
    path = folder / "text" / "model.pt"
    path.parent.mkdir(parents=True)
    path.write_text("this is not a checkpoint\n")
    out["text"] = (path, r"not a PyTorch checkpoint|damaged")
    make("no_head", {"state_dict": {k: v for k, v in weights.items() if not k.startswith("fc.")}},
         r"no projection head|no_head")
    make("args_not_dict", {**state, "args": [1, 2]}, r"'args'")
    return out


def read_json(path: Path):
    return json.loads(Path(path).read_text())
