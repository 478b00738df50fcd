"""SimCLR pre-training on a long-tailed split.

    python train_simclr.py [EXPERIMENT] --dataset synthetic --epochs 10 --width 16
    torchrun --nproc_per_node=8 train_simclr.py EXPERIMENT --dataset cifar10 --data ~/data \
        --trainSplit split1_D_i

The run directory is ``<save-dir>/<EXPERIMENT>``: args.json, log.txt, tensorboard/, model.pt (latest)
and model_<epoch>.pt every --save_freq epochs. ``--resume`` continues a run exactly from its model.pt.
"""
from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without installing

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from data.build import DATASETS, canonical_dataset, build_train_set
from data.sampler import EpochSampler, SeededViews
from data.views import IMAGE_KIND, TwoViews, simclr_augmentation, to_device
from losses import nt_xent
from models import MODEL_NAMES, build_simclr
from utils import distributed
from utils.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from utils.logger import RunLogger, write_args
from utils.optim import build_optimizer
from utils.schedule import build_scheduler

# The papers' settings per dataset; a flag left unset takes these.
PAPER_DEFAULTS = {
    "cifar": dict(epochs=2000, batch_size=512, lr=0.5, model="res18"),
    "imagenet": dict(epochs=500, batch_size=256, lr=0.5, model="res50"),
}
SYNTHETIC_DEFAULTS = dict(epochs=100, batch_size=256, lr=0.5, model="res18")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", nargs="?", default=None,
                   help="run name; the run directory is <save-dir>/<experiment> (default: <dataset>_simclr)")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="synthetic",
                   help=f"one of {', '.join(DATASETS)} (aliases such as 'cifar' work); default: synthetic, "
                        "the embedded data the project generates itself")
    g.add_argument("--data", default=None,
                   help="dataset root: the folder holding cifar-10-batches-py / cifar-100-python, or the image "
                        "root of ImageNet-100 / Places; synthetic: cache folder (default $LTSSL_DATA/synthetic "
                        "or ~/.cache/ltssl/synthetic)")
    g.add_argument("--trainSplit", default=None,
                   help="long-tailed split: a .npy index file (CIFAR, synthetic) or an image list (ImageNet-100, "
                        "Places); a bare name is looked up in splits/<dataset>/ (default: the whole training set)")
    g.add_argument("--num_workers", type=int, default=4, help="DataLoader worker processes per GPU/process")
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None, choices=sorted(MODEL_NAMES),
                   help="encoder (default: res18 for 32x32 data, res50 for ImageNet-100/Places)")
    g.add_argument("--width", type=int, default=64, help="channels of the first ResNet stage (64 = standard)")
    g.add_argument("--output_ch", type=int, default=128, help="projection head output dimension")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=None, help="default: 2000 CIFAR, 500 ImageNet-100/Places, "
                                                            "100 synthetic")
    g.add_argument("--batch_size", type=int, default=None,
                   help="global batch size, split evenly across processes (default: 512 CIFAR, 256 ImageNet)")
    g.add_argument("--lr", type=float, default=None, help="peak learning rate (default 0.5)")
    g.add_argument("--temperature", type=float, default=0.2, help="NT-Xent temperature")
    g.add_argument("--optimizer", default="sgd", choices=["sgd", "lars"],
                   help="sgd (momentum 0.9) or lars (trust ratio 0.001; BN and biases excluded)")
    g.add_argument("--weight_decay", type=float, default=1e-4, help="weight decay")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD / LARS momentum")
    g.add_argument("--lr_warmup_epochs", type=int, default=10,
                   help="epochs of linear learning-rate warm-up before the cosine decay")
    g.add_argument("--max_steps_per_epoch", type=int, default=0,
                   help="stop each epoch after this many steps (0 = full epochs; for smoke tests)")
    g = p.add_argument_group("run")
    g.add_argument("--save-dir", "--save_dir", dest="save_dir", default="checkpoints",
                   help="folder that holds run directories")
    g.add_argument("--seed", type=int, default=1, help="seed of initialisation, data order and augmentation")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in <save-dir>/<experiment> from its model.pt (or --checkpoint)")
    g.add_argument("--checkpoint", default=None, help="with --resume: the checkpoint to continue from")
    g.add_argument("--overwrite", action="store_true",
                   help="delete an existing run directory of the same name and start again")
    g.add_argument("--save_freq", type=int, default=100, help="also keep model_<epoch>.pt every this many epochs")
    g.add_argument("--print_freq", type=int, default=10, help="log every this many steps")
    g.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"], help="training device")
    args = p.parse_args(argv)
    return finalise_args(p, args)


