"""The names of runs, inference outputs and MAK splits, and the method labels of the report: one function each,
used by the launchers and by the scripts that write under those names (infer_features.py, sample_mak.py), so
that each step finds what the step before it wrote."""
from __future__ import annotations

SPLIT_SUFFIXES = (".npy", ".txt")


def split_stem(split) -> str:
    """A split's name in other names: its file name without ``.npy`` / ``.txt``."""
    name = str(split).rstrip("/").rsplit("/", 1)[-1]
    for suffix in SPLIT_SUFFIXES:
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def method_label(prune: bool = False, bcl: bool = False, colt: bool = False) -> str:
    """The method's row label in the report (the COLT paper's Table 1): SimCLR, SDCLR (pruned branch),
    BCL-I (BCL on SimCLR), BCL-D (BCL on SDCLR), each with "+COLT" when COLT adds pool images."""
    base = ("BCL-D" if prune else "BCL-I") if bcl else ("SDCLR" if prune else "SimCLR")
    return base + ("+COLT" if colt else "")


def is_pruned_label(label: str) -> bool:
    """Whether a method label of :func:`method_label` names a method with SDCLR's pruned branch."""
    return label.split("+", 1)[0] in ("SDCLR", "BCL-D")


def launcher_run_name(method: str, split) -> str:
    """The per-dataset launchers' run name: ``<method>_<split>`` (``SimCLR_split1_D_i``)."""
    return f"{method}_{split_stem(split)}"


def release_run_name(split, model: str, epochs, batch_size, seed, lr="0.5", temperature="0.2") -> str:
    """The MAK release's pre-training run name."""
    return (f"{split_stem(split)}_{model}_scheduling_sgd_lr{lr}_temp{temperature}_epoch{epochs}_"
            f"batch{batch_size}_s{seed}")


def added_run_name(pretrain_name: str, pool_tag: str, split_name: str) -> str:
    """A re-training run with the pool items MAK chose: ``<pre-training run>_add<pool tag><split name>``."""
    return f"{pretrain_name}_add{pool_tag}{split_name}"


def inference_name(dataset: str, split_name: str, no_aug: bool, pretrain_name: str | None = None) -> str:
    """An inference output: ``Infer_<dataset>_<split name>[_noAug][__<pre-training run>]``."""
    name = f"Infer_{dataset}_{split_name}{'_noAug' if no_aug else ''}"
    return f"{name}__{pretrain_name}" if pretrain_name else name


def mak_split_name(method: str, sampling_num: int, seed: int, loss_weight: float = 0.5, loss_repeat_time: int = 10,
                   K_means_num: int = 10, core_sample_ratio: float = 1.5) -> str:
    """The MAK release's naming of its splits (``optimize_0.5lossR10_nearK10_coreR1.5_num10000_s10``), plus one
    name per ablation without a score (``random_num10000_s10``, ``kcenter_num10000_s10``)."""
    if method in ("random", "kcenter"):
        return f"{method}_num{sampling_num}_s{seed}"
    return (f"optimize_{float(loss_weight)}lossR{loss_repeat_time}_nearK{K_means_num}_"
            f"coreR{float(core_sample_ratio)}_num{sampling_num}_s{seed}")
