r"""MAK step 2: features of every item of a dataset or pool from a pre-trained SimCLR checkpoint.

    # the pool without augmentation, the long-tailed set without augmentation, the pool under R augmentations
    python infer_features.py pool_noaug --checkpoint RUN/model.pt --inference_dataset 300K_random_images \
        --inference_dataset_split ~/data/300K_random_images.npy --inference_noAug
    python infer_features.py train_noaug --checkpoint RUN/model.pt --inference_dataset cifar10 --data ~/data \
        --inference_dataset_split split1_D_i --inference_noAug
    python infer_features.py pool_aug --checkpoint RUN/model.pt --inference_dataset 300K_random_images \
        --inference_dataset_split ~/data/300K_random_images.npy --inference_repeat_time 10
    torchrun --nproc_per_node=8 infer_features.py ...   # the chunks are shared out between the processes

The encoder runs in eval mode. The output folder ``<save-dir>/<experiment>`` holds ``meta.json`` (the
checkpoint and its SHA-256, dataset, split, augmentation) and one file per (pass, chunk of --chunk_size
items) in dataset order, each written atomically: projection-head outputs always, backbone features for the
pass without augmentation. A re-run skips the chunks already written, so an interrupted run resumes; it
refuses a folder made from another checkpoint or with other settings. Augmented passes draw each item's
augmentation from (--seed, pass, item) (32x32 array data: batched on the device, per image from
(--seed, pass, chunk)), so the output does not depend on the number of processes.
"""
from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without installing

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from data.device_loader import array_images, is_array_dataset
from data import registry
from data.gpu_aug import augment as augment_batch, batch_generator, sample_params
from data.ood import build_inference_set
from data.sampler import SeededViews
from data.views import eval_transform, simclr_augmentation
from models.pretrained import load_simclr
from utils import distributed
from utils.cli import ArgumentParser, HelpFormatter
from utils.device import to_device
from utils.errors import message, one_line_errors
from utils.feature_store import FeatureStore, file_sha256
from utils.names import inference_name, split_stem
from utils.logger import progress_disabled
from utils.run_dir import RunDirClaim, check_name, plan_run_dir
from utils.precision import DEFAULT_PRECISION, PRECISIONS, PRECISION_HELP, autocast


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("experiment", nargs="?", default=None,
                   help="output folder name under --save-dir (default: Infer_<dataset>_<split>[_noAug])")
    p.add_argument("--checkpoint", required=True, help="pre-training checkpoint (model.pt or model_<epoch>.pt)")
    p.add_argument("--inference_dataset", required=True,
                   help="an ID dataset (synthetic, cifar10, cifar100, imagenet100, places) or a pool "
                        "(300K_random_images, image_list, folder, synthetic_pool, imagenet-900, "
                        "imagenet_places365_mix)")
    p.add_argument("--inference_dataset_split", default=None,
                   help="ID: the training split (as --trainSplit); 300K_random_images: the .npy file; "
                        "image lists: the list (a path, or a bare name in splits/<pool>/); folder: the folder")
    p.add_argument("--data", default=None, help="dataset root (ID datasets; the image root of image-list pools)")
    p.add_argument("--inference_dataset_root", default=None, help="image root of an image-list pool (default --data)")
    p.add_argument("--inference_repeat_time", type=int, default=10,
                   help="passes with the training augmentation (ignored with --inference_noAug: one pass)")
    p.add_argument("--inference_noAug", action="store_true",
                   help="one pass with the test transform (writes backbone features and projections)")
    p.add_argument("--save-dir", "--save_dir", dest="save_dir", default="checkpoints",
                   help="folder that holds inference output folders")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output folder of this name: the old one is moved aside once every "
                        "input is checked, removed when the new output is complete, and put back if this run fails")
    p.add_argument("--chunk_size", type=int, default=16384, help="items per output file")
    p.add_argument("--batch_size", type=int, default=256, help="inference batch size per process")
    p.add_argument("--num_workers", type=int, default=4, help="DataLoader worker processes per process")
    p.add_argument("--seed", type=int, default=1, help="seed of the augmented passes")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"], help="inference device")
    p.add_argument("--precision", default=DEFAULT_PRECISION, choices=PRECISIONS, help=PRECISION_HELP)
    args = p.parse_args(argv)
    for name in ("chunk_size", "batch_size", "inference_repeat_time"):
        if getattr(args, name) <= 0:
            p.error(f"--{name} must be positive, got {getattr(args, name)}")
    if args.num_workers < 0:
        p.error(f"--num_workers must be >= 0, got {args.num_workers}")
    if args.inference_noAug:
        args.inference_repeat_time = 1
    if args.experiment is None:
        split = split_stem(args.inference_dataset_split) if args.inference_dataset_split else "all"
        args.experiment = inference_name(args.inference_dataset, split, args.inference_noAug)
    try:
        check_name(args.experiment, "the output name")
    except ValueError as e:
        p.error(str(e))
    return args


