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
from data import registry
from data.datasets import ImageDecodeError, decode_error_message
from data.inputs import pretraining_inputs
from data import pretraining as data_args
from data.pretraining import TrainingBatches, batched_views, build_pretraining_data, randaug_config
from data.relations import colt_pool_near_class
from methods import BCL, Batch
from models import MODEL_NAMES, build_simclr
from sampling import colt
from utils import distributed
from utils import run_state
from utils.cli import ArgumentParser, HelpFormatter, number_errors
from utils.errors import message
from utils.resume import input_fingerprints
from utils.run_dir import check_name
from utils.embed import embed_dataset, with_transform
from utils.knn import knn_accuracy
from utils.names import method_label
from utils.logger import progress_disabled, write_args
from utils.optim import build_optimizer
from utils.schedule import build_scheduler

def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("experiment", nargs="?", default=None,
                   help="run name; the run directory is <save-dir>/<experiment> (default: <dataset>_<method>)")
    data_args.add_arguments(p)
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
    g.add_argument("--temperature", type=float, default=None,
                   help="NT-Xent temperature; SDCLR on ImageNet-100 / Places takes 0.3, as its release (default: 0.2)")
    g.add_argument("--optimizer", default="sgd", choices=["sgd", "lars"],
                   help="sgd (momentum 0.9) or lars (trust ratio 0.001; BN and biases excluded)")
    g.add_argument("--weight_decay", type=float, default=1e-4, help="weight decay")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD / LARS momentum")
    g.add_argument("--lr_warmup_epochs", type=int, default=10,
                   help="epochs of linear learning-rate warm-up before the cosine decay")
    g.add_argument("--max_steps_per_epoch", type=int, default=0,
                   help="stop each epoch after this many steps (0 = full epochs; for smoke tests)")
    colt.add_arguments(p)
    g = p.add_argument_group("monitoring")
    g.add_argument("--knn_every", type=int, default=0,
                   help="every this many epochs, log the weighted k-NN top-1 accuracy of the backbone features "
                        "on the test set, with the training split's labels as the memory bank (0 = off; labels "
                        "are only read for this monitor, never for training)")
    g.add_argument("--knn_k", type=int, default=200, help="neighbours of the k-NN monitor")
    g.add_argument("--testSplit", default=None, help="test list for the k-NN monitor (ImageNet-100 / Places)")
    run_state.add_arguments(p)
    return finalise_args(p, p.parse_args(argv))


def finalise_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """The papers' defaults for unset flags, then every check that needs no file (one error line)."""
    try:
        args.dataset = registry.canonical_dataset(args.dataset)
    except ValueError as e:
        parser.error(str(e))
    # the papers' settings (data/registry.py) for every flag left unset, SDCLR's with --prune
    for name, value in registry.paper_defaults(args.dataset, methods.method_name(args)).items():
        if getattr(args, name, 0) is None:
            setattr(args, name, value)
    if args.sample_set is None:
        args.sample_set = registry.default_sample_set(args.dataset)
    errors = number_errors(args, positive=("epochs", "batch_size", "width", "output_ch", "save_freq", "print_freq",
                                           "knn_k"),
                           non_negative=("lr_warmup_epochs", "max_steps_per_epoch", "knn_every"),
                           finite_positive=("lr", "temperature"), finite_non_negative=("weight_decay",),
                           unit_interval=("momentum",))
    errors += data_args.check_args(args) + colt.check_args(args) + methods.check_args(args)
    errors += [message for a, b, message in [
        ("resume", "overwrite", "--resume and --overwrite exclude each other")] if getattr(args, a) and getattr(args, b)]
    errors += [message for a, b, message in [
        ("extend_epochs", "resume", "--extend_epochs extends a run: add --resume"),
        ("checkpoint", "resume", "--checkpoint names the checkpoint to resume from: add --resume")]
        if getattr(args, a) and not getattr(args, b)]
    if errors:
        parser.error(errors[0])
    args.experiment = args.experiment or f"{args.dataset}_{default_name(args)}"
    try:
        check_name(args.experiment)
    except ValueError as e:
        parser.error(str(e))
    return args


def default_name(args) -> str:
    """simclr, colt, sdclr, sdclr_colt, bcl_i, bcl_i_colt, bcl_d, bcl_d_colt."""
    name = ("bcl_d" if args.prune else "bcl_i") if args.bcl else ("sdclr" if args.prune else "simclr")
    return ("colt" if name == "simclr" else f"{name}_colt") if args.COLT else name


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


