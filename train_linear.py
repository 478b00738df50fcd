r"""Linear probing of a pre-trained encoder (full-shot by default; see train_fewshot.py for the 1% protocol).

    python train_linear.py PROBE_NAME --checkpoint checkpoints/run/model.pt --dataset cifar10 --data ~/data \
        --trainSplit trainIdxList --valSplit valIdxList

The encoder is frozen up to and including ``--fixto`` (layer4: everything) with BatchNorm in eval mode
(``--fixbn``); a fresh linear layer is trained with SGD (momentum 0.9, no weight decay) and step decay x0.1
at ``--decreasing_lr``. The epoch with the best validation accuracy (mean per-class top-1) is kept and
evaluated once on the test set. Outputs in ``<save-dir>/<PROBE_NAME>``: results.json (All / Many /
Medium / Few / Std and per-class accuracies), probe.pt, args.json, log.txt, tensorboard/.
``--cached_features`` extracts the frozen features of every split (train, validation, test) once and trains
on them (no augmentation), which gives the same result as the uncached run with ``--no_aug`` in seconds
instead of minutes. Without it, a frozen encoder's validation features are still extracted only once.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without installing

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2
from tqdm import tqdm

from data import registry
from data.build import DATASETS, build_eval_sets, build_train_set
from data.views import eval_transform
from models.pretrained import load_encoder
from utils.checkpoint import atomic_write, check_weights, load_checkpoint, save_checkpoint, shape_mismatches
from utils.embed import with_transform
from utils.cli import ArgumentParser, HelpFormatter
from utils.device import pick_device, to_device
from utils.errors import one_line_errors
from utils.run_dir import RunDirClaim, check_name, plan_run_dir
from utils.logger import RunLogger, progress_disabled, write_args
from utils.precision import DEFAULT_PRECISION, PRECISIONS, PRECISION_HELP, autocast
from utils.metrics import evaluation_results, format_summary, per_class_accuracy

FREEZE_ORDER = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")


def split_defaults(dataset: str) -> tuple[str | None, str | None, str | None]:
    """(full-shot, validation, few-shot) splits of the dataset's protocol; the few-shot split is the one of
    its default long-tailed split (CIFAR: split1_S_b), None where the dataset has none by default."""
    splits = registry.dataset(dataset).splits
    few = registry.few_shot_split(dataset, splits.train) if splits.train else splits.few
    return splits.full, splits.val, few


def parse_args(argv=None, few_shot: bool = False, description: str | None = None) -> argparse.Namespace:
    """The probe's flags; ``few_shot`` switches to the 1% protocol's defaults and ``description`` to the
    calling script's own --help text (train_fewshot.py)."""
    p = ArgumentParser(description=description or __doc__, formatter_class=HelpFormatter)
    p.add_argument("experiment", nargs="?", default=None, help="probe name; outputs in <save-dir>/<experiment>")
    p.add_argument("--checkpoint", required=True,
                   help="pre-training checkpoint (ours, DDP-wrapped, or the original releases')")
    p.add_argument("--cvt_state_dict", action="store_true",
                   help="accepted for compatibility: checkpoints are always converted (module. prefixes and "
                        "the projection head dropped)")
    p.add_argument("--dataset", default=None, help=f"one of {', '.join(DATASETS)} (default: the checkpoint's)")
    p.add_argument("--data", default=None, help="dataset root (default: the checkpoint's)")
    p.add_argument("--trainSplit", default=None,
                   help="probe training split (default: trainIdxList for CIFAR, 'full' synthetic; few-shot: "
                        "split1_S_b / 'few')")
    p.add_argument("--valSplit", default=None, help="validation split for model selection (default valIdxList)")
    p.add_argument("--testSplit", default=None, help="test list (ImageNet-100 / Places, default the dataset's released test list; CIFAR and "
                        "synthetic use their test sets)")
    p.add_argument("--pretrain_split", default=None,
                   help="the long-tailed pre-training split whose class counts define Many/Medium/Few "
                        "(default: the checkpoint's --trainSplit)")
    p.add_argument("--epochs", type=int, default=100 if few_shot else 30, help="probe epochs (30; few-shot 100)")
    p.add_argument("--decreasing_lr", default="40,60" if few_shot else "10,20",
                   help="epochs at which the learning rate is multiplied by 0.1")
    p.add_argument("--lr", type=float, default=30.0, help="learning rate of the linear layer")
    p.add_argument("--batch_size", type=int, default=None, help="default: 128 CIFAR / synthetic, 512 ImageNet")
    p.add_argument("--fixto", default="layer4", choices=["none", *FREEZE_ORDER],
                   help="freeze the encoder up to and including this block")
    p.add_argument("--fixbn", action=argparse.BooleanOptionalAction, default=True,
                   help="keep BatchNorm in eval mode (default on)")
    p.add_argument("--no_aug", action="store_true", help="train without augmentation")
    p.add_argument("--cached_features", action="store_true",
                   help="extract frozen features once and train the linear layer on them (implies --no_aug; "
                        "needs --fixto layer4 --fixbn)")
    p.add_argument("--test_freq", type=int, default=1, help="validate every this many epochs")
    p.add_argument("--print_freq", type=int, default=10,
                   help="log the loss and validation accuracy every this many epochs (and the last); TensorBoard "
                        "gets every epoch")
    p.add_argument("--test_only", action="store_true",
                   help="evaluate the probe already saved as <save-dir>/<experiment>/probe.pt on the test set")
    p.add_argument("--save-dir", "--save_dir", dest="save_dir", default="checkpoints_probe", help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing probe of the same name: the old one is moved aside once every input "
                        "is checked, removed when the new results are written, and put back if the probe fails")
    p.add_argument("--method", default=None, help="method name for the report (default: the pre-training "
                                                  "run's name)")
    p.add_argument("--seed", type=int, default=1, help="seed of the linear layer and the data order")
    p.add_argument("--num_workers", type=int, default=4, help="DataLoader workers")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"], help="device")
    p.add_argument("--precision", default=DEFAULT_PRECISION, choices=PRECISIONS, help=PRECISION_HELP)
    args = p.parse_args(argv)
    args.shot = "few" if few_shot else "full"
    for name in ("epochs", "test_freq", "print_freq"):
        if getattr(args, name) <= 0:
            p.error(f"--{name} must be positive, got {getattr(args, name)}")
    if args.batch_size is not None and args.batch_size <= 0:
        p.error(f"--batch_size must be positive, got {args.batch_size}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        p.error(f"--lr must be a finite number > 0, got {args.lr}")
    if args.num_workers < 0:
        p.error(f"--num_workers must be >= 0, got {args.num_workers}")
    try:
        args.milestones = [int(e) for e in str(args.decreasing_lr).split(",") if e.strip()]
    except ValueError:
        p.error(f"--decreasing_lr must be comma-separated epochs, got {args.decreasing_lr!r}")
    if args.cached_features:
        if args.fixto != "layer4" or not args.fixbn:
            p.error("--cached_features needs a frozen encoder: --fixto layer4 --fixbn")
        args.no_aug = True
    for name in ("experiment", "method"):
        if getattr(args, name) is not None:
            try:
                check_name(getattr(args, name), "the probe name" if name == "experiment" else "--method")
            except ValueError as e:
                p.error(str(e))
    return args


def freeze(encoder: nn.Module, fixto: str) -> None:
    if fixto == "none":
        return
    for name in FREEZE_ORDER[:FREEZE_ORDER.index(fixto) + 1]:
        for p in getattr(encoder, name).parameters():
            p.requires_grad_(False)


def probe_augmentation(kind: str):
    """CIFAR: RandomCrop(32, padding 4) + flip; ImageNet-size: RandomResizedCrop(224) + flip."""
    if kind == "cifar":
        return v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()])
    return v2.Compose([v2.RandomResizedCrop(224, interpolation=InterpolationMode.BICUBIC), v2.RandomHorizontalFlip()])


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The shuffled order of epoch ``epoch``: the same for the cached and the uncached path."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).tolist()