def unchanged(image: torch.Tensor) -> torch.Tensor:
    return image


def item_seed(seed: int, repeat: int, index: int) -> int:
    """The augmentation seed of one item in one pass: independent of chunking and of the process count."""
    return ((seed * 1_000_003 + repeat) * 1_000_000_007 + index) % (2**63 - 1)


def array_batches(dataset, start: int, stop: int, repeat: int, chunk: int, args, device, kind: str | None = None):
    """32x32 array data (CIFAR, the 300K pool, the embedded data): the chunk is sliced straight from the
    (memory-mapped) array; augmented passes run the batched augmentation of image kind ``kind`` (its registry
    config) on ``device``, its per-image parameters drawn for the whole chunk from (--seed, pass, chunk), so
    batches and processes do not matter."""
    images = array_images(dataset, np.arange(start, stop))
    params = None
    if not args.inference_noAug:
        config = registry.aug_config(kind)
        params = sample_params(len(images), images.shape[2], images.shape[3], config,
                               batch_generator(args.seed, repeat, chunk))
    for b in range(0, len(images), args.batch_size):
        x = images[b:b + args.batch_size].to(device)
        if params is not None:
            x = augment_batch(x, params[b:b + args.batch_size], config)  # float levels, as to_device takes
        yield x


def item_batches(dataset, start: int, stop: int, repeat: int, args, device, transform):
    """Any dataset, one item at a time in DataLoader workers (file lists: decode, then ``transform``),
    each item's augmentation seeded by (--seed, pass, item)."""
    keys = [(i, item_seed(args.seed, repeat, i)) for i in range(start, stop)]
    loader = DataLoader(SeededViews(dataset, transform), batch_size=args.batch_size, sampler=keys,
                        num_workers=args.num_workers, pin_memory=device.type == "cuda")
    for images, *_ in loader:
        yield images


@torch.no_grad()
def infer_chunk(net, batches, args, device) -> dict:
    """Features of one chunk in one pass: ``proj`` always, ``feat`` without augmentation."""
    proj, feat = [], []
    for images in batches:
        x = to_device(images, device)
        with autocast(device, args.precision):
            h = net.features(x)
            z = net.fc(h)
        proj.append(z.float().cpu())
        feat.append(h.float().cpu())
    out = {"proj": torch.cat(proj).numpy()}
    if not args.inference_noAug:
        return out
    out["feat"] = torch.cat(feat).numpy()
    return out


def image_kind_of(net, pretrain_args: dict) -> str:
    """The pre-training dataset's image kind (registry); for the releases' checkpoints, which name no dataset,
    the encoder's stem tells (3x3: 32x32 images)."""
    entry = registry.find_dataset(pretrain_args.get("dataset") or "")
    if entry is not None:
        return entry.image_kind
    return "cifar" if net.conv1.kernel_size == (3, 3) else "imagenet"


def main(argv=None) -> Path:
    args = parse_args(argv)
    with one_line_errors():
        info = distributed.init_distributed(args.device)
        try:
            return run(args, info)
        finally:
            distributed.cleanup()


def check_inputs(args, info):
    """Dataset, checkpoint, sizes and the output folder, checked before anything is written."""
    dataset, identity = build_inference_set(args.inference_dataset, args.inference_dataset_split, args.data,
                                            args.inference_dataset_root)
    if len(dataset) == 0:
        raise ValueError(f"--inference_dataset {args.inference_dataset} {args.inference_dataset_split or ''}: the "
                         f"dataset holds no items")
    net, pretrain_args = load_simclr(args.checkpoint)
    kind = image_kind_of(net, pretrain_args)
    image_size = tuple(dataset[0][0].shape[1:])
    if kind == "cifar" and image_size != (32, 32):
        raise ValueError(f"the checkpoint is a 32x32 (CIFAR-stem) encoder but {args.inference_dataset} has "
                         f"{image_size[0]}x{image_size[1]} images")
    plan = None
    if info.is_main:
        plan = plan_run_dir(args.save_dir, args.experiment, "inference", overwrite=args.overwrite, can_resume=True,
                            finished=lambda d: (d / "meta.json").is_file(), complete=store_is_complete,
                            name_flag="the output name")
        if plan.mode == "resume":
            FeatureStore(plan.run_dir).meta()  # a damaged meta.json is refused before anything is written
    return dataset, identity, net, pretrain_args, kind, plan


