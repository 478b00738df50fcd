r"""Contrastive pre-training on a long-tailed split: SimCLR, SDCLR (``--prune``) or BCL (``--bcl``; BCL-D with
``--prune``), each optionally with COLT's online OOD sampling (``--COLT``) or MAK's offline extra images
(``--additional_*``).

    python train_simclr.py [EXPERIMENT] --dataset synthetic --epochs 10 --width 16
    torchrun --nproc_per_node=8 train_simclr.py EXPERIMENT --dataset cifar10 --data ~/data \
        --trainSplit split1_D_i [--prune --prune_dual_bn] [--bcl --rand_k 1] [--COLT]

The run directory is ``<save-dir>/<EXPERIMENT>``: args.json, log.txt, tensorboard/, model.pt (latest)
and model_<epoch>.pt every --save_freq epochs. ``--resume`` continues a run exactly from its model.pt
(the method's and every plug-in's state included); it refuses settings that differ from the run's, except
those listed under --resume. A non-finite loss stops the run with an error before anything is saved: the
last good model.pt stays.

Several processes: the contrastive loss, its gradients, the tailness scores, BCL's momentum losses and the
OOD selection are those of one process at the same global batch, but BatchNorm statistics are per process
(SyncBatchNorm needs CUDA; gloo on the CPU has none), so a 2-process CPU run is not bit-identical to a
1-process one.
"""
from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without installing

import numpy as np
import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import methods
from data.build import DATASETS, canonical_dataset, class_names
from data.datasets import ImageDecodeError, decode_error_message
from data.ood import default_sample_set
from data.pretraining import TrainingBatches, build_pretraining_data
from data.relations import colt_pool_near_class
from data.views import IMAGE_KIND
from methods import BCL, Batch
from models import MODEL_NAMES, build_simclr
from sampling import colt
from utils import distributed
from utils.checkpoint import load_checkpoint, remove_stale_temporaries, rng_state, save_checkpoint, set_rng_state, \
    shape_mismatches
from utils.cli import HelpFormatter
from utils.embed import embed_dataset, with_transform
from utils.knn import knn_predict
from utils.logger import RunLogger, progress_disabled, write_args
from utils.optim import build_optimizer
from utils.precision import DEFAULT_PRECISION, PRECISIONS, PRECISION_HELP
from utils.schedule import build_scheduler

# The papers' settings per dataset; a flag left unset takes these.
PAPER_DEFAULTS = {
    "cifar": dict(epochs=2000, batch_size=512, lr=0.5, model="res18", budget=10000, sup_weight=0.2),
    "imagenet": dict(epochs=500, batch_size=256, lr=0.5, model="res50", budget=10000, sup_weight=0.01),
}
SYNTHETIC_DEFAULTS = dict(epochs=100, batch_size=256, lr=0.5, model="res18", budget=1000, sup_weight=0.2)
PRUNE_DEFAULTS = {"cifar": 0.9, "imagenet": 0.3}
# Flags that --resume accepts with another value than the run's: none of them changes the weights, the
# data order or the OOD selection. Every other saved setting must match (--epochs: see --extend_epochs).
# Paths (--data, --ood_data, --ood_root) may change because data move; their content must not.
RESUME_MAY_CHANGE = ("num_workers", "print_freq", "save_freq", "knn_every", "knn_k", "testSplit",
                     "embed_batch_size", "device", "data", "ood_data", "ood_root", "save_dir", "experiment",
                     "resume", "checkpoint", "overwrite", "extend_epochs", "check_only")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("experiment", nargs="?", default=None,
                   help="run name; the run directory is <save-dir>/<experiment> (default: <dataset>_<method>)")
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
                   help="cpu: torchvision per image in DataLoader workers; gpu: batched with per-image "
                        "parameters, array data (synthetic, CIFAR, array pools) held on the training device as "
                        "uint8, no workers on CUDA (on the CPU, --num_workers processes make the next batches' "
                        "views; file lists: workers decode and crop); auto: gpu when CUDA is present, else cpu "
                        "(on the loaded 2-core CPU neither path was reliably faster, docs/benchmarks.md)")
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None, choices=sorted(MODEL_NAMES),
                   help="encoder (default: res18 for 32x32 data, res50 for ImageNet-100/Places)")
    g.add_argument("--width", type=int, default=64, help="channels of the first ResNet stage (64 = standard)")
    g.add_argument("--output_ch", type=int, default=128, help="projection head output dimension")
    g.add_argument("--compile", action="store_true",
                   help="torch.compile the training step's model (off by default; checkpoints, embedding passes "
                        "and probes use the plain module); meant for GPUs: on the 2-core CPU it was not shown "
                        "to help (docs/benchmarks.md)")
    methods.add_arguments(p)
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
    colt.add_arguments(p)
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
    return finalise_args(p, p.parse_args(argv))


