"""The files a pre-training run reads, by flag: what its checkpoint fingerprints and --resume compares.

Only what defines the data is listed: the split, the OOD pool and the extra images chosen offline (their
list or index file and their pool). Image roots are not hashed: an image list's lines name the images.
"""
from __future__ import annotations

from pathlib import Path

from data import registry
from data.build import resolve_split
from data.ood import resolve_pool_file


def pretraining_inputs(args) -> dict[str, Path]:
    """{flag: file or folder} of the inputs of a pre-training run (train_simclr.py's flags)."""
    files = {"trainSplit": resolve_split(args.trainSplit, args.dataset)}
    if getattr(args, "COLT", False) and registry.canonical_sample_set(args.sample_set) != "synthetic" \
            and args.ood_data:
        files["ood_data"] = Path(args.ood_data).expanduser()
    extra = getattr(args, "additional_dataset", None)
    if extra:
        pool = registry.find_pool(extra)
        if pool is None:
            raise ValueError(f"unknown --additional_dataset {extra!r}")
        if pool.layout == "list":
            files["additional_split"] = resolve_pool_file(args.additional_split, pool.name, ".txt")
        else:
            files["additional_split"] = resolve_pool_file(args.additional_split, pool.name, ".npy")
            if args.additional_data:
                files["additional_data"] = Path(args.additional_data).expanduser()
    return {flag: path for flag, path in files.items() if path is not None}
