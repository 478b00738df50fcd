r"""SimCLR pre-training on a long-tailed split.

    python train_simclr.py [EXPERIMENT] --dataset synthetic --epochs 10 --width 16
    torchrun --nproc_per_node=8 train_simclr.py EXPERIMENT --dataset cifar10 --data ~/data \
        --trainSplit split1_D_i

The run directory is ``<save-dir>/<EXPERIMENT>``: args.json, log.txt, tensorboard/, model.pt (latest)
and model_<epoch>.pt every --save_freq epochs. ``--resume`` continues a run exactly from its model.pt;
it refuses settings that differ from the run's, except those in RESUME_MAY_CHANGE (see --resume).
A non-finite loss stops the run with an error before anything is saved: the last good model.pt stays.

Several processes: the contrastive loss, its gradients, the tailness scores and the OOD selection are
those of one process at the same global batch, but BatchNorm statistics are per process (SyncBatchNorm
needs CUDA; gloo on the CPU has none), so a 2-process CPU run is not bit-identical to a 1-process one.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without installing

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from data.build import DATASETS, build_test_set, build_train_set, canonical_dataset, class_names
from data.sampler import EpochSampler, SeededViews
from data.datasets import ImageDecodeError, decode_error_message, image_size
from data.inputs import pretraining_inputs
from data.ood import IdOodDataset, build_additional_set, build_ood_pool, default_sample_set
from data.device_loader import CroppedViewBatches, DeviceBatches, array_images, is_array_dataset
from data.gpu_aug import aug_config
from data.views import IMAGE_KIND, TwoViews, eval_transform, simclr_augmentation, simclr_crop
from losses import dist_supcon, nt_xent_logits
from models import MODEL_NAMES, build_simclr
from sampling.colt import COLTState, select_by_clusters, select_by_neighbours, select_random
from sampling.tailness import raw_tailness
from utils import distributed
from utils.embed import embed_dataset, with_transform
from utils.precision import DEFAULT_PRECISION, PRECISIONS, PRECISION_HELP, autocast
from utils.knn import knn_predict
from utils.checkpoint import (atomic_write, check_training_state, load_checkpoint, rng_state, save_checkpoint,
                              set_rng_state, shape_mismatches)
from utils.cli import ArgumentParser, HelpFormatter
from utils.errors import message
from utils.resume import check_inputs_unchanged, check_settings, input_fingerprints, saved_args
from utils import run_dir as run_dirs
from utils.run_dir import RunDirClaim, check_name
from utils.device import to_device
from utils.logger import RunLogger, progress_disabled, write_args
from utils.optim import build_optimizer
from utils.schedule import build_scheduler

# The papers' settings per dataset; a flag left unset takes these.
PAPER_DEFAULTS = {
    "cifar": dict(epochs=2000, batch_size=512, lr=0.5, model="res18", budget=10000, sup_weight=0.2),
    "imagenet": dict(epochs=500, batch_size=256, lr=0.5, model="res50", budget=10000, sup_weight=0.01),
}
SYNTHETIC_DEFAULTS = dict(epochs=100, batch_size=256, lr=0.5, model="res18", budget=2000, sup_weight=0.2)
# Flags that --resume accepts with another value than the run's: none of them changes the weights, the
# data order or the OOD selection. Every other saved setting must match (--epochs: see --extend_epochs).
# Paths (--data, --ood_data, --ood_root) may change because data move; their content must not.
RESUME_MAY_CHANGE = ("num_workers", "print_freq", "save_freq", "knn_every", "knn_k", "testSplit",
                     "embed_batch_size", "device", "data", "ood_data", "ood_root", "save_dir", "experiment",
                     "resume", "checkpoint", "overwrite", "extend_epochs", "check_only")


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
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
    g.add_argument("--aug_device", default="auto", choices=["auto", "cpu", "gpu"],
                   help="cpu: torchvision per image in DataLoader workers (as before); gpu: batched with "
                        "per-image parameters, array data (synthetic, CIFAR, array pools) held on the training "
                        "device as uint8, no workers on CUDA (on the CPU, --num_workers processes make the next "
                        "batches' views; file lists: workers decode and crop); auto: gpu when CUDA is present, "
                        "else cpu (on the loaded 2-core CPU neither path was reliably faster, "
                        "docs/benchmarks.md)")
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None, choices=sorted(MODEL_NAMES),
                   help="encoder (default: res18 for 32x32 data, res50 for ImageNet-100/Places)")
    g.add_argument("--width", type=int, default=64, help="channels of the first ResNet stage (64 = standard)")
    g.add_argument("--output_ch", type=int, default=128, help="projection head output dimension")
    g.add_argument("--compile", action="store_true",
                   help="torch.compile the training step's model (off by default; checkpoints, embedding passes "
                        "and probes use the plain module); meant for GPUs: on the 2-core CPU it was not shown to help "
                        "(docs/benchmarks.md)")
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
    g = p.add_argument_group("COLT: online OOD sampling by tailness (off unless --COLT)")
    g.add_argument("--COLT", action="store_true", help="add OOD images picked online by tailness, and the "
                                                       "distribution-level contrastive loss")
    g.add_argument("--sample_set", default=None,
                   help="OOD pool: synthetic (the embedded pool), 300K_random_images (--ood_data FILE.npy), "
                        "image_list (--ood_data LIST, images under --ood_root or --data) or folder "
                        "(--ood_data DIR); default: synthetic / 300K_random_images for CIFAR / image_list")
    g.add_argument("--ood_data", default=None, help="path of the OOD pool (see --sample_set); never guessed")
    g.add_argument("--ood_root", default=None, help="image root of an image_list pool (default: --data)")
    g.add_argument("--budget", type=int, default=None,
                   help="OOD images per sampling round (default 10000; 2000 for synthetic)")
    g.add_argument("--warmup", type=int, default=100, help="epochs of plain SimCLR before the first round "
                                                           "(the first round runs at epoch warmup+1)")
    g.add_argument("--sample_interval", type=int, default=25, help="epochs between sampling rounds")
    g.add_argument("--k_largest_logits", type=int, default=10,
                   help="tailness = sum of this many largest negative probabilities (an absolute count)")
    g.add_argument("--beta", type=float, default=0.97, help="EMA factor of the per-sample tailness")
    g.add_argument("--k_means_clusters", type=int, default=10, help="k-means clusters of the ID embeddings")
    g.add_argument("--cluster_temperature", type=float, default=1.0,
                   help="budget weights = softmax(-zscore(cluster tailness) / this)")
    g.add_argument("--sup_weight", type=float, default=None,
                   help="weight of the distribution-level contrastive loss (default 0.2 CIFAR and synthetic, "
                        "0.01 ImageNet-100 / Places; 0 switches it off)")
    g.add_argument("--ood_scorer", default="clusters", choices=["clusters", "neighbours", "random"],
                   help="clusters: the released rule (reproduces the published numbers); neighbours: the "
                        "paper's per-OOD score from the k nearest ID samples; random: --budget uniformly random "
                        "pool items each round (COLT's schedule, budget and loss: the random baseline)")
    g.add_argument("--ood_knn", type=int, default=10, help="neighbours per OOD item for --ood_scorer neighbours")
    g.add_argument("--embed_batch_size", type=int, default=512, help="batch size of the embedding passes")
    g = p.add_argument_group("extra images chosen offline (MAK: sample_mak.py writes the split)")
    g.add_argument("--additional_dataset", default=None,
                   help="pool the extra images come from: 300K_random_images, image_list, imagenet-900, "
                        "imagenet_places365_mix, folder or synthetic_pool (None = no extra images)")
    g.add_argument("--additional_split", "--additional_dataset_split", dest="additional_split", default=None,
                   help="the chosen items: an image list (image-list pools) or an index .npy into the pool; a "
                        "path, or a name in splits/<pool>/ such as MAK/optimize_0.5lossR10_nearK10_coreR1.5_num10000_s10")
    g.add_argument("--additional_data", default=None,
                   help="the pool file of 300K_random_images (.npy) or the folder of a folder pool")
    g.add_argument("--additional_dataset_root", default=None,
                   help="image root of an image-list pool (default --data)")
    g.add_argument("--additional_sup_weight", type=float, default=0.0,
                   help="weight of the distribution-level loss between ID and extra images (default 0: the "
                        "extra images are plain unlabeled images, as in MAK)")
    g = p.add_argument_group("monitoring")
    g.add_argument("--knn_every", type=int, default=0,
                   help="every this many epochs, log the weighted k-NN top-1 accuracy of the backbone features "
                        "on the test set, with the training split's labels as the memory bank (0 = off; labels "
                        "are only read for this monitor, never for training)")
    g.add_argument("--knn_k", type=int, default=200, help="neighbours of the k-NN monitor")
    g.add_argument("--testSplit", default=None, help="test list for the k-NN monitor (ImageNet-100 / Places)")
    g = p.add_argument_group("run")
    g.add_argument("--save-dir", "--save_dir", dest="save_dir", default="checkpoints",
                   help="folder that holds run directories")
    g.add_argument("--seed", type=int, default=1, help="seed of initialisation, data order and augmentation")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in <save-dir>/<experiment> from its model.pt (or --checkpoint). Only "
                        f"these flags may differ from the run's: {', '.join('--' + n for n in RESUME_MAY_CHANGE)}; "
                        "any other difference is refused. A directory without model.pt (stopped before its "
                        "first checkpoint) starts again")
    g.add_argument("--extend_epochs", action="store_true",
                   help="with --resume: accept a larger --epochs than the run's. The cosine schedule is then "
                        "stretched to the new total from the current step on, so the remaining learning rates "
                        "differ from both the original run and a run planned that long from the start")
    g.add_argument("--checkpoint", default=None, help="with --resume: the checkpoint to continue from")
    g.add_argument("--overwrite", action="store_true",
                   help="start an existing run of the same name again: once every input is checked, the old "
                        "run directory is moved aside, removed when the new run saves its first checkpoint, "
                        "and put back if the new run fails before that")
    g.add_argument("--check_only", action="store_true",
                   help="check every input and setting (data, pool, splits, checkpoint), then exit without "
                        "writing anything (the launchers do this before starting several processes)")
    g.add_argument("--save_freq", type=int, default=100, help="also keep model_<epoch>.pt every this many epochs")
    g.add_argument("--print_freq", type=int, default=10, help="log every this many steps")
    g.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"], help="training device")
    g.add_argument("--precision", default=DEFAULT_PRECISION, choices=PRECISIONS, help=PRECISION_HELP)
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
    if args.sample_set is None:
        args.sample_set = default_sample_set(args.dataset)
    for name in ("epochs", "batch_size", "width", "output_ch", "save_freq", "print_freq", "budget",
                 "sample_interval", "k_largest_logits", "k_means_clusters", "ood_knn", "embed_batch_size"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be positive, got {getattr(args, name)}")
    if args.resume and args.overwrite:
        parser.error("--resume and --overwrite exclude each other")
    if args.extend_epochs and not args.resume:
        parser.error("--extend_epochs extends a run: add --resume")
    for name, low in (("lr", 0.0), ("temperature", 0.0)):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > low):
            parser.error(f"--{name} must be a finite number > 0, got {value}")
    if not (math.isfinite(args.weight_decay) and args.weight_decay >= 0):
        parser.error(f"--weight_decay must be a finite number >= 0, got {args.weight_decay}")
    if not (math.isfinite(args.momentum) and 0 <= args.momentum < 1):
        parser.error(f"--momentum must be in [0, 1), got {args.momentum}")
    for name in ("num_workers", "lr_warmup_epochs", "max_steps_per_epoch", "knn_every"):
        if getattr(args, name) < 0:
            parser.error(f"--{name} must be >= 0, got {getattr(args, name)}")
    if args.knn_k <= 0:
        parser.error(f"--knn_k must be positive, got {args.knn_k}")
    if args.COLT and args.k_largest_logits > 2 * args.batch_size - 2:
        parser.error(f"--k_largest_logits {args.k_largest_logits} exceeds the {2 * args.batch_size - 2} "
                     f"negatives of an image in a global batch of {args.batch_size} (2 x batch_size - 2)")
    if args.checkpoint and not args.resume:
        parser.error("--checkpoint names the checkpoint to resume from: add --resume")
    if not all(math.isfinite(v) for v in (args.sup_weight, args.cluster_temperature, args.beta)) or \
            args.warmup < 0 or args.sup_weight < 0 or args.cluster_temperature <= 0 or not 0 <= args.beta < 1:
        parser.error("--warmup and --sup_weight must be >= 0, --cluster_temperature > 0, 0 <= --beta < 1")
    if args.additional_dataset is not None and args.additional_dataset.lower() == "none":
        args.additional_dataset = None  # the MAK launchers' spelling of "no extra images"
    if args.additional_dataset and args.COLT:
        parser.error("--additional_dataset (images chosen offline) and --COLT (chosen online) exclude each other")
    if args.additional_dataset and not args.additional_split:
        parser.error("--additional_dataset needs --additional_split: the chosen items")
    if args.additional_sup_weight < 0:
        parser.error(f"--additional_sup_weight must be >= 0, got {args.additional_sup_weight}")
    args.experiment = args.experiment or f"{args.dataset}_{'colt' if args.COLT else 'simclr'}"
    try:
        check_name(args.experiment)
    except ValueError as e:
        parser.error(str(e))
    return args


def plan_run_dir(args, info: distributed.DistInfo) -> tuple[Path, str]:
    """(run directory, mode); checks only (see utils.run_dir.plan_run_dir), on the main process. A run is
    there once it saved a checkpoint; args.json or log.txt alone are a start that never finished an epoch
    (mode "restart"), a launcher's bash_log.txt alone is nothing. Raises ValueError."""
    plan = None
    if info.is_main:
        try:
            planned = run_dirs.plan_run_dir(
                args.save_dir, args.experiment, "pretraining", resume=args.resume, overwrite=args.overwrite,
                restart_only=True, dry_run=args.check_only,
                finished=lambda d: bool(args.resume and args.checkpoint) or (d / "model.pt").is_file(),
                started=lambda d: any((d / n).exists() for n in ("args.json", "log.txt")),
                already=f"run directory {Path(args.save_dir) / args.experiment} already holds a run: use --resume "
                        f"to continue it, --overwrite to replace it, or another experiment name")
            plan = (planned, None)
        except (OSError, ValueError) as e:
            plan = (None, message(e))
    planned, error = distributed.broadcast_object(plan)
    if error:
        raise ValueError(error)
    return planned.run_dir, planned.mode