def finalise_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """The papers' defaults for unset flags, then every check that needs no file (one error line)."""
    try:
        args.dataset = canonical_dataset(args.dataset)
    except ValueError as e:
        parser.error(str(e))
    kind = IMAGE_KIND[args.dataset]
    defaults = SYNTHETIC_DEFAULTS if args.dataset == "synthetic" else PAPER_DEFAULTS[kind]
    for name, value in {**defaults, "prune_percent": PRUNE_DEFAULTS[kind]}.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.sample_set is None:
        args.sample_set = default_sample_set(args.dataset)
    if args.additional_dataset is not None and args.additional_dataset.lower() == "none":
        args.additional_dataset = None  # the MAK launchers' spelling of "no extra images"
    errors = [f"--{name} must be positive, got {getattr(args, name)}"
              for name in ("epochs", "batch_size", "width", "output_ch", "save_freq", "print_freq")
              if getattr(args, name) <= 0]
    errors += [f"--{name} must be >= 0, got {getattr(args, name)}"
               for name in ("num_workers", "lr_warmup_epochs", "max_steps_per_epoch", "knn_every")
               if getattr(args, name) < 0]
    errors += [f"--{name} must be a finite number > 0, got {getattr(args, name)}" for name in ("lr", "temperature")
               if not (math.isfinite(getattr(args, name)) and getattr(args, name) > 0)]
    if not (math.isfinite(args.weight_decay) and args.weight_decay >= 0):
        errors.append(f"--weight_decay must be a finite number >= 0, got {args.weight_decay}")
    if not (math.isfinite(args.momentum) and 0 <= args.momentum < 1):
        errors.append(f"--momentum must be in [0, 1), got {args.momentum}")
    if args.knn_k <= 0:
        errors.append(f"--knn_k must be positive, got {args.knn_k}")
    errors += colt.check_args(args) + methods.check_args(args)
    exclusive = [("resume", "overwrite", "--resume and --overwrite exclude each other"),
                 ("additional_dataset", "COLT", "--additional_dataset (images chosen offline) and --COLT (chosen "
                                                "online) exclude each other")]
    errors += [message for a, b, message in exclusive if getattr(args, a) and getattr(args, b)]
    needs = [("extend_epochs", "resume", "--extend_epochs extends a run: add --resume"),
             ("checkpoint", "resume", "--checkpoint names the checkpoint to resume from: add --resume"),
             ("additional_dataset", "additional_split", "--additional_dataset needs --additional_split: the "
                                                        "chosen items")]
    errors += [message for a, b, message in needs if getattr(args, a) and not getattr(args, b)]
    if args.additional_sup_weight < 0:
        errors.append(f"--additional_sup_weight must be >= 0, got {args.additional_sup_weight}")
    if errors:
        parser.error(errors[0])
    args.experiment = args.experiment or f"{args.dataset}_{default_name(args)}"
    return args


def default_name(args) -> str:
    """simclr, colt, sdclr, sdclr_colt, bcl_i, bcl_i_colt, bcl_d, bcl_d_colt."""
    name = ("bcl_d" if args.prune else "bcl_i") if args.bcl else ("sdclr" if args.prune else "simclr")
    return ("colt" if name == "simclr" else f"{name}_colt") if args.COLT else name


def main(argv=None) -> Path:
    args = parse_args(argv)
    info = distributed.init_distributed(args.device)
    try:
        return run(args, info)
    finally:
        distributed.cleanup()


