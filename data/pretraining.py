"""The data side of pre-training: the checked inputs (ID set, OOD pool, extra images) and each epoch's batches.

Everything here is built before the run directory is touched, so that bad input is one error line and
nothing is written. The training set is the ID set followed by the chosen pool images (COLT's current
selection, or MAK's fixed extra images).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from data.build import build_test_set, build_train_set
from data.datasets import image_size
from data.device_loader import CroppedViewBatches, DeviceBatches, array_images, is_array_dataset
from data.gpu_aug import aug_config
from data.ood import IdOodDataset, build_additional_set, build_ood_pool
from data.sampler import EpochSampler, SeededViews
from data.views import IMAGE_KIND, TwoViews, eval_transform, simclr_augmentation, simclr_crop


def add_arguments(parser) -> None:
    """The data a pre-training run reads: the ID set, how its views are made, and MAK's extra images."""
    from data import registry
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default="synthetic",
                   help=f"one of {', '.join(registry.dataset_names())} (aliases such as 'cifar' work); default: "
                        "synthetic, the embedded data the project generates itself")
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
    g = parser.add_argument_group("extra images chosen offline (MAK: sample_mak.py writes the split)")
    g.add_argument("--additional_dataset", default=None,
                   help="pool the extra images come from: 300K_random_images, image_list, imagenet-900, "
                        "imagenet_places365_mix, folder or synthetic_pool (None = no extra images)")
    g.add_argument("--additional_split", "--additional_dataset_split", dest="additional_split", default=None,
                   help="the chosen items: an image list (image-list pools) or an index .npy into the pool; a "
                        "path, or a name in splits/<pool>/ such as "
                        "MAK/optimize_0.5lossR10_nearK10_coreR1.5_num10000_s10")
    g.add_argument("--additional_data", default=None,
                   help="the pool file of 300K_random_images (.npy) or the folder of a folder pool")
    g.add_argument("--additional_dataset_root", default=None,
                   help="image root of an image-list pool (default --data)")
    g.add_argument("--additional_sup_weight", type=float, default=0.0,
                   help="weight of the distribution-level loss between ID and extra images (default 0: the "
                        "extra images are plain unlabeled images, as in MAK)")


def check_args(args) -> list[str]:
    """What is wrong with the data flags (empty if nothing)."""
    if args.additional_dataset is not None and args.additional_dataset.lower() == "none":
        args.additional_dataset = None  # the MAK launchers' spelling of "no extra images"
    errors = []
    if args.additional_dataset and args.COLT:
        errors.append("--additional_dataset (images chosen offline) and --COLT (chosen online) exclude each other")
    if args.additional_dataset and not args.additional_split:
        errors.append("--additional_dataset needs --additional_split: the chosen items")
    if args.additional_sup_weight < 0:
        errors.append(f"--additional_sup_weight must be >= 0, got {args.additional_sup_weight}")
    if args.num_workers < 0:
        errors.append(f"--num_workers must be >= 0, got {args.num_workers}")
    return errors


def batched_views(args, device: torch.device) -> bool:
    """Whether views are made by the batched augmentation (--aug_device gpu, or auto on CUDA)."""
    return args.aug_device == "gpu" or (args.aug_device == "auto" and device.type == "cuda")


def randaug_config(args):
    """BCL's RandAugment settings (--rand_k, --rand_strength), or None without --bcl."""
    if not args.bcl:
        return None
    from data.randaug import RandAugConfig
    return RandAugConfig(k=args.rand_k, max_strength=args.rand_strength)


@dataclass
class PretrainingData:
    kind: str                   # the image kind ("cifar": 32 px, "imagenet": 224 px views)
    id_set: Dataset             # the long-tailed split
    ood_pool: Dataset | None    # COLT's pool, or the pool MAK's extra images come from
    train: IdOodDataset         # the ID set followed by the chosen pool images
    test_set: Dataset | None    # the k-NN monitor's test set

    def eval_view(self):
        """The deterministic view of embedding passes (None at 32 px: the image itself)."""
        return eval_transform(self.kind)