def check_resume(args, state: dict, path: Path) -> None:
    """Refuse a checkpoint whose run had other trajectory settings or read other data (ValueError)."""
    if args.COLT and "colt" not in state:
        raise ValueError(f"{path} holds no COLT state: it was not a --COLT run")
    check_settings(saved_args(args), state.get("args") or {}, RESUME_MAY_CHANGE, args.extend_epochs)
    check_inputs_unchanged(state.get("inputs") or {}, args.input_fingerprints, path)


def check_architecture(model: nn.Module, state: dict, path: Path, args) -> None:
    """One line instead of load_state_dict's size-mismatch traceback (ValueError)."""
    mismatches = shape_mismatches(model.state_dict(), state["state_dict"])
    if mismatches:
        saved = state.get("args") or {}
        built = f"--model {args.model} --width {args.width} --output_ch {args.output_ch}"
        if {"model", "width", "output_ch"} <= saved.keys() and \
                (saved["model"], saved["width"], saved["output_ch"]) != (args.model, args.width, args.output_ch):
            raise ValueError(f"checkpoint {path} was trained with --model {saved['model']} --width "
                             f"{saved['width']} --output_ch {saved['output_ch']}; this run builds {built}")
        raise ValueError(f"checkpoint {path} does not fit this run's {built} ({len(mismatches)} tensors "
                         f"differ, e.g. {mismatches[0]})")