def run(args, info: distributed.DistInfo) -> Path:
    # Data, pool, run directory and checkpoint are all checked before anything is written.
    try:
        data = build_pretraining_data(args, info.world_size)
        run_dir, mode = plan_run_dir(args, info)
        state, path = resume_state(args, run_dir, mode)
        torch.manual_seed(args.seed)
        method = methods.build_method(args, build_network(args, info))
        if state is not None:
            check_architecture(method.network, state, path, args)
            check_resume(args, state, path)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    if args.check_only:
        if info.is_main:
            print(f"checked: {len(data.id_set)} training images, run directory {run_dir} ({mode}); nothing written")
        return run_dir
    aside = take_run_dir(run_dir, mode, info)
    logger = RunLogger(run_dir, enabled=info.is_main)
    saved_once = False
    try:
        if aside is not None:
            logger.info(f"--overwrite: the old run is kept at {aside} until this run saves its first checkpoint")
        if mode == "restart":
            logger.info(f"{run_dir} held no checkpoint (an earlier start stopped before its first epoch "
                        f"ended): starting the run again")
        if info.is_main and state is None:
            write_args(args, run_dir / "args.json", what_runs(args, info))
        for _ in train(args, info, logger, run_dir, method, data, state, path):  # yields after each checkpoint
            if not saved_once:
                saved_once = True
                if info.is_main and aside is not None:
                    shutil.rmtree(aside, ignore_errors=True)
    except NonFiniteError as e:
        logger.close()
        last = run_dir / "model.pt"
        if not saved_once and aside is not None:
            give_back_run_dir(run_dir, aside, info)
            kept = f"the run it was to replace is back in {run_dir}, unchanged"
        else:
            kept = f"{last} is kept unchanged" if last.is_file() else "no checkpoint was saved"
        raise SystemExit(f"error: {e}; stopped before saving: {kept} (lower --lr or raise --temperature)") \
            from None
    except ImageDecodeError as e:
        logger.close()
        if not saved_once:
            give_back_run_dir(run_dir, aside, info)
        raise SystemExit(f"error: {decode_error_message(e)}") from None
    except BaseException:
        logger.close()
        if not saved_once:
            give_back_run_dir(run_dir, aside, info)
        raise
    logger.info(f"done: outputs in {run_dir.resolve()}")
    logger.close()
    return run_dir


def build_network(args, info: distributed.DistInfo) -> nn.Module:
    """The encoder + projection head (SDCLR: with its pruned branch) on the training device."""
    cifar_stem = IMAGE_KIND[args.dataset] == "cifar"
    if args.prune:
        from models.sdclr import build_sdclr
        network = build_sdclr(args.model, width=args.width, cifar_stem=cifar_stem, output_ch=args.output_ch,
                              dual_bn=args.prune_dual_bn)
    else:
        network = build_simclr(args.model, width=args.width, cifar_stem=cifar_stem, output_ch=args.output_ch)
    if info.is_distributed and info.device.type == "cuda":
        network = nn.SyncBatchNorm.convert_sync_batchnorm(network)  # plain BN on CPU: gloo has no SyncBN
    network = network.to(info.device)
    if info.device.type == "cuda":
        network = network.to(memory_format=torch.channels_last)
    return network


def build_hooks(args, data, info) -> list:
    """The plug-ins the flags ask for, in the order they act."""
    hooks = []
    if args.COLT:
        hooks.append(colt.COLT(len(data.id_set), colt.COLTConfig.from_args(args, len(data.ood_pool)), info.device))
    if args.additional_sup_weight > 0:
        hooks.append(colt.DistributionLoss(args.additional_sup_weight, args.temperature))
    if args.bcl:
        hooks.append(BCL(len(data.id_set), args.momentum_loss_beta, args.bcl_ood_strength, info.device))
    return hooks