def finalise_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    try:
        args.dataset = canonical_dataset(args.dataset)
    except ValueError as e:
        parser.error(str(e))
    kind = IMAGE_KIND[args.dataset]
    defaults = SYNTHETIC_DEFAULTS if args.dataset == "synthetic" else PAPER_DEFAULTS[kind]
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("epochs", "batch_size", "width", "output_ch", "save_freq", "print_freq"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be positive, got {getattr(args, name)}")
    if args.resume and args.overwrite:
        parser.error("--resume and --overwrite exclude each other")
    if args.checkpoint and not args.resume:
        parser.error("--checkpoint names the checkpoint to resume from: add --resume")
    args.experiment = args.experiment or f"{args.dataset}_simclr"
    return args


def prepare_run_dir(args, info: distributed.DistInfo) -> Path:
    """The run directory; an existing run is never overwritten unless --resume or --overwrite says so."""
    run_dir = Path(args.save_dir) / args.experiment
    error = None
    if info.is_main:
        exists = run_dir.exists() and any(run_dir.iterdir())
        if exists and not (args.resume or args.overwrite):
            error = f"run directory {run_dir} already holds a run: use --resume to continue it, " \
                    f"--overwrite to replace it, or another experiment name"
        elif args.resume and not (args.checkpoint or (run_dir / "model.pt").is_file()):
            error = f"--resume: no checkpoint at {run_dir / 'model.pt'}"
        elif exists and args.overwrite:
            shutil.rmtree(run_dir)
    error = distributed.broadcast_object(error)
    if error:
        raise SystemExit(f"error: {error}")
    return run_dir


def build_model(args, info: distributed.DistInfo) -> nn.Module:
    model = build_simclr(args.model, width=args.width, cifar_stem=IMAGE_KIND[args.dataset] == "cifar",
                         output_ch=args.output_ch)
    if info.is_distributed and info.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # plain BN on CPU: gloo has no SyncBN
    model = model.to(info.device)
    if info.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def contrastive_loss(model: nn.Module, views: torch.Tensor, args, device: torch.device) -> torch.Tensor:
    """NT-Xent of one local batch of view pairs (B, 2, C, H, W) against the global batch."""
    b = views.shape[0]
    x = to_device(torch.cat([views[:, 0], views[:, 1]]), device)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        z = model(x)
    z1 = distributed.all_gather_with_grad(z[:b].float())
    z2 = distributed.all_gather_with_grad(z[b:].float())
    return nt_xent(z1, z2, args.temperature)


def train_one_epoch(model, loader, optimizer, scheduler, args, info, logger, epoch: int) -> dict:
    model.train()
    steps = len(loader) if not args.max_steps_per_epoch else min(len(loader), args.max_steps_per_epoch)
    loss_sum, seen, start = torch.zeros((), device=info.device), 0, time.time()
    bar = tqdm(total=steps, desc=f"epoch {epoch}/{args.epochs}", disable=not info.is_main, leave=False,
               dynamic_ncols=True)
    for step, (views, _labels, _index) in enumerate(loader):
        if step == steps:
            break
        loss = contrastive_loss(model, views, args, info.device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach()
        seen += views.shape[0] * info.world_size
        bar.update(1)
        if (step + 1) % args.print_freq == 0 or step + 1 == steps:
            global_step = (epoch - 1) * steps + step + 1
            lr = optimizer.param_groups[0]["lr"]
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.4f}")
            logger.scalars({"loss": loss.item(), "lr": lr}, global_step, prefix="train/")
    bar.close()
    elapsed = time.time() - start
    mean_loss = distributed.all_reduce_mean(loss_sum / max(steps, 1)).item()
    return {"loss": mean_loss, "images_per_s": seen / max(elapsed, 1e-9), "seconds": elapsed}


def checkpoint_state(model, optimizer, scheduler, epoch: int, args) -> dict:
    net = model.module if isinstance(model, DistributedDataParallel) else model
    return {"state_dict": net.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "epoch": epoch, "rng": rng_state(),
            "args": {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool, type(None)))}}