def build_model(args, info: distributed.DistInfo) -> nn.Module:
    model = build_simclr(args.model, width=args.width, cifar_stem=IMAGE_KIND[args.dataset] == "cifar",
                         output_ch=args.output_ch)
    if info.is_distributed and info.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # plain BN on CPU: gloo has no SyncBN
    model = model.to(info.device)
    if info.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def contrastive_loss(model: nn.Module, views: torch.Tensor, args, device: torch.device,
                     is_ood: torch.Tensor | None = None, index: torch.Tensor | None = None,
                     colt: COLTState | None = None, epoch: int = 0) -> torch.Tensor:
    """Loss of one local batch of view pairs (B, 2, C, H, W), computed over the global batch.

    NT-Xent; with COLT also ``sup_weight`` x the distribution-level loss (when the global batch holds OOD
    images) and, from the same similarity matrix, the tailness update of the batch's ID images.
    """
    b = views.shape[0]
    x = to_device(torch.cat([views[:, 0], views[:, 1]]), device)
    with autocast(device, args.precision):
        z = model(x)
    z1 = distributed.all_gather_with_grad(z[:b].float())
    z2 = distributed.all_gather_with_grad(z[b:].float())
    logits, positive = nt_xent_logits(z1, z2, args.temperature)
    loss = F.cross_entropy(logits, positive)
    sup_weight = args.sup_weight if colt is not None else getattr(args, "additional_sup_weight", 0.0)
    if colt is not None or sup_weight > 0:
        meta = distributed.all_gather_variable(torch.stack([index, is_ood.long()], dim=1).to(device))
        global_index, global_ood = meta[:, 0], meta[:, 1].bool()
        if sup_weight > 0 and global_ood.any():
            loss = loss + sup_weight * dist_supcon(torch.cat([z1, z2]), torch.cat([global_ood, global_ood]),
                                                   args.temperature)
        if colt is not None:
            raw = raw_tailness(logits.detach(), args.k_largest_logits)
            colt.tracker.update(global_index[~global_ood], raw[~global_ood], epoch)
    return loss