class Loop:
    """What plug-ins see of the run: the data, embedding passes, the training set's OOD items, the outputs."""

    def __init__(self, args, info, logger, run_dir, method, data, batches: TrainingBatches):
        self.args, self.info, self.logger, self.run_dir = args, info, logger, run_dir
        self.method, self.data, self.batches = method, data, batches
        self.id_set, self.ood_pool = data.id_set, data.ood_pool
        self.id_labels, self.class_names = data.id_set.labels, class_names(args.dataset)
        # how the pool's items relate to the ID classes, where the pool knows it: for the round records only
        self.pool_near_class = colt_pool_near_class(args.sample_set, args.dataset, args.data) \
            if args.COLT and info.is_main else None

    def embed(self, dataset, projection: bool = True) -> torch.Tensor:
        """Normalised embeddings of a whole dataset under the test view (dense branch), the same on every rank."""
        return embed_dataset(self.method.eval_network(), with_transform(dataset, self.data.eval_view()),
                             self.info.device, self.args.embed_batch_size, self.args.num_workers,
                             projection=projection, precision=self.args.precision)

    def eval_images(self, dataset, indices) -> np.ndarray:
        """(n, H, W, 3) uint8 test views of ``dataset``'s items at ``indices`` (for pictures)."""
        view = with_transform(dataset, self.data.eval_view())
        return np.stack([view[int(i)][0].permute(1, 2, 0).numpy() for i in indices]) if len(indices) else \
            np.zeros((0, 1, 1, 3), np.uint8)

    def set_ood_items(self, indices) -> None:
        """Train on the ID set + these pool items from now on."""
        self.data.train.set_ood_indices(indices)
        self.batches.reset()


def train(args, info, logger, run_dir, method, data, state, path):
    """The training loop; yields after every checkpoint."""
    hooks = build_hooks(args, data, info)
    optimizer = build_optimizer(args.optimizer, method.network, args.lr, args.weight_decay, args.momentum)
    total_steps, warmup_steps = schedule_steps(args, len(data.train))
    scheduler = build_scheduler(optimizer, total_steps=total_steps, warmup_steps=warmup_steps)
    batches = TrainingBatches(data, args.batch_size, info.rank, info.world_size, info.device, args.seed,
                              args.num_workers, batched_views(args, info), randaug=bcl_config(args))
    loop = Loop(args, info, logger, run_dir, method, data, batches)
    start_epoch = 1
    if state is not None:
        start_epoch = restore(state, method, optimizer, scheduler, hooks, loop, total_steps) + 1
        logger.info(f"resumed from {path} at epoch {start_epoch - 1}")
    runner = method
    if info.is_distributed:
        runner = DistributedDataParallel(method, device_ids=[info.local_rank] if info.device.type == "cuda" else None)
    if args.compile:
        runner = torch.compile(runner)  # the same parameters: the method stays the module saved
    logger.info(f"{args.dataset}: {len(data.id_set)} training images"
                f"{f', OOD pool of {len(data.ood_pool)} ({args.sample_set})' if args.COLT else ''}"
                f"{f' + {len(data.train.ood_indices)} extra images ({args.additional_dataset})' if args.additional_dataset else ''}, "
                f"{batches.steps_per_epoch} steps/epoch of {args.batch_size} "
                f"({info.world_size} process(es) on {info.device.type}); {method.name}"
                f"{''.join(' + ' + h.key for h in hooks)}; run dir {run_dir}")
    for epoch in range(start_epoch, args.epochs + 1):
        for hook in hooks:
            hook.epoch_start(epoch, loop)  # a COLT round may change the training set
        logger.scalars(method.epoch_start(epoch), epoch, prefix="method/")  # SDCLR: masks from the weights
        strengths = [s for s in (h.item_strengths(len(data.train)) for h in hooks) if s is not None]
        loader = batches.epoch(epoch, strengths[0] if strengths else None)  # BCL's, with the batch keys
        stats = train_one_epoch(runner, method, hooks, loader, optimizer, scheduler, epoch, args, info, logger)
        for hook in hooks:
            hook.epoch_end(epoch)  # BCL: the next epoch's strengths
        logger.info(f"epoch {epoch}/{args.epochs} loss {stats['loss']:.4f} "
                    f"{stats['images_per_s']:.0f} img/s ({stats['seconds']:.1f}s)")
        logger.scalars({"loss": stats["loss"], "images_per_s": stats["images_per_s"]}, epoch, prefix="epoch/")
        if args.knn_every and epoch % args.knn_every == 0:
            accuracy = knn_monitor(loop)
            logger.info(f"epoch {epoch}: k-NN top-1 {accuracy:.2f}%")
            logger.scalars({"top1": accuracy}, epoch, prefix="knn/")
        if info.is_main:
            save_run(run_dir, checkpoint_state(method, optimizer, scheduler, hooks, epoch, args), args, info, epoch)
        distributed.barrier()
        yield epoch