@torch.no_grad()
def extract(encoder, dataset, device, batch_size, num_workers,
            precision: str = DEFAULT_PRECISION) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen backbone features (float32) and labels of a whole dataset, in dataset order."""
    encoder.eval()
    feats, labels = [], []
    for images, y, _ in DataLoader(dataset, batch_size=batch_size, num_workers=num_workers):
        with autocast(device, precision):
            feats.append(encoder.features(to_device(images, device)).float())
        labels.append(y.to(device))
    return torch.cat(feats), torch.cat(labels)


def predict(encoder, head, dataset, device, batch_size, num_workers, precision: str = DEFAULT_PRECISION,
            features: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true labels of ``dataset``; from ``features`` (already extracted) when given."""
    if features is None:
        features = extract(encoder, dataset, device, batch_size, num_workers, precision)
    features, labels = features
    with torch.no_grad():
        return head(features).argmax(1).cpu().numpy(), labels.cpu().numpy()


def encoder_is_frozen(encoder, args) -> bool:
    """No trainable encoder weight and BatchNorm in eval mode: its features never change during probing."""
    return args.fixbn and not any(p.requires_grad for p in encoder.parameters())


def train_probe(encoder, head, train_set, val_set, args, device, logger) -> dict:
    """SGD on the head (and any unfrozen blocks); returns the best head state by validation accuracy."""
    params_in_encoder = any(p.requires_grad for p in encoder.parameters())
    params = [p for p in list(encoder.parameters()) + list(head.parameters()) if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=args.milestones, gamma=0.1)
    extract_all = lambda dataset: extract(encoder, dataset, device, args.batch_size, args.num_workers, args.precision)
    cached = extract_all(train_set) if args.cached_features else None
    # A frozen encoder gives the same validation features every epoch: extract them once.
    val_features = extract_all(val_set) if encoder_is_frozen(encoder, args) else None
    best = {"val": -1.0, "epoch": 0, "head": None}
    if args.lr >= 1:
        logger.info(f"lr {args.lr:g} (the papers' probe setting) on unnormalised features: the training loss swings "
                    f"widely in the first epochs (values in the hundreds or thousands are normal) and can reach "
                    f"0.0000 once the probe's training images are separated; the epoch is chosen by validation "
                    f"accuracy")
    for epoch in range(1, args.epochs + 1):
        encoder.train(not args.fixbn)
        order = epoch_order(len(train_set), args.seed, epoch)
        batches = [order[i:i + args.batch_size] for i in range(0, len(order), args.batch_size)]
        loader = None if cached else iter(DataLoader(Subset(train_set, order), batch_size=args.batch_size,
                                                     num_workers=args.num_workers))
        total = 0.0
        for batch in tqdm(batches, desc=f"probe epoch {epoch}/{args.epochs}", leave=False, dynamic_ncols=True,
                          disable=progress_disabled()):
            if cached:
                features, labels = cached[0][batch], cached[1][batch]
            else:
                images, labels, _ = next(loader)
                labels = labels.to(device)
                with torch.set_grad_enabled(args.fixto != "layer4"), autocast(device, args.precision):
                    features = encoder.features(to_device(images, device)).float()
            loss = F.cross_entropy(head(features), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        if not math.isfinite(total):
            raise SystemExit(f"error: non-finite probe loss at epoch {epoch}: nothing was saved (lower --lr)")
        scheduler.step()
        logger.scalars({"loss": total / len(order), "lr": optimizer.param_groups[0]["lr"]}, epoch, "probe/")
        if epoch % args.test_freq == 0 or epoch == args.epochs:
            pred, labels = predict(encoder, head, val_set, device, args.batch_size, args.num_workers, args.precision,
                                   val_features)
            val = float(np.nanmean(per_class_accuracy(labels, pred, head.out_features)))
            logger.scalars({"val_accuracy": val}, epoch, "probe/")
            if epoch % args.print_freq == 0 or epoch == args.epochs or epoch == 1:
                logger.info(f"probe epoch {epoch}/{args.epochs} loss {total / len(order):.4f} val {val:.2f}")
            if val > best["val"]:
                best = {"val": val, "epoch": epoch, "head": {k: v.clone() for k, v in head.state_dict().items()},
                        # a frozen encoder (the default) never changes: nothing to keep
                        "encoder": {k: v.clone() for k, v in encoder.state_dict().items()} if params_in_encoder
                        else None}
    return best


def class_counts_of_pretraining(args, pretrain_args) -> np.ndarray:
    split = args.pretrain_split or pretrain_args.get("trainSplit")
    data = args.data if args.data is not None else pretrain_args.get("data")
    labels = build_train_set(args.dataset, data, split).labels
    return np.bincount(labels[labels >= 0])


def read_saved_probe(path: Path, encoder, args) -> dict:
    """probe.pt, checked: a head (weight, bias) for these features and an encoder state that fits."""
    state = load_checkpoint(path, map_location="cpu")
    if not isinstance(state, dict) or not isinstance(state.get("head"), dict):
        found = type(state).__name__ if not isinstance(state, dict) else f"keys {', '.join(map(str, state))}"
        raise ValueError(f"{path} is not a probe of this project (expected a dict with 'head' and 'encoder', "
                         f"found {found})")
    head = check_weights(state["head"], path, "head")
    weight, bias = head.get("weight"), head.get("bias")
    if weight is None or bias is None or weight.dim() != 2 or bias.shape != weight.shape[:1]:
        raise ValueError(f"{path}: the head must hold weight (classes, features) and bias (classes)")
    saved = check_weights(state.get("encoder"), path, "encoder")
    mismatches = shape_mismatches(encoder.state_dict(), saved)
    if mismatches:
        width = encoder.conv1.weight.shape[0]
        conv1 = saved.get("conv1.weight")
        trained = f"an encoder of width {conv1.shape[0]}" if conv1 is not None else "another encoder"
        raise ValueError(f"probe {path} was trained on {trained}; --checkpoint {args.checkpoint} is a "
                         f"width-{width} encoder ({len(mismatches)} tensors differ, e.g. {mismatches[0]})")
    if weight.shape[1] != encoder.feature_dim:
        raise ValueError(f"probe {path} reads {weight.shape[1]}-d features; --checkpoint {args.checkpoint} gives "
                         f"{encoder.feature_dim}-d features")
    return state


def evaluate_saved_probe(run_dir: Path, encoder, test_set, counts, args, device, kind) -> Path:
    """--test_only: the probe saved in ``run_dir`` on the test set; prints the results, writes nothing."""
    state = read_saved_probe(run_dir / "probe.pt", encoder, args)
    encoder.load_state_dict({k: state["encoder"][k] for k in encoder.state_dict()})
    head = nn.Linear(encoder.feature_dim, state["head"]["weight"].shape[0]).to(device)
    head.load_state_dict({k: state["head"][k] for k in ("weight", "bias")})
    encoder.to(device)
    pred, labels = predict(encoder, head, with_transform(test_set, eval_transform(kind)), device,
                           args.batch_size, args.num_workers, args.precision)
    print(json.dumps(evaluation_results(labels, pred, counts, registry.dataset(args.dataset).group_rule), indent=2))
    return run_dir


def main(argv=None, few_shot: bool = False, description: str | None = None) -> Path:
    args = parse_args(argv, few_shot, description)
    with one_line_errors():
        return run(args, few_shot)


def run(args, few_shot: bool) -> Path:
    """Everything is checked (device, checkpoint, data, splits, output folder) before anything is written."""
    device = pick_device(args.device)
    encoder, pretrain_args = load_encoder(args.checkpoint, device)
    args.dataset = registry.canonical_dataset(args.dataset or pretrain_args.get("dataset", "synthetic"))
    if args.data is None:
        args.data = pretrain_args.get("data")
    kind = registry.dataset(args.dataset).image_kind
    defaults = split_defaults(args.dataset)
    train_name = args.trainSplit or (defaults[2] if few_shot else defaults[0])
    if train_name is None or (args.valSplit or defaults[1]) is None:
        raise ValueError(f"--trainSplit and --valSplit are required for {args.dataset}")
    args.testSplit = args.testSplit or registry.dataset(args.dataset).splits.test
    train_set, val_set, test_set = build_eval_sets(args.dataset, args.data, train_name,
                                                   args.valSplit or defaults[1], args.testSplit)
    for name, dataset in (("--trainSplit", train_set), ("--valSplit", val_set), ("test set", test_set)):
        if len(dataset) == 0:
            raise ValueError(f"the probe's {name} holds no images")
    counts = class_counts_of_pretraining(args, pretrain_args)
    args.trainSplit, args.batch_size = train_name, args.batch_size or (128 if kind == "cifar" else 512)
    args.method = args.method or pretrain_args.get("experiment") or Path(args.checkpoint).parent.name
    args.experiment = args.experiment or f"{args.method}_{args.shot}_shot"
    if args.test_only:
        run_dir = Path(args.save_dir) / check_name(args.experiment, "the probe name")
        return evaluate_saved_probe(run_dir, encoder, test_set, counts, args, device, kind)
    # a probe that never wrote its results is no probe yet
    plan = plan_run_dir(args.save_dir, args.experiment, "probe", overwrite=args.overwrite,
                        finished=lambda d: (d / "results.json").is_file(), name_flag="the probe name",
                        already=f"probe directory {Path(args.save_dir) / args.experiment} already holds "
                                f"results: use --overwrite or another name")
    with RunDirClaim(plan) as claim:
        return train_and_test(args, claim, encoder, pretrain_args, train_set, val_set, test_set, counts, kind,
                              device)


def finite_or_null(value):
    """JSON has no NaN: a metric that is not a number is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_null(v) for v in value]
    return value


def train_and_test(args, claim, encoder, pretrain_args, train_set, val_set, test_set, counts, kind, device):
    """Train the probe, select by validation, test once; writes everything into the claimed folder."""
    run_dir = claim.run_dir
    logger = RunLogger(run_dir)
    try:
        if claim.aside is not None:
            logger.info(f"--overwrite: the previous probe is kept in {claim.aside} until these results are "
                        f"written")
        write_args(args, run_dir / "args.json")
        torch.manual_seed(args.seed)

        test_view = eval_transform(kind)
        train_view = test_view if args.no_aug else probe_augmentation(kind)
        train_set = with_transform(train_set, train_view)
        val_set, test_set = with_transform(val_set, test_view), with_transform(test_set, test_view)
        freeze(encoder, args.fixto)
        num_classes = int(max(train_set.labels.max(), test_set.labels.max()) + 1)
        head = nn.Linear(encoder.feature_dim, num_classes).to(device)
        logger.info(f"{args.shot}-shot probe of {args.checkpoint}: {len(train_set)} train / {len(val_set)} val / "
                    f"{len(test_set)} test images, {num_classes} classes, frozen to {args.fixto}")
        best = train_probe(encoder, head, train_set, val_set, args, device, logger)
        head.load_state_dict(best["head"])
        if best["encoder"] is not None:
            encoder.load_state_dict(best["encoder"])
        pred, labels = predict(encoder, head, test_set, device, args.batch_size, args.num_workers, args.precision)
        results = evaluation_results(labels, pred, counts, registry.dataset(args.dataset).group_rule)
        results.update(method=args.method, shot=args.shot, dataset=args.dataset,
                       split=str(pretrain_args.get("trainSplit")),
                       best_epoch=best["epoch"], val_accuracy=best["val"],
                       selected_by="validation mean per-class top-1", checkpoint=str(args.checkpoint))
        save_checkpoint({"head": head.state_dict(), "encoder": encoder.state_dict(), "epoch": best["epoch"]},
                        run_dir / "probe.pt")
        # results.json last: its presence marks a finished probe
        text = json.dumps(finite_or_null(results), indent=2, allow_nan=False) + "\n"
        atomic_write(run_dir / "results.json", lambda f: f.write(text.encode()))
        logger.info(f"test (epoch {best['epoch']} by validation): {format_summary(results)}; "
                    f"{run_dir / 'results.json'}")
        return run_dir
    finally:
        logger.close()


if __name__ == "__main__":
    main()