class NonFiniteError(Exception):
    """The loss or the weights stopped being finite: nothing of this epoch may be saved."""


def train_one_epoch(model, loader, optimizer, scheduler, args, info, logger, epoch: int,
                    colt: COLTState | None = None) -> dict:
    """One epoch; raises NonFiniteError naming the first step whose loss was not finite.

    The check costs no host-device sync per step: the first bad step is kept in a device-side tensor and
    read once at the end of the epoch (and whenever the loss is printed anyway).
    """
    model.train()
    steps = len(loader) if not args.max_steps_per_epoch else min(len(loader), args.max_steps_per_epoch)
    loss_sum, seen, start = torch.zeros((), device=info.device), 0, time.time()
    first_bad = torch.full((), -1, dtype=torch.long, device=info.device)
    bad_value = torch.zeros((), device=info.device)
    bar = tqdm(total=steps, desc=f"epoch {epoch}/{args.epochs}", disable=progress_disabled(info.is_main), leave=False,
               dynamic_ncols=True)
    try:  # the bar is cleared whatever happens, so that an error message starts its own line
        for step, (views, _labels, index, is_ood) in enumerate(loader):
            if step == steps:
                break
            loss = contrastive_loss(model, views, args, info.device, is_ood, index, colt, epoch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach()
            new_bad = (first_bad < 0) & ~torch.isfinite(loss.detach())
            first_bad.masked_fill_(new_bad, step + 1)
            bad_value = torch.where(new_bad, loss.detach().float(), bad_value)
            seen += views.shape[0] * info.world_size
            bar.update(1)
            if (step + 1) % args.print_freq == 0 or step + 1 == steps:
                if first_bad.item() > 0:
                    break
                global_step = scheduler.last_epoch
                lr = optimizer.param_groups[0]["lr"]
                bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.4f}")
                logger.scalars({"loss": loss.item(), "lr": lr}, global_step, prefix="train/")
    finally:
        bar.close()
    # every rank computes the same global loss; the reduction keeps the ranks' decisions identical anyway
    if distributed.all_reduce_mean((first_bad > 0).float()).item() > 0:
        raise NonFiniteError(f"non-finite loss ({bad_value.item()}) at epoch {epoch}, step {first_bad.item()} "
                             f"of {steps}")
    net = model.module if isinstance(model, DistributedDataParallel) else model
    tensors = [t for t in net.state_dict().values() if t.is_floating_point()]
    if not torch.stack([torch.isfinite(t).all() for t in tensors]).all().item():
        raise NonFiniteError(f"non-finite weights after epoch {epoch} (the loss stayed finite)")
    elapsed = time.time() - start
    mean_loss = distributed.all_reduce_mean(loss_sum / max(steps, 1)).item()
    return {"loss": mean_loss, "images_per_s": seen / max(elapsed, 1e-9), "seconds": elapsed}