class NonFiniteError(Exception):
    """The loss or the weights stopped being finite: nothing of this epoch may be saved."""


def train_one_epoch(runner, method, hooks, loader, optimizer, scheduler, epoch: int, args, info, logger) -> dict:
    """One epoch; raises NonFiniteError naming the first step whose loss was not finite.

    The check costs no host-device sync per step: the first bad step is kept in a device-side tensor and
    read once at the end of the epoch (and whenever the loss is printed anyway).
    """
    runner.train()
    steps = len(loader) if not args.max_steps_per_epoch else min(len(loader), args.max_steps_per_epoch)
    loss_sum, seen, start = torch.zeros((), device=info.device), 0, time.time()
    first_bad = torch.full((), -1, dtype=torch.long, device=info.device)
    bad_value = torch.zeros((), device=info.device)
    bar = tqdm(total=steps, desc=f"epoch {epoch}/{args.epochs}", disable=progress_disabled(info.is_main),
               leave=False, dynamic_ncols=True)
    try:  # the bar is cleared whatever happens, so that an error message starts its own line
        for step, item in enumerate(loader):
            if step == steps:
                break
            batch = Batch.of(item)
            out = method.step(batch, runner)
            loss = out.loss
            for hook in hooks:
                extra = hook.extra_loss(out)
                loss = loss if extra is None else loss + extra
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            for hook in hooks:
                hook.step_end(out, epoch)
            loss_sum += loss.detach()
            new_bad = (first_bad < 0) & ~torch.isfinite(loss.detach())
            first_bad.masked_fill_(new_bad, step + 1)
            bad_value = torch.where(new_bad, loss.detach().float(), bad_value)
            seen += batch.views.shape[0] * info.world_size
            bar.update(1)
            if (step + 1) % args.print_freq == 0 or step + 1 == steps:
                if first_bad.item() > 0:
                    break
                lr = optimizer.param_groups[0]["lr"]
                bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.4f}")
                logger.scalars({"loss": loss.item(), "lr": lr}, scheduler.last_epoch, prefix="train/")
    finally:
        bar.close()
    # every rank computes the same global loss; the reduction keeps the ranks' decisions identical anyway
    if distributed.all_reduce_mean((first_bad > 0).float()).item() > 0:
        raise NonFiniteError(f"non-finite loss ({bad_value.item()}) at epoch {epoch}, step {first_bad.item()} "
                             f"of {steps}")
    tensors = [t for t in method.network.state_dict().values() if t.is_floating_point()]
    if not torch.stack([torch.isfinite(t).all() for t in tensors]).all().item():
        raise NonFiniteError(f"non-finite weights after epoch {epoch} (the loss stayed finite)")
    elapsed = time.time() - start
    mean_loss = distributed.all_reduce_mean(loss_sum / max(steps, 1)).item()
    return {"loss": mean_loss, "images_per_s": seen / max(elapsed, 1e-9), "seconds": elapsed}


def batched_views(args, info) -> bool:
    """Whether views are made by the batched augmentation (--aug_device gpu, or auto on CUDA)."""
    return args.aug_device == "gpu" or (args.aug_device == "auto" and info.device.type == "cuda")


def what_runs(args, info) -> dict:
    """What the flags turned into on this machine (args.json's "run" entry): --aug_device gpu on a CPU is the
    batched path on the CPU, --precision bf16 without CUDA is float32 arithmetic."""
    where = info.device.type
    return {"method": default_name(args), "device": where, "processes": info.world_size,
            "augmentation": f"batched on {where}" if batched_views(args, info) else "per image in workers",
            "arithmetic": "bf16 autocast" if args.precision == "bf16" and where == "cuda" else "fp32"}


def bcl_config(args):
    """BCL's RandAugment settings, or None without --bcl."""
    if not args.bcl:
        return None
    from data.randaug import RandAugConfig
    return RandAugConfig(k=args.rand_k, max_strength=args.rand_strength)


