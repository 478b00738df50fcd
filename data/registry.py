"""Every fact about a dataset, a pool and an image kind, in one place.

Readers, launchers, probes, metrics and the split maker look facts up here; none of them writes one down
again. A new dataset is one :class:`DatasetEntry` passed to :func:`register_dataset`, a reader (most
often ``data.readers.ArrayReader(load)`` or ``data.readers.IMAGE_LIST``) and a one-line launcher script
(see the README, "Adding a dataset").

This module imports nothing heavy (no numpy, no torch), so the launchers start fast; readers and class
names are named as ``"module:attribute"`` and imported only when a dataset is built.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

REPO_ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------- image kinds
@dataclass(frozen=True)
class AugConfig:
    """The papers' SimCLR view of one image kind: random resized crop (bicubic), flip, colour jitter,
    grayscale and, for ImageNet-size images, Gaussian blur. ``data.views.simclr_augmentation`` (per image)
    and ``data.gpu_aug`` (batched) are both built from it."""
    size: int = 32
    scale: tuple[float, float] = (0.1, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    gray_p: float = 0.2
    blur_p: float = 0.0
    blur_kernel: int = 23
    blur_sigma: tuple[float, float] = (0.1, 2.0)


@dataclass(frozen=True)
class ImageKind:
    """Input resolution class: the augmentation and the evaluation view."""
    name: str
    augmentation: AugConfig
    eval_resize: int | None  # shorter side before the centre crop (bilinear, the releases' Resize); None: as is
    eval_crop: int | None


IMAGE_KINDS = MappingProxyType({
    "cifar": ImageKind("cifar", AugConfig(), eval_resize=None, eval_crop=None),
    "imagenet": ImageKind("imagenet", AugConfig(size=224, scale=(0.08, 1.0), blur_p=0.5), eval_resize=256,
                          eval_crop=224),
})


def image_kind(kind: str) -> ImageKind:
    if kind not in IMAGE_KINDS:
        raise ValueError(f"unknown image kind {kind!r}")
    return IMAGE_KINDS[kind]


def aug_config(kind: str) -> AugConfig:
    """CIFAR / synthetic: 32 px, scale (0.1, 1), no blur; ImageNet-size: 224 px, scale (0.08, 1), blur p 0.5."""
    return image_kind(kind).augmentation


# ------------------------------------------------------------------------------------------------- pools
@dataclass(frozen=True)
class PoolEntry:
    """An unlabeled pool of extra images.

    ``layout`` says what its split is: ``array`` (the .npy file itself), ``folder`` (the folder), ``list``
    (a list of ``relative/path label`` lines, looked up in ``splits/<name>/``) or ``embedded`` (none).
    ``sample_set`` is its ``--sample_set`` spelling for COLT (None: not a COLT pool by that name);
    ``run_tag`` names it in the MAK release's re-training run names (``..._add<run_tag><split>``).
    ``relations``, for a pool that knows how its items relate to the ID classes, reads that metadata
    (``"module:function(data_root, dataset) -> near_class"``: the class each item was drawn near, -1 far);
    reports read it, training never does.
    """
    name: str
    aliases: tuple[str, ...]
    layout: str
    reader: str  # "module:function(path, image_root) -> dataset"
    sample_set: str | None = None
    run_tag: str | None = None
    relations: str | None = None

    def spellings(self) -> set[str]:
        return {self.name.lower(), *(a.lower() for a in self.aliases)}

    def sample_set_spellings(self) -> set[str]:
        if self.sample_set is None:
            return set()
        # a pool whose --sample_set name is its own takes its aliases there too ("synthetic" does not)
        return {self.sample_set.lower()} | (self.spellings() if self.sample_set == self.name else set())


_POOLS: dict[str, PoolEntry] = {}


def register_pool(entry: PoolEntry) -> PoolEntry:
    taken = {s for p in _POOLS.values() if p.name != entry.name for s in p.spellings()}
    if entry.spellings() & taken:
        raise ValueError(f"pool {entry.name!r}: the names {sorted(entry.spellings() & taken)} are taken")
    _POOLS[entry.name] = entry
    return entry


for _pool in (
        PoolEntry("synthetic_pool", ("synthetic-pool",), "embedded", "data.ood:read_embedded_pool",
                  sample_set="synthetic", relations="data.ood:read_embedded_pool_relations"),
        PoolEntry("300K_random_images", ("300k", "ti_300k"), "array", "data.ood:RandomImagesPool",
                  sample_set="300K_random_images"),
        PoolEntry("image_list", ("imagelist",), "list", "data.ood:read_list_pool", sample_set="image_list",
                  run_tag="ImageList"),
        PoolEntry("folder", ("image_folder",), "folder", "data.ood:ImageFolderPool", sample_set="folder"),
        # the MAK release's image-list pools (lists under --data)
        PoolEntry("imagenet900", ("imagenet-900",), "list", "data.ood:read_list_pool", run_tag="Imagenet900"),
        PoolEntry("imagenet_places365_mix", (), "list", "data.ood:read_list_pool", run_tag="ImagenetPlacesMix")):
    register_pool(_pool)


def pools() -> tuple[PoolEntry, ...]:
    return tuple(_POOLS.values())


def find_pool(name: str) -> PoolEntry | None:
    key = name.strip().lower()
    return next((p for p in _POOLS.values() if key in p.spellings()), None)


def pool(name: str) -> PoolEntry:
    entry = find_pool(name)
    if entry is None:
        raise ValueError(f"unknown pool {name!r} ({', '.join(p.name for p in _POOLS.values())})")
    return entry


def sample_sets() -> tuple[str, ...]:
    return tuple(p.sample_set for p in _POOLS.values() if p.sample_set)


def canonical_sample_set(sample_set: str) -> str:
    return sample_set_pool(sample_set).sample_set


def sample_set_pool(sample_set: str) -> PoolEntry:
    """The pool a --sample_set spelling names."""
    key = sample_set.strip().lower()
    for entry in _POOLS.values():
        if key in entry.sample_set_spellings():
            return entry
    aliases = sorted({s for p in _POOLS.values() for s in p.sample_set_spellings()} - set(sample_sets()))
    raise ValueError(f"unknown --sample_set {sample_set!r}; choose one of {', '.join(sample_sets())} "
                     f"(aliases: {', '.join(aliases)})")


# ---------------------------------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class SplitNames:
    """The split names of a dataset's protocol, as the releases spell them (without the file suffix).

    ``few`` is a fixed few-shot list; None derives it from the long-tailed split's name by
    ``few_from`` (``split3_D_i`` -> ``split3_S_b``). ``long_tailed`` / ``balanced`` mark the two kinds of
    pre-training split in a name (the SDCLR release's D_i / D_b, LT / BL).
    """
    train: str | None  # the launchers' default pre-training split (None: the whole training set)
    full: str | None  # the balanced full-shot probe split
    val: str | None
    test: str | None  # None: the dataset's own test set
    few: str | None
    few_from: tuple[tuple[str, str], ...] = ()
    long_tailed: str = "_D_i"
    balanced: str = "_D_b"


@dataclass(frozen=True)
class MakDefaults:
    """The MAK release's settings for a dataset: its spelling in names, pre-training length, the pool and
    its split (None: the dataset's default pool / ``default_pool_file``), inference processes, the
    inference launcher, and whether runs take the release's long names or the COLT launchers'."""
    release_name: str
    epochs: int
    batch_size: int
    inference_script: str
    pool: str | None = None
    pool_split: str | None = None
    inference_gpus: int = 1
    release_run_names: bool = False


@dataclass(frozen=True)
class DatasetEntry:
    """A long-tailed dataset.

    reader: ``"module:attribute"`` of a ``data.readers`` reader (or the reader object itself).
    split_suffix / published_subfolders: split files are ``<name><suffix>``; the published ``split/``
    folder keeps them in these subfolders. default_pool: a pool name; default_pool_file: where the
    launchers look for it, relative to ``--data`` (None: it must be given). defaults: the papers' settings,
    ``"simclr"`` for every method plus per-method changes (see :func:`paper_defaults`). group_rule: how
    utils.metrics forms Many/Medium/Few. class_names: ``"module:attribute"`` of the names by label, or None.
    split_maker: what ``splits/make_splits.py`` writes for it ("protocol": every split of the long-tailed
    protocol; "few_shot_list": the 1% list of a full-shot list; None: nothing). split_hint: what a missing
    split of it is, for splits make_splits.py does not write.
    """
    name: str
    aliases: tuple[str, ...]
    image_kind: str
    reader: Any
    split_suffix: str
    splits: SplitNames
    default_pool: str
    group_rule: str
    defaults: Mapping[str, Mapping[str, Any]]
    published_subfolders: tuple[str, ...] = ()
    default_pool_file: str | None = None
    class_names: str | None = None
    split_maker: str | None = None
    mak: MakDefaults | None = None
    split_hint: str = "see splits/README.md for the split files"

    def spellings(self) -> set[str]:
        return {self.name.lower(), *(a.lower() for a in self.aliases)}


METHODS = ("simclr", "sdclr")  # methods with dataset-specific defaults (BCL adds none)

_DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(entry: DatasetEntry) -> DatasetEntry:
    """Add (or replace) a dataset; its names must not be another dataset's."""
    taken = {s for d in _DATASETS.values() if d.name != entry.name for s in d.spellings()}
    if entry.spellings() & taken:
        raise ValueError(f"dataset {entry.name!r}: the names {sorted(entry.spellings() & taken)} are taken")
    if entry.image_kind not in IMAGE_KINDS:
        raise ValueError(f"dataset {entry.name!r}: unknown image kind {entry.image_kind!r}")
    if "simclr" not in entry.defaults or not set(entry.defaults) <= set(METHODS):
        raise ValueError(f"dataset {entry.name!r}: defaults need 'simclr' and may add {', '.join(METHODS[1:])}")
    pool(entry.default_pool)
    _DATASETS[entry.name] = entry
    return entry


def unregister_dataset(name: str) -> None:
    _DATASETS.pop(name, None)


def datasets() -> tuple[DatasetEntry, ...]:
    return tuple(_DATASETS.values())


def dataset_names() -> tuple[str, ...]:
    return tuple(_DATASETS)


def find_dataset(name: str) -> DatasetEntry | None:
    key = name.strip().lower()
    return next((d for d in _DATASETS.values() if key in d.spellings()), None)


def dataset(name: str) -> DatasetEntry:
    entry = find_dataset(name)
    if entry is None:
        aliases = sorted(a for d in _DATASETS.values() for a in d.aliases)
        raise ValueError(f"unknown dataset {name.lower()!r}; choose one of {', '.join(_DATASETS)} "
                         f"(aliases: {', '.join(aliases)})")
    return entry


def canonical_dataset(name: str) -> str:
    return dataset(name).name


def paper_defaults(name: str, method: str = "simclr") -> dict[str, Any]:
    """The papers' settings of a dataset for ``method`` ("simclr" or "sdclr"): epochs, batch_size, lr,
    model, budget, sup_weight, temperature (and prune_percent for sdclr)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: one of {', '.join(METHODS)}")
    entry = dataset(name)
    return {**entry.defaults["simclr"], **entry.defaults.get(method, {})}


def default_sample_set(name: str) -> str:
    """The pool a dataset's papers' runs use, in its --sample_set spelling."""
    return pool(dataset(name).default_pool).sample_set


def class_names(name: str) -> tuple[str, ...] | None:
    """Class names by label where the project knows them without reading data."""
    ref = dataset(name).class_names
    return None if ref is None else tuple(resolve(ref))


def reader(name: str):
    return resolve(dataset(name).reader)


def resolve(ref):
    """``"module:attribute"`` -> the attribute (imported now); anything else as it is."""
    if not isinstance(ref, str):
        return ref
    module, _, attribute = ref.partition(":")
    return getattr(importlib.import_module(module), attribute)


# ------------------------------------------------------------------------------------------------ splits
def split_candidates(folder: Path, name: str, name_of_dataset: str) -> list[Path]:
    """Where a split ``name`` may lie under ``folder``: directly, or in one of the published ``split/``
    folder's subfolders for the dataset; each with and without the dataset's file suffix."""
    entry = dataset(name_of_dataset)
    folders = [folder] + [folder / sub for sub in entry.published_subfolders]
    return [f / n for f in folders for n in (name, name + entry.split_suffix)]


def find_split(folder: Path, name: str, name_of_dataset: str) -> Path | None:
    return next((c for c in split_candidates(folder, name, name_of_dataset) if c.is_file()), None)


def split_file_name(name: str, name_of_dataset: str) -> str:
    """``name`` with the dataset's suffix (unless it has it)."""
    suffix = dataset(name_of_dataset).split_suffix
    return name if name.endswith(suffix) else name + suffix


def few_shot_split(name_of_dataset: str, train_split: str) -> str | None:
    """The few-shot list that goes with a pre-training split: the dataset's fixed list, or the name derived
    from the split's (``split2_D_b`` -> ``split2_S_b``); None when it cannot be derived."""
    splits = dataset(name_of_dataset).splits
    if splits.few:
        return splits.few
    for marker, replacement in splits.few_from:
        if marker in train_split:
            return train_split.replace(marker, replacement)
    return None


def split_balance(name_of_dataset: str, split: str) -> str | None:
    """"long-tailed", "balanced" or None (neither marker in the split's name)."""
    splits = dataset(name_of_dataset).splits
    if splits.long_tailed in split:
        return "long-tailed"
    if splits.balanced in split:
        return "balanced"
    return None


def make_splits_hint(name_of_dataset: str, split: str, data: str, split_dir: str) -> str:
    """How a missing split file of the dataset is made, as a clause for an error line."""
    entry = dataset(name_of_dataset)
    if entry.split_maker == "protocol":
        return (f"make the splits with: python splits/make_splits.py --dataset {entry.name} --data {data} "
                f"--out {split_dir}")
    if entry.split_maker == "few_shot_list" and split == entry.splits.few:
        full = Path(split_dir) / split_file_name(entry.splits.full, entry.name)
        return (f"make it with: python splits/make_splits.py --dataset {entry.name} --train_list {full} "
                f"--out {split_dir}")
    return entry.split_hint


# ------------------------------------------------------------------------------- the datasets themselves
_CIFAR_SPLITS = dict(few=None, few_from=(("_D_i", "_S_b"), ("_D_b", "_S_b")), test=None)
_CIFAR_DEFAULTS = {"simclr": dict(epochs=2000, batch_size=512, lr=0.5, model="res18", budget=10000, sup_weight=0.2,
                                  temperature=0.2),
                   "sdclr": dict(prune_percent=0.9)}
# ImageNet-100: the COLT release's settings; SDCLR's ResNet-50 release prunes 30% at temperature 0.3. Places
# has no published SDCLR setting: it takes the ImageNet-100 ResNet-50 one.
_IMAGENET_DEFAULTS = {"simclr": dict(epochs=500, batch_size=256, lr=0.5, model="res50", budget=10000, sup_weight=0.01,
                                     temperature=0.2),
                      "sdclr": dict(prune_percent=0.3, temperature=0.3)}

for _entry in (
        DatasetEntry("synthetic", (), "cifar", "data.readers:SYNTHETIC", ".npy",
                     SplitNames(train=None, full="full", val="val", test=None, few="few"),
                     default_pool="synthetic_pool", group_rule="thirds",
                     defaults={"simclr": dict(epochs=100, batch_size=256, lr=0.5, model="res18", budget=1000,
                                              sup_weight=0.2, temperature=0.2),
                               "sdclr": dict(prune_percent=0.9)},
                     class_names="data.synthetic:CLASS_NAMES",
                     split_hint="a synthetic split is an index .npy file into its training set; leave --trainSplit "
                                "out to use the whole long-tailed set; the probes' splits are named full, few and "
                                "val"),
        DatasetEntry("cifar10", ("cifar", "cifar-10"), "cifar", "data.readers:CIFAR10", ".npy",
                     SplitNames(train="split1_D_i", full="trainIdxList", val="valIdxList", **_CIFAR_SPLITS),
                     default_pool="300K_random_images", default_pool_file="300K_random_images.npy",
                     group_rule="thirds", defaults=_CIFAR_DEFAULTS,
                     published_subfolders=("cifar10", "cifar10_imbSub_with_subsets"),
                     class_names="data.cifar:CIFAR10_CLASSES", split_maker="protocol",
                     mak=MakDefaults("cifar10", epochs=2000, batch_size=512,
                                     inference_script="cifar-10-LT-inference.sh")),
        DatasetEntry("cifar100", ("cifar-100",), "cifar", "data.readers:CIFAR100", ".npy",
                     SplitNames(train="cifar100_split1_D_i", full="cifar100_trainIdxList", val="cifar100_valIdxList",
                                **_CIFAR_SPLITS),
                     default_pool="300K_random_images", default_pool_file="300K_random_images.npy",
                     group_rule="thirds", defaults=_CIFAR_DEFAULTS,
                     published_subfolders=("cifar100", "cifar100_imbSub_with_subsets"), split_maker="protocol",
                     mak=MakDefaults("cifar100", epochs=2000, batch_size=512,
                                     inference_script="cifar-100-LT-inference.sh")),
        DatasetEntry("imagenet100", ("imagenet", "imagenet-100"), "imagenet", "data.readers:IMAGE_LIST", ".txt",
                     SplitNames(train="imageNet_100_LT_train", full="imageNet_100_train", val="imageNet_100_val",
                                test="imageNet_100_test", few="imageNet_100_train_1pct", long_tailed="_LT_",
                                balanced="_BL_"),
                     default_pool="image_list", group_rule="thresholds", defaults=_IMAGENET_DEFAULTS,
                     split_maker="few_shot_list",
                     split_hint="ImageNet-100 splits are the released image lists ('relative/path label' lines): "
                                "give the list's path",
                     mak=MakDefaults("imagenet-100", epochs=1000, batch_size=256,
                                     inference_script="imagenet-100-inference.sh", pool="imagenet-900",
                                     pool_split="ImageNet_900_train", inference_gpus=2, release_run_names=True)),
        DatasetEntry("places", ("places365", "places-lt"), "imagenet", "data.readers:IMAGE_LIST", ".txt",
                     SplitNames(train="Places_LT_train", full="Places_train", val="Places_LT_val",
                                test="Places_LT_test", few="Places_train_1pct", long_tailed="_LT_", balanced="_BL_"),
                     default_pool="image_list", group_rule="thresholds", defaults=_IMAGENET_DEFAULTS,
                     split_maker="few_shot_list",
                     split_hint="Places splits are the released image lists ('relative/path label' lines): give "
                                "the list's path")):
    register_dataset(_entry)