def embed(model, dataset, args, info, projection: bool = True) -> torch.Tensor:
    """Normalised embeddings of a whole dataset under the test transform, identical on every rank."""
    view = with_transform(dataset, eval_transform(IMAGE_KIND[args.dataset]))
    return embed_dataset(model, view, info.device, args.embed_batch_size, args.num_workers, projection=projection,
                         precision=args.precision)


def colt_round(model, train_set, ood_pool, colt: COLTState, args, info, logger, run_dir: Path, epoch: int):
    """One COLT sampling round: embed ID and pool, choose ``budget`` pool items, record everything."""
    start = time.time()
    test_view = eval_transform(IMAGE_KIND[args.dataset])
    if args.ood_scorer != "random":
        id_embeddings, pool_embeddings = embed(model, train_set, args, info), embed(model, ood_pool, args, info)
    result = None
    if info.is_main:  # one process decides (k-means threads need not agree bit for bit), then broadcasts
        scores = colt.tracker.scores.cpu().numpy()
        if args.ood_scorer == "random":
            result = select_random(len(ood_pool), args.budget, seed=args.seed * 1_000_003 + colt.rounds_done)
        elif args.ood_scorer == "clusters":
            result = select_by_clusters(id_embeddings, pool_embeddings, scores, args.budget,
                                        args.k_means_clusters, args.cluster_temperature,
                                        seed=args.seed + colt.rounds_done)
        else:
            result = select_by_neighbours(id_embeddings, pool_embeddings, scores, args.budget, args.ood_knn)
    result = distributed.broadcast_object(result)
    colt.rounds_done += 1
    colt.ood_indices = result.ood_indices
    if info.is_main:
        record_round(result, colt, train_set, ood_pool, test_view, args, logger, run_dir, epoch,
                     time.time() - start)
    return result