def schedule_steps(args, num_train: int) -> tuple[int, int]:
    """(total, warm-up) optimiser steps. With COLT the epochs after --warmup count ID + budget images,
    as in the original; the learning-rate warm-up counts ID-only epochs."""
    def steps(n: int) -> int:
        full = n // args.batch_size
        return min(full, args.max_steps_per_epoch) if args.max_steps_per_epoch else full
    plain_epochs = min(args.warmup, args.epochs) if args.COLT else args.epochs
    total = plain_epochs * steps(num_train) + (args.epochs - plain_epochs) * steps(num_train + args.budget)
    return total, args.lr_warmup_epochs * steps(num_train)


def knn_monitor(loop: Loop) -> float:
    """Weighted k-NN top-1 accuracy (%) of the backbone features, training split as the memory bank."""
    device, test_set = loop.info.device, loop.data.test_set
    bank_labels = torch.as_tensor(loop.id_set.labels, device=device)
    test_labels = torch.as_tensor(test_set.labels, device=device)
    predicted = knn_predict(loop.embed(loop.id_set, projection=False), bank_labels,
                            loop.embed(test_set, projection=False),
                            int(max(bank_labels.max(), test_labels.max())) + 1, k=loop.args.knn_k)
    return (predicted == test_labels).float().mean().item() * 100


def checkpoint_state(method, optimizer, scheduler, hooks, epoch: int, args) -> dict:
    """The model, optimiser, schedule, epoch, RNG states, settings and every plug-in's state."""
    state = {"state_dict": method.network.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "epoch": epoch, "rng": rng_state(), "args": saved_args(args)}
    hook_states = {hook.key: hook.state_dict() for hook in hooks}
    state.update({key: value for key, value in hook_states.items() if value})
    return state


def restore(state: dict, method, optimizer, scheduler, hooks, loop: Loop, total_steps: int) -> int:
    """Load a checkpoint into the run; returns its epoch."""
    method.network.load_state_dict(state["state_dict"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    for hook in hooks:
        if hook.state_dict():
            hook.load_state_dict(state[hook.key])
        hook.resume(loop)  # COLT: train on its current selection again
    planned = (state.get("args") or {}).get("epochs", loop.args.epochs)
    if loop.args.epochs != planned:  # --extend_epochs: the schedule's lambda already counts the new total
        for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
            group["lr"] = base * factor(scheduler.last_epoch)
        loop.logger.info(f"--extend_epochs: {planned} -> {loop.args.epochs} epochs; the cosine schedule now ends "
                         f"at step {total_steps}, so the remaining learning rates differ from the planned run's")
    return state["epoch"]


def save_run(run_dir: Path, state: dict, args, info, epoch: int) -> None:
    """model.pt (latest) always; model_<epoch>.pt every --save_freq epochs; args.json beside them."""
    write_args(args, run_dir / "args.json", what_runs(args, info))
    save_checkpoint(state, run_dir / "model.pt")
    if epoch % args.save_freq == 0 or epoch == args.epochs:
        save_checkpoint(state, run_dir / f"model_{epoch}.pt")


# ---- run bookkeeping ----

def plan_run_dir(args, info: distributed.DistInfo) -> tuple[Path, str]:
    """(run directory, mode); checks only, writes nothing. An existing run is never replaced unless
    --resume or --overwrite says so.

    Modes: "new" (nothing there), "restart" (a directory that holds no model.pt: a start that stopped before
    its first checkpoint, which is no run yet), "resume", "overwrite" (a run to move aside, see
    :func:`take_run_dir`). Raises ValueError.
    """
    run_dir = Path(args.save_dir) / args.experiment
    plan = None
    if info.is_main:
        # a run is there once it saved a checkpoint (args.json, log.txt or a launcher's bash_log.txt alone
        # are a start that never finished an epoch)
        has_checkpoint = (run_dir / "model.pt").is_file()
        started = has_checkpoint or any((run_dir / name).exists() for name in ("args.json", "log.txt"))
        if args.resume:
            if args.checkpoint or has_checkpoint:
                plan = ("resume", None)
            elif started:
                plan = ("restart", None)
            else:
                plan = (None, f"--resume: no checkpoint at {run_dir / 'model.pt'} (no run started there)")
        elif has_checkpoint and not args.overwrite:
            plan = (None, f"run directory {run_dir} already holds a run: use --resume to continue it, "
                          f"--overwrite to replace it, or another experiment name")
        elif started:
            plan = ("overwrite" if args.overwrite else "restart", None)
        else:
            plan = ("new", None)
    mode, error = distributed.broadcast_object(plan)
    if error:
        raise ValueError(error)
    return run_dir, mode


def resume_state(args, run_dir: Path, mode: str) -> tuple[dict | None, Path | None]:
    """The checkpoint to continue from (on the CPU: RNG states must stay CPU tensors), or (None, None)."""
    if mode != "resume":
        return None, None
    path = Path(args.checkpoint) if args.checkpoint else run_dir / "model.pt"
    state = load_checkpoint(path, map_location="cpu")
    if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict) or "epoch" not in state:
        raise ValueError(f"{path} is not a pre-training checkpoint of this project (no state_dict / epoch)")
    return state, path


def take_run_dir(run_dir: Path, mode: str, info: distributed.DistInfo) -> Path | None:
    """Make ``run_dir`` this run's (main process only): with "overwrite" move the old run aside to a
    hidden sibling and return that path; otherwise remove the temporaries of interrupted writes."""
    aside = None
    if info.is_main:
        if mode == "overwrite":
            aside = run_dir.with_name(f".{run_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6}")
            run_dir.rename(aside)
        else:
            remove_stale_temporaries(run_dir)
    distributed.barrier()
    return aside


def give_back_run_dir(run_dir: Path, aside: Path | None, info: distributed.DistInfo) -> None:
    """A replacing run failed before its first checkpoint: put the old run back where it was."""
    if info.is_main and aside is not None and aside.exists():
        shutil.rmtree(run_dir, ignore_errors=True)
        aside.rename(run_dir)


def saved_args(args) -> dict:
    """The settings a checkpoint records: every flag of a plain type."""
    return {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool, type(None)))}