def run(args, info: distributed.DistInfo) -> Path:
    # Data, pool, run directory and checkpoint are all checked before anything is written.
    try:
        data = build_pretraining_data(args, info.world_size)
        args.input_fingerprints = input_fingerprints(pretraining_inputs(args))  # --resume compares them
        run_dir, mode = run_state.plan_run_dir(args, info)
        state, path = run_state.resume_state(args, run_dir, mode)
        torch.manual_seed(args.seed)
        method = methods.build_method(args, build_network(args, info))
        if state is not None:
            run_state.check_resume(args, method.network, state, path, plugin_keys(args))
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: {message(e)}") from None
    if args.check_only:
        if info.is_main:
            print(f"checked: {len(data.id_set)} training images, run directory {run_dir} ({mode}); nothing written")
        return run_dir
    describe = lambda e: decode_error_message(e) if isinstance(e, ImageDecodeError) else message(e)
    with run_state.ClaimedRun(run_dir, mode, info, describe) as claimed:  # on failure the old run comes back
        if info.is_main and state is None:
            write_args(args, run_dir / "args.json", what_runs(args, info))
        for _ in train(args, info, claimed.logger, run_dir, method, data, state, path):  # after each checkpoint
            claimed.saved()
    return run_dir


def build_network(args, info: distributed.DistInfo) -> nn.Module:
    """The encoder + projection head (SDCLR: with its pruned branch) on the training device."""
    cifar_stem = registry.dataset(args.dataset).image_kind == "cifar"
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
        self.id_labels, self.class_names = data.id_set.labels, registry.class_names(args.dataset)
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
                              args.num_workers, batched_views(args, info.device), randaug=randaug_config(args))
    loop = Loop(args, info, logger, run_dir, method, data, batches)
    start_epoch = 1
    if state is not None:
        start_epoch = run_state.restore(state, method.network, optimizer, scheduler, hooks, loop, total_steps) + 1
        logger.info(f"resumed from {path} at epoch {start_epoch - 1}")
    runner = method
    if info.is_distributed:
        runner = DistributedDataParallel(method, device_ids=[info.device.index] if info.device.type == "cuda" else None)
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
            accuracy = knn_accuracy(lambda d: loop.embed(d, projection=False), data.id_set, data.test_set,
                                    args.knn_k, info.device)
            logger.info(f"epoch {epoch}: k-NN top-1 {accuracy:.2f}%")
            logger.scalars({"top1": accuracy}, epoch, prefix="knn/")
        if info.is_main:
            run_state.save_run(run_dir, run_state.checkpoint_state(method.network, optimizer, scheduler, hooks, epoch,
                                                                   args), args, what_runs(args, info), epoch)
        distributed.barrier()
        yield epoch


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
        raise run_state.NonFiniteError(f"non-finite loss ({bad_value.item()}) at epoch {epoch}, step {first_bad.item()} "
                             f"of {steps}")
    tensors = [t for t in method.network.state_dict().values() if t.is_floating_point()]
    if not torch.stack([torch.isfinite(t).all() for t in tensors]).all().item():
        raise run_state.NonFiniteError(f"non-finite weights after epoch {epoch} (the loss stayed finite)")
    elapsed = time.time() - start
    mean_loss = distributed.all_reduce_mean(loss_sum / max(steps, 1)).item()
    return {"loss": mean_loss, "images_per_s": seen / max(elapsed, 1e-9), "seconds": elapsed}


def what_runs(args, info) -> dict:
    """What the flags turned into on this machine (args.json's "run" entry): --aug_device gpu on a CPU is the
    batched path on the CPU, --precision bf16 without CUDA is float32 arithmetic."""
    where = info.device.type
    return {"method": method_label(args.prune, args.bcl, args.COLT), "device": where, "processes": info.world_size,
            "augmentation": f"batched on {where}" if batched_views(args, info.device) else "per image in workers",
            "arithmetic": "bf16 autocast" if args.precision == "bf16" and where == "cuda" else "fp32"}


def plugin_keys(args) -> list[str]:
    """The checkpoint entries the flags' plug-ins need on --resume."""
    return [key for flag, key in (("COLT", "colt"), ("bcl", "bcl")) if getattr(args, flag)]


def schedule_steps(args, num_train: int) -> tuple[int, int]:
    """(total, warm-up) optimiser steps. With COLT the epochs after --warmup count ID + budget images,
    as in the original; the learning-rate warm-up counts ID-only epochs."""
    def steps(n: int) -> int:
        full = n // args.batch_size
        return min(full, args.max_steps_per_epoch) if args.max_steps_per_epoch else full
    plain_epochs = min(args.warmup, args.epochs) if args.COLT else args.epochs
    total = plain_epochs * steps(num_train) + (args.epochs - plain_epochs) * steps(num_train + args.budget)
    return total, args.lr_warmup_epochs * steps(num_train)


if __name__ == "__main__":
    main()