def record_round(result, colt, train_set, ood_pool, test_view, args, logger, run_dir, epoch, seconds):
    """ood_round{r}.npy, a grid of chosen images per cluster, the ID tailness by class, log and TensorBoard."""
    from utils.plots import save_image_grid, save_tailness_histogram
    r = colt.rounds_done
    atomic_write(run_dir / f"ood_round{r}.npy", lambda f: np.save(f, result.ood_indices, allow_pickle=False))
    scores = colt.tracker.scores.cpu().numpy()
    if len(result.budgets):
        logger.info(f"COLT round {r} (epoch {epoch}): cluster sizes {result.cluster_sizes.tolist()}, "
                    f"mean tailness {np.round(result.cluster_scores, 4).tolist()}, "
                    f"budgets {result.budgets.tolist()}, {seconds:.1f}s")
        for c, (size, share) in enumerate(zip(result.cluster_sizes, result.budgets)):
            logger.scalars({f"cluster{c}_size": int(size), f"cluster{c}_budget": int(share)}, epoch, "colt/")
    else:
        rule = "uniformly at random" if args.ood_scorer == "random" else "by neighbour tailness"
        logger.info(f"COLT round {r} (epoch {epoch}): {len(result.ood_indices)} OOD items {rule}, {seconds:.1f}s")
    logger.scalars({"round_seconds": seconds, "mean_tailness": float(np.nanmean(scores))}, epoch, "colt/")
    logger.histogram("colt/tailness", scores[~np.isnan(scores)], epoch)
    pool_view = with_transform(ood_pool, test_view)
    clusters = np.unique(result.ood_cluster)
    rows = [np.stack([pool_view[int(i)][0].permute(1, 2, 0).numpy()
                      for i in result.ood_indices[result.ood_cluster == c][:8]]) for c in clusters]
    titles = [cluster_row_title(result, c) for c in clusters]
    save_image_grid(rows, titles, run_dir / f"ood_round{r}.png",
                    title=f"COLT round {r}: sampled OOD images per ID cluster (size = ID images in the cluster, "
                          f"tailness = their mean score, budget = OOD images given)")
    labels = train_set.labels
    counts = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else None
    names = class_names(args.dataset)
    if names is not None and counts is not None and len(counts) > len(names):
        names = None
    save_tailness_histogram(scores, labels if counts is not None else None, run_dir / f"tailness_round{r}.png",
                            class_counts=counts, class_names=names,
                            title=f"ID tailness before round {r} (epoch {epoch})")


def cluster_row_title(result, cluster: int) -> str:
    """A row label of ood_round<r>.png: the cluster's ID size, mean tailness and budget (as in log.txt)."""
    if cluster < 0 or cluster >= len(result.budgets):
        return "chosen"
    return (f"cluster {cluster}\nsize {int(result.cluster_sizes[cluster])}\n"
            f"tailness {result.cluster_scores[cluster]:.4f}\nbudget {int(result.budgets[cluster])}")


def knn_monitor(model, train_set, test_set, args, info) -> float:
    """Weighted k-NN top-1 accuracy (%) of the backbone features, training split as the memory bank."""
    bank_labels = torch.as_tensor(train_set.labels, device=info.device)
    test_labels = torch.as_tensor(test_set.labels, device=info.device)
    predicted = knn_predict(embed(model, train_set, args, info, projection=False), bank_labels,
                            embed(model, test_set, args, info, projection=False),
                            int(max(bank_labels.max(), test_labels.max())) + 1, k=args.knn_k)
    return (predicted == test_labels).float().mean().item() * 100


def checkpoint_state(model, optimizer, scheduler, epoch: int, args, colt: COLTState | None) -> dict:
    net = model.module if isinstance(model, DistributedDataParallel) else model
    state = {"state_dict": net.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "epoch": epoch, "rng": rng_state(),
             "args": saved_args(args), "inputs": getattr(args, "input_fingerprints", {})}
    if colt is not None:
        state["colt"] = colt.state_dict()
    return state


def save_run(run_dir: Path, state: dict, args, epoch: int) -> None:
    """model.pt (latest) always; model_<epoch>.pt every --save_freq epochs; args.json beside them. The
    snapshot is written before model.pt: a run killed between the two resumes from the previous epoch and
    writes the snapshot again, so no snapshot is ever skipped."""
    write_args(args, run_dir / "args.json")
    if epoch % args.save_freq == 0 or epoch == args.epochs:
        save_checkpoint(state, run_dir / f"model_{epoch}.pt")
    save_checkpoint(state, run_dir / "model.pt")


def schedule_steps(args, num_id: int) -> tuple[int, int]:
    """(total, warm-up) optimiser steps. With COLT the epochs after --warmup count ID + budget images,
    as in the original; the learning-rate warm-up counts ID-only epochs."""
    def steps(n: int) -> int:
        full = n // args.batch_size
        return min(full, args.max_steps_per_epoch) if args.max_steps_per_epoch else full
    plain_epochs = min(args.warmup, args.epochs) if args.COLT else args.epochs
    total = plain_epochs * steps(num_id) + (args.epochs - plain_epochs) * steps(num_id + args.budget)
    return total, args.lr_warmup_epochs * steps(num_id)


def main(argv=None) -> Path:
    args = parse_args(argv)
    try:
        info = distributed.init_distributed(args.device)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    try:
        return run(args, info)
    finally:
        distributed.cleanup()