def build_pretraining_data(args, world_size: int) -> PretrainingData:
    """The inputs of a pre-training run, all checked: raises FileNotFoundError or ValueError."""
    id_set = build_train_set(args.dataset, args.data, args.trainSplit)
    kind = IMAGE_KIND[args.dataset]
    pool = None
    if args.COLT:
        pool = build_ood_pool(args.sample_set, args.ood_data, args.dataset, args.data, args.ood_root)
        if args.budget > len(pool):
            raise ValueError(f"--budget {args.budget} exceeds the OOD pool of {len(pool)} images")
        if args.ood_scorer == "clusters" and args.k_means_clusters > len(id_set):
            raise ValueError(f"--k_means_clusters {args.k_means_clusters} exceeds the {len(id_set)} ID images")
        if kind == "cifar":  # 32x32 data is embedded unresized: pool and ID must agree
            id_size, pool_size = image_size(id_set), image_size(pool)
            if id_size != pool_size:
                raise ValueError(f"the OOD pool's images are {pool_size[0]}x{pool_size[1]}, the ID images "
                                 f"{id_size[0]}x{id_size[1]}: resize the pool to the ID images' size")
    train = IdOodDataset(id_set, pool)
    if args.additional_dataset:  # extra images chosen offline (MAK): fixed for the whole run
        pool, chosen = build_additional_set(args.additional_dataset, args.additional_split, args.additional_data,
                                            args.data, args.additional_dataset_root)
        if kind == "cifar" and image_size(pool) != image_size(id_set):
            raise ValueError(f"the extra images are {image_size(pool)}, the training images "
                             f"{image_size(id_set)} (H, W): resize the pool to the training images' size")
        train = IdOodDataset(id_set, pool)
        train.set_ood_indices(chosen)
        args.additional_items = len(chosen)
    test_set = build_test_set(args.dataset, args.data, args.testSplit) if args.knn_every else None
    EpochSampler(len(id_set), args.batch_size, world_size)  # checks the batch fits and divides
    return PretrainingData(kind, id_set, pool, train, test_set)


class TrainingBatches:
    """Each epoch's batches of ``data.train``, one process's share: ``(views, labels, index, is_ood[,
    strength])`` tuples (labels None on the batched path).

    ``batched`` False: torchvision per image in DataLoader workers. True: the batched augmentation with
    per-image parameters; array data (synthetic, CIFAR, array pools) held on ``device`` as uint8 and gathered
    per batch, file lists decoded and cropped in workers. ``reset()`` after the training set changed (a COLT
    round). ``randaug`` (BCL) turns on RandAugment at the per-item strengths given to ``epoch``.
    """

    def __init__(self, data: PretrainingData, batch_size: int, rank: int, world_size: int, device: torch.device,
                 seed: int, num_workers: int, batched: bool, randaug=None):
        self.data, self.batch_size, self.rank, self.world_size = data, batch_size, rank, world_size
        self.device, self.seed, self.num_workers, self.batched = device, seed, num_workers, batched
        self.randaug = randaug
        self.config = aug_config(data.kind)
        arrays = is_array_dataset(data.id_set) and (data.train.ood_pool is None
                                                    or is_array_dataset(data.train.ood_pool))
        # the ID set stays on the device across rounds; chosen pool items are added per reset
        self.id_on_device = array_images(data.id_set).to(device) if batched and arrays else None
        self.reset()

    def reset(self) -> None:
        self.sampler = EpochSampler(len(self.data.train), self.batch_size, self.world_size, self.rank, seed=self.seed)
        if self.id_on_device is not None:
            self.loader = DeviceBatches(self.data.train, self.id_on_device, self.sampler, self.config, self.seed,
                                        self.device, self.num_workers, randaug=self.randaug)
        elif self.batched:
            self.loader = CroppedViewBatches(self.data.train, TwoViews(simclr_crop(self.data.kind)), self.sampler,
                                             self.config, self.seed, self.device, self.num_workers,
                                             randaug=self.randaug)
        else:
            views = TwoViews(simclr_augmentation(self.data.kind), self.randaug)
            self.loader = DataLoader(SeededViews(self.data.train, views), batch_size=self.sampler.local_batch_size,
                                     sampler=self.sampler, num_workers=self.num_workers,
                                     pin_memory=self.device.type == "cuda", drop_last=True,
                                     persistent_workers=self.num_workers > 0)

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.batches_per_epoch

    def epoch(self, epoch: int, strengths: torch.Tensor | None = None):
        """The batches of ``epoch``; ``strengths`` (one per training item in ``data.train``'s order, BCL) ride
        with the batch keys, so persistent workers always see the current epoch's."""
        self.sampler.set_epoch(epoch)
        if self.randaug is not None:
            self.sampler.set_strengths(strengths)
        return self.loader