def store_is_complete(folder: Path) -> bool:
    try:
        FeatureStore(folder).check_complete()
        return True
    except (OSError, ValueError):
        return False


def run(args, info) -> Path:
    error, checked = None, None
    try:
        checked = check_inputs(args, info)
    except (OSError, ValueError) as e:
        error = message(e)
    error = distributed.broadcast_object(error)  # every process stops on the main process's refusal too
    if error:
        raise SystemExit(f"error: {error}")
    dataset, identity, net, pretrain_args, kind, plan = checked
    out_dir = Path(args.save_dir) / args.experiment
    store = FeatureStore(out_dir)
    meta = {**identity, "checkpoint": str(Path(args.checkpoint).resolve()),
            "checkpoint_sha256": file_sha256(args.checkpoint) if info.is_main else None,
            "augmentation": "none" if args.inference_noAug else "train", "repeats": args.inference_repeat_time,
            "num_items": len(dataset), "chunk_size": args.chunk_size, "seed": args.seed, "image_kind": kind,
            "precision": args.precision,
            "kinds": ["proj", "feat"] if args.inference_noAug else ["proj"],
            "dims": {"proj": net.fc.fc2.out_features, "feat": net.feature_dim},
            "pretrain_experiment": pretrain_args.get("experiment"), "pretrain_dataset": pretrain_args.get("dataset"),
            "pretrain_split": pretrain_args.get("trainSplit")}
    if info.is_main and plan.mode == "resume":
        try:
            store.create(meta)  # refuses a store made with other settings before anything is touched
        except ValueError as e:
            error = str(e)
    error = distributed.broadcast_object(error)
    if error:
        raise SystemExit(f"error: {error}")
    with RunDirClaim(plan) if info.is_main else contextlib.nullcontext() as claim:
        if info.is_main:
            if claim.aside is not None:
                print(f"--overwrite: the earlier output is kept in {claim.aside} until this one is complete",
                      flush=True)
            store.create(meta)
        distributed.barrier()
        infer_all(args, info, dataset, net, kind, store, out_dir)
    return out_dir


def infer_all(args, info, dataset, net, kind, store: FeatureStore, out_dir: Path) -> None:
    meta = store.meta()
    net = net.to(info.device).eval()
    if info.device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    augment = (eval_transform(kind) or unchanged) if args.inference_noAug else simclr_augmentation(kind)
    missing = store.missing(meta)
    damaged = [(r, c) for r, c in missing if store.chunk_path(r, c).is_file()]
    if damaged and info.is_main:
        print(f"rewriting {len(damaged)} unusable chunk(s) of {out_dir} (damaged, or written by another store), "
              f"e.g. {store.chunk_path(*damaged[0]).name}", flush=True)
    todo = missing[info.rank::info.world_size]
    start = time.time()
    direct = kind == "cifar" and is_array_dataset(dataset) and dataset.transform is None
    for repeat, chunk in tqdm(todo, desc=f"inference {args.experiment}", disable=progress_disabled(info.is_main),
                              dynamic_ncols=True):
        lo, hi = store.chunk_range(chunk, meta)
        batches = array_batches(dataset, lo, hi, repeat, chunk, args, info.device, kind) if direct else \
            item_batches(dataset, lo, hi, repeat, args, info.device, augment)
        store.write_chunk(repeat, chunk, **infer_chunk(net, batches, args, info.device))
    distributed.barrier()
    if info.is_main:
        store.check_complete()
        print(f"inference done: {len(dataset)} items x {meta['repeats']} pass(es) of {args.inference_dataset} "
              f"in {time.time() - start:.1f}s; outputs in {out_dir}", flush=True)


if __name__ == "__main__":
    main()