def check_inputs(args, info: distributed.DistInfo):
    """Everything that can be checked before the run directory is touched: data, pool, sizes, the run
    directory's state and, with --resume, the checkpoint and its settings. Raises FileNotFoundError or
    ValueError. Returns (train_set, ood_pool, train_data, knn_test, run_dir, mode, checkpoint path, state)."""
    train_set = build_train_set(args.dataset, args.data, args.trainSplit)
    ood_pool = None
    if args.COLT:
        ood_pool = build_ood_pool(args.sample_set, args.ood_data, args.dataset, args.data, args.ood_root)
        if args.budget > len(ood_pool):
            raise ValueError(f"--budget {args.budget} exceeds the OOD pool of {len(ood_pool)} images")
        if args.ood_scorer == "clusters" and args.k_means_clusters > len(train_set):
            raise ValueError(f"--k_means_clusters {args.k_means_clusters} exceeds the {len(train_set)} ID images")
        if IMAGE_KIND[args.dataset] == "cifar":  # 32x32 data is embedded unresized: pool and ID must agree
            id_size, pool_size = image_size(train_set), image_size(ood_pool)
            if id_size != pool_size:
                raise ValueError(f"the OOD pool's images are {pool_size[0]}x{pool_size[1]}, the ID images "
                                 f"{id_size[0]}x{id_size[1]}: resize the pool to the ID images' size")
    train_data = IdOodDataset(train_set, ood_pool)
    if args.additional_dataset:  # extra images chosen offline (MAK): fixed for the whole run
        extra_pool, extra = build_additional_set(args.additional_dataset, args.additional_split,
                                                 args.additional_data, args.data, args.additional_dataset_root)
        if IMAGE_KIND[args.dataset] == "cifar" and image_size(extra_pool) != image_size(train_set):
            raise ValueError(f"the extra images are {image_size(extra_pool)}, the training images "
                             f"{image_size(train_set)} (H, W): resize the pool to the training images' size")
        train_data = IdOodDataset(train_set, extra_pool)
        train_data.set_ood_indices(extra)
        args.additional_items = len(extra)
    knn_test = build_test_set(args.dataset, args.data, args.testSplit) if args.knn_every else None
    EpochSampler(len(train_set), args.batch_size, info.world_size)  # checks the batch fits and divides
    args.input_fingerprints = input_fingerprints(pretraining_inputs(args))
    run_dir, mode = plan_run_dir(args, info)
    path, state = None, None
    if mode == "resume":
        path = Path(args.checkpoint) if args.checkpoint else run_dir / "model.pt"
        # on the CPU: RNG states must stay CPU tensors; weights and optimiser state follow the model
        state = check_training_state(load_checkpoint(path, map_location="cpu"), path)
    return train_set, ood_pool, train_data, knn_test, run_dir, mode, path, state


def run(args, info: distributed.DistInfo) -> Path:
    # Data, pool, run directory and checkpoint are all checked before anything is written.
    try:
        train_set, ood_pool, train_data, knn_test, run_dir, mode, path, state = check_inputs(args, info)
        torch.manual_seed(args.seed)
        model = build_model(args, info)
        if state is not None:
            check_architecture(model, state, path, args)
            check_resume(args, state, path)
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: {message(e)}") from None
    if args.check_only:
        if info.is_main:
            print(f"checked: {len(train_set)} training images, run directory {run_dir} ({mode}); nothing written")
        return run_dir
    claim = RunDirClaim(run_dirs.RunPlan(run_dir, "pretraining", mode), is_main=info.is_main)
    try:
        claim.__enter__()
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: {message(e)}") from None
    distributed.barrier()
    aside = claim.aside
    logger = None
    saved_once = False
    try:
        logger = RunLogger(run_dir, enabled=info.is_main)
        if aside is not None:
            logger.info(f"--overwrite: the old run is kept at {aside} until this run saves its first checkpoint")
        if mode == "restart":
            logger.info(f"{run_dir} held no checkpoint (an earlier start stopped before its first epoch "
                        f"ended): starting the run again")
        if info.is_main and state is None:
            write_args(args, run_dir / "args.json")
        for event in train(args, info, logger, run_dir, model, train_set, ood_pool, train_data, knn_test,
                           path, state):
            if event == "saved" and not saved_once:
                saved_once = True
                claim.keep_new()
    except NonFiniteError as e:
        logger.close()
        last = run_dir / "model.pt"
        if not saved_once and claim.give_back():
            kept = f"the run it was to replace is back in {run_dir}, unchanged"
        else:
            kept = f"{last} is kept unchanged" if last.is_file() else "no checkpoint was saved"
        raise SystemExit(f"error: {e}; stopped before saving: {kept} (lower --lr or raise --temperature)") \
            from None
    except (ImageDecodeError, OSError, ValueError) as e:
        if logger is not None:
            logger.close()
        back = not saved_once and claim.give_back()
        text = decode_error_message(e) if isinstance(e, ImageDecodeError) else message(e)
        raise SystemExit(f"error: {text}" + (f"; the run it was to replace is back in {run_dir}, unchanged"
                                             if back else "")) from None
    except BaseException:
        if logger is not None:
            logger.close()
        if not saved_once:
            claim.give_back()
        raise
    logger.info(f"done: outputs in {run_dir.resolve()}")
    logger.close()
    return run_dir