def save_run(run_dir: Path, state: dict, args, epoch: int) -> None:
    """model.pt (latest) always; model_<epoch>.pt every --save_freq epochs; args.json beside them."""
    write_args(args, run_dir / "args.json")
    save_checkpoint(state, run_dir / "model.pt")
    if epoch % args.save_freq == 0 or epoch == args.epochs:
        save_checkpoint(state, run_dir / f"model_{epoch}.pt")


def main(argv=None) -> Path:
    args = parse_args(argv)
    info = distributed.init_distributed(args.device)
    try:
        return run(args, info)
    finally:
        distributed.cleanup()


def run(args, info: distributed.DistInfo) -> Path:
    # Data: the long-tailed training set, two uint8 views per image made in the workers.
    # Built first, so that bad input fails before anything is written.
    kind = IMAGE_KIND[args.dataset]
    try:
        train_set = build_train_set(args.dataset, args.data, args.trainSplit)
        sampler = EpochSampler(len(train_set), args.batch_size, info.world_size, info.rank, seed=args.seed)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    run_dir = prepare_run_dir(args, info)
    logger = RunLogger(run_dir, enabled=info.is_main)
    torch.manual_seed(args.seed)
    if info.is_main and not args.resume:
        write_args(args, run_dir / "args.json")

    loader = DataLoader(SeededViews(train_set, TwoViews(simclr_augmentation(kind))),
                        batch_size=sampler.local_batch_size, sampler=sampler, num_workers=args.num_workers,
                        pin_memory=info.device.type == "cuda", drop_last=True,
                        persistent_workers=args.num_workers > 0)
    steps_per_epoch = sampler.batches_per_epoch
    if args.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, args.max_steps_per_epoch)

    # Model, optimiser, per-iteration schedule.
    model = build_model(args, info)
    optimizer = build_optimizer(args.optimizer, model, args.lr, args.weight_decay, args.momentum)
    scheduler = build_scheduler(optimizer, total_steps=args.epochs * steps_per_epoch,
                                warmup_steps=args.lr_warmup_epochs * steps_per_epoch)
    start_epoch = 1
    if args.resume:
        path = Path(args.checkpoint) if args.checkpoint else run_dir / "model.pt"
        try:
            state = load_checkpoint(path, map_location=info.device)
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"error: {e}") from None
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        start_epoch = state["epoch"] + 1
        logger.info(f"resumed from {path} at epoch {state['epoch']}")
    if info.is_distributed:
        model = DistributedDataParallel(model, device_ids=[info.local_rank] if info.device.type == "cuda" else None)

    logger.info(f"{args.dataset}: {len(train_set)} training images, {steps_per_epoch} steps/epoch of "
                f"{args.batch_size} ({info.world_size} process(es) on {info.device.type}); run dir {run_dir}")
    for epoch in range(start_epoch, args.epochs + 1):
        sampler.set_epoch(epoch)
        stats = train_one_epoch(model, loader, optimizer, scheduler, args, info, logger, epoch)
        logger.info(f"epoch {epoch}/{args.epochs} loss {stats['loss']:.4f} "
                    f"{stats['images_per_s']:.0f} img/s ({stats['seconds']:.1f}s)")
        logger.scalars({"loss": stats["loss"], "images_per_s": stats["images_per_s"]}, epoch, prefix="epoch/")
        if info.is_main:
            save_run(run_dir, checkpoint_state(model, optimizer, scheduler, epoch, args), args, epoch)
        distributed.barrier()
    logger.info(f"done: outputs in {run_dir.resolve()}")
    logger.close()
    return run_dir


if __name__ == "__main__":
    main()
