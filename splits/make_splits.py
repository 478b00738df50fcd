"""Write the long-tailed CIFAR split files of the COLT protocol, or the 1% few-shot list of an image-list
dataset (see splits/README.md).

Examples, from the repository root:
    python splits/make_splits.py --dataset cifar10 --data ~/data --out splits/cifar10
    python splits/make_splits.py --dataset imagenet100 --train_list imageNet_100_train.txt --out splits/imagenet100
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

# Runs as a plain script from a checkout, without the package installed: make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from data import registry  # noqa: E402
from data.cifar import read_cifar_labels  # noqa: E402
from data.datasets import read_image_list  # noqa: E402
from data.lt_splits import balanced_fraction, describe_split, get_protocol, make_cifar_splits, split_names  # noqa: E402
from utils.checkpoint import atomic_write  # noqa: E402
from utils.cli import ArgumentParser  # noqa: E402
from utils.errors import message  # noqa: E402
from utils.run_dir import check_output_folder, write_marker  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description="Write the COLT long-tailed CIFAR split index files (.npy).")
    makers = {d.name: d.split_maker for d in registry.datasets() if d.split_maker}
    parser.add_argument("--dataset", required=True, choices=list(makers),
                        help="%s: the long-tailed protocol; %s: the 1%%%% balanced list" % tuple(
                            " / ".join(n for n, m in makers.items() if m == kind)
                            for kind in ("protocol", "few_shot_list")))
    parser.add_argument("--data", type=Path,
                        help="CIFAR: folder holding cifar-10-batches-py/ or cifar-100-python/ (or that folder)")
    parser.add_argument("--train_list", type=Path,
                        help="imagenet100 / places: the balanced full-shot list of 'relative/path label' lines; "
                             "writes <its name>_1pct.txt with the same number of images from every class")
    parser.add_argument("--fraction", type=float, default=0.01, help="size of the few-shot list (default 1%%)")
    parser.add_argument("--out", required=True, type=Path, help="folder to write <name>.npy files into")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the whole protocol (default 0)")
    parser.add_argument("--num_splits", type=int, default=5, help="number of random splits K (default 5)")
    parser.add_argument("--overwrite", action="store_true", help="replace split files that already exist")
    args = parser.parse_args(argv)
    if not (math.isfinite(args.fraction) and 0 < args.fraction <= 1):
        parser.error(f"--fraction must be in (0, 1], got {args.fraction}")
    return args


def summary_line(name: str, indices: np.ndarray, labels: np.ndarray, num_classes: int) -> str:
    counts = describe_split(indices, labels, num_classes)
    return f"{name}.npy: {len(indices)} indices, per class min {counts.min()} max {counts.max()}"


def write_fewshot_list(args: argparse.Namespace) -> None:
    """The balanced 1% list of an image-list dataset, in the list's own format."""
    if args.train_list is None:
        raise ValueError(f"--train_list is required for --dataset {args.dataset}")
    paths, labels = read_image_list(args.train_list)
    check_output_folder(args.out, "splits", "--out")
    target = args.out / f"{args.train_list.stem}_1pct.txt"
    if target.exists() and not args.overwrite:
        raise FileExistsError(f"{target} exists (use --overwrite)")
    chosen = balanced_fraction(labels, args.fraction, seed=args.seed)
    text = "".join(f"{paths[i]} {labels[i]}\n" for i in chosen)
    args.out.mkdir(parents=True, exist_ok=True)
    write_marker(args.out, "splits")
    atomic_write(target, lambda f: f.write(text.encode()))
    print(f"{target}: {len(chosen)} images, {len(chosen) // len(np.unique(labels))} per class")


def write_splits(args: argparse.Namespace) -> None:
    """Check that no target exists (unless --overwrite), read the labels, write every array, print a summary."""
    if args.num_splits < 1:
        raise ValueError(f"--num_splits must be at least 1, got {args.num_splits}")
    check_output_folder(args.out, "splits", "--out")
    targets = {name: args.out / f"{name}.npy" for name in split_names(args.dataset, args.num_splits)}
    existing = [path for path in targets.values() if path.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{existing[0]} exists (use --overwrite)")
    labels = read_cifar_labels(args.data, args.dataset, train=True)
    arrays = make_cifar_splits(labels, args.dataset, seed=args.seed, num_splits=args.num_splits)
    args.out.mkdir(parents=True, exist_ok=True)
    write_marker(args.out, "splits")
    num_classes = get_protocol(args.dataset).num_classes
    for name, indices in arrays.items():
        atomic_write(targets[name], lambda f: np.save(f, indices, allow_pickle=False))
        print(summary_line(name, indices, labels, num_classes))
    print(f"wrote {len(arrays)} files to {args.out}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if registry.dataset(args.dataset).split_maker == "few_shot_list":
            write_fewshot_list(args)
        else:
            if args.data is None:
                raise ValueError(f"--data is required for --dataset {args.dataset}")
            write_splits(args)
    except (OSError, ValueError) as e:  # missing or malformed data, existing targets, unwritable --out
        print(f"error: {message(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