def train(args, info, logger, run_dir, model, train_set, ood_pool, train_data, knn_test, path, state):
    """The training loop; yields "saved" after every checkpoint."""
    kind = IMAGE_KIND[args.dataset]
    arrays = is_array_dataset(train_set) and (train_data.ood_pool is None or is_array_dataset(train_data.ood_pool))
    batched = args.aug_device == "gpu" or (args.aug_device == "auto" and info.device.type == "cuda")
    views = TwoViews(simclr_crop(kind) if batched else simclr_augmentation(kind))
    id_on_device = None
    if batched and arrays:
        id_on_device = array_images(train_set).to(info.device)  # else workers decode and crop, as file lists

    def make_loader():  # again after every sampling round: the training set changes
        sampler = EpochSampler(len(train_data), args.batch_size, info.world_size, info.rank, seed=args.seed)
        if id_on_device is not None:
            return sampler, DeviceBatches(train_data, id_on_device, sampler, aug_config(kind), args.seed,
                                          info.device, args.num_workers)
        if batched:
            return sampler, CroppedViewBatches(train_data, views, sampler, aug_config(kind), args.seed,
                                               info.device, args.num_workers)
        loader = DataLoader(SeededViews(train_data, views), batch_size=sampler.local_batch_size, sampler=sampler,
                            num_workers=args.num_workers, pin_memory=info.device.type == "cuda", drop_last=True,
                            persistent_workers=args.num_workers > 0)
        return sampler, loader

    # Optimiser, per-iteration schedule, COLT state.
    optimizer = build_optimizer(args.optimizer, model, args.lr, args.weight_decay, args.momentum)
    total_steps, warmup_steps = schedule_steps(args, len(train_data))
    scheduler = build_scheduler(optimizer, total_steps=total_steps, warmup_steps=warmup_steps)
    colt = COLTState(len(train_set), args.beta, args.warmup, args.sample_interval, info.device) if args.COLT else None
    start_epoch = 1
    if state is not None:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        if colt is not None:
            colt.load_state_dict(state["colt"])
            train_data.set_ood_indices(colt.ood_indices)
        start_epoch = state["epoch"] + 1
        logger.info(f"resumed from {path} at epoch {state['epoch']}")
        planned = (state.get("args") or {}).get("epochs", args.epochs)
        if args.epochs != planned:  # --extend_epochs: the schedule's lambda already counts the new total
            for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
                group["lr"] = base * factor(scheduler.last_epoch)
            logger.info(f"--extend_epochs: {planned} -> {args.epochs} epochs; the cosine schedule now ends at "
                        f"step {total_steps}, so the remaining learning rates differ from the planned run's")
    if info.is_distributed:
        model = DistributedDataParallel(model, device_ids=[info.local_rank] if info.device.type == "cuda" else None)
    sampler, loader = make_loader()
    step_model = torch.compile(model) if args.compile else model  # same parameters: model stays the one saved

    logger.info(f"{args.dataset}: {len(train_set)} training images"
                f"{f', OOD pool of {len(ood_pool)} ({args.sample_set})' if ood_pool is not None else ''}"
                f"{f' + {len(train_data.ood_indices)} extra images ({args.additional_dataset})' if args.additional_dataset else ''}, "
                f"{sampler.batches_per_epoch} steps/epoch of {args.batch_size} "
                f"({info.world_size} process(es) on {info.device.type}); run dir {run_dir}")
    for epoch in range(start_epoch, args.epochs + 1):
        if colt is not None and colt.is_sampling_epoch(epoch):
            colt_round(model, train_set, ood_pool, colt, args, info, logger, run_dir, epoch)
            train_data.set_ood_indices(colt.ood_indices)
            sampler, loader = make_loader()
        sampler.set_epoch(epoch)
        stats = train_one_epoch(step_model, loader, optimizer, scheduler, args, info, logger, epoch, colt)
        logger.info(f"epoch {epoch}/{args.epochs} loss {stats['loss']:.4f} "
                    f"{stats['images_per_s']:.0f} img/s ({stats['seconds']:.1f}s)")
        logger.scalars({"loss": stats["loss"], "images_per_s": stats["images_per_s"]}, epoch, prefix="epoch/")
        if args.knn_every and epoch % args.knn_every == 0:
            accuracy = knn_monitor(model, train_set, knn_test, args, info)
            logger.info(f"epoch {epoch}: k-NN top-1 {accuracy:.2f}%")
            logger.scalars({"top1": accuracy}, epoch, prefix="knn/")
        if info.is_main:
            save_run(run_dir, checkpoint_state(model, optimizer, scheduler, epoch, args, colt), args, epoch)
        distributed.barrier()
        yield "saved"


if __name__ == "__main__":
    main()