def resume_differences(args, saved: dict) -> list[str]:
    """``--flag new (run: old)`` for each saved setting that differs and may not change on --resume.

    Generic over the saved keys: a key an older checkpoint lacks counts as unchanged.
    """
    new = saved_args(args)
    out = []
    for key, value in new.items():
        if key in RESUME_MAY_CHANGE or key not in saved:
            continue
        old = saved[key]
        if key == "epochs" and args.extend_epochs and isinstance(old, int) and value > old:
            continue
        same = value == old or (isinstance(value, float) and isinstance(old, float) and math.isnan(value)
                                and math.isnan(old))
        if not same:
            out.append(f"--{key} {value} (run: {old})")
    return out


def check_resume(args, state: dict, path: Path) -> None:
    """Refuse a checkpoint whose run had other trajectory settings (ValueError)."""
    for flag, key in (("COLT", "colt"), ("bcl", "bcl")):
        if getattr(args, flag) and key not in state:
            raise ValueError(f"{path} holds no {key.upper()} state: it was not a --{flag} run")
    differences = resume_differences(args, state.get("args") or {})
    if differences:
        hint = " (a larger --epochs needs --extend_epochs)" if any(d.startswith("--epochs ") for d in differences) \
            else ""
        raise ValueError(f"--resume: these settings differ from the run's: {', '.join(differences)}; only "
                         f"{', '.join('--' + n for n in RESUME_MAY_CHANGE[:8])}, ... may change{hint}")


def check_architecture(model: nn.Module, state: dict, path: Path, args) -> None:
    """One line instead of load_state_dict's size-mismatch traceback (ValueError)."""
    mismatches = shape_mismatches(model.state_dict(), state["state_dict"])
    if mismatches:
        saved = state.get("args") or {}
        built = f"--model {args.model} --width {args.width} --output_ch {args.output_ch}"
        if {"model", "width", "output_ch"} <= saved.keys():
            raise ValueError(f"checkpoint {path} was trained with --model {saved['model']} --width "
                             f"{saved['width']} --output_ch {saved['output_ch']}; this run builds {built}")
        raise ValueError(f"checkpoint {path} does not fit this run's {built} ({len(mismatches)} tensors "
                         f"differ, e.g. {mismatches[0]})")


if __name__ == "__main__":
    main()
