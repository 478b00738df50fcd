"""The launchers' plans: the commands a launcher runs, as pure functions of its flags and the environment.

Four launchers: ``per_dataset`` (cifar-10-LT_extra.sh and the others: pre-training, then full-shot and
few-shot probing, for SimCLR, SDCLR and BCL, each with or without COLT, and re-training with MAK's items),
and the MAK release's ``add_data``, ``inference`` and ``sampling``. Every fact about a dataset comes from
``data.registry``; every name from ``utils.names``. A plan is a list of steps; each step lists the paths it
reads, so a dry run can warn about missing ones and a real run can refuse before anything is written.
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from data import registry
from launcher.options import Flag, UsageError, with_defaults
from utils import names

SCRIPTS = "cmds/shell_scrips"


class LaunchError(RuntimeError):
    """Bad state rather than a bad flag (a missing input): one ``error:`` line, exit code 1, no usage."""


@dataclass(frozen=True)
class Env:
    """What a plan may read besides the flags: the folder the script was started in, the environment
    variables, and the first host of the SLURM job (``scontrol``'s answer, found by the caller)."""
    cwd: str
    environ: Mapping[str, str]
    first_host: str | None = None

    @property
    def python(self) -> str:
        return self.environ.get("PYTHON") or "python"

    @property
    def home(self) -> str:
        return self.environ.get("HOME") or str(Path.home())

    def path(self, path: str) -> str:
        """Absolute, relative to where the script was started, symbolic links resolved (``realpath -m``)."""
        if path == "~" or path.startswith("~/"):
            path = self.home + path[1:]
        return os.path.realpath(os.path.join(self.cwd, path))

    def is_file(self, path: str) -> bool:
        return os.path.isfile(os.path.join(self.cwd, path))


@dataclass(frozen=True)
class Context:
    """What flag defaults depend on: the dataset, the environment and the method of its paper defaults."""
    entry: registry.DatasetEntry
    env: Env
    method: str = "simclr"

    @property
    def defaults(self) -> dict[str, Any]:
        return registry.paper_defaults(self.entry.name, self.method)

    @property
    def mak(self) -> registry.MakDefaults:
        return self.entry.mak


@dataclass(frozen=True)
class Need:
    """A path a step reads. ``kind``: product (another launcher step makes it: a real run refuses to start
    without it, with ``missing`` as the error), split (a split file: refused too, with how to make it) or
    input (the step itself reports it; a dry run warns)."""
    path: str
    what: str
    kind: str = "input"
    missing: str | None = None


@dataclass
class Step:
    argv: list[str]
    needs: list[Need] = field(default_factory=list)
    makes: list[str] = field(default_factory=list)


@dataclass
class Plan:
    steps: list[Step]
    run_dir: str  # where bash_log.txt records every command run

    def commands(self) -> list[list[str]]:
        return [step.argv for step in self.steps]


# -------------------------------------------------------------------------------------------- flag groups
def data_default(c: Context) -> str:
    return c.env.environ.get("DATA") or os.path.join(c.env.home, "data")


def launch_flags(workers: int, gpus) -> list[Flag]:
    """Flags of every step that may run on several processes."""
    return [
        Flag(("-g", "--GPU_NUM"), "gpus", "processes (GPUs) per node; 1 on one node runs plain python, more torchrun",
             "count", gpus, "N", invalid="-g takes a positive number of processes, got '{value}'"),
        Flag(("-p", "--port"), "port", "master port", "int", 4833, "N"),
        Flag(("-w", "--workers"), "workers", "data-loading workers per process", "int", workers, "N"),
        Flag(("--nnodes",), "nnodes", "nodes; run the launcher on each with its --node_rank", "count",
             lambda c: c.env.environ.get("SLURM_NNODES") or 1, "N", default_text="$SLURM_NNODES, else 1",
             invalid="--nnodes takes a positive number, got '{value}'"),
        Flag(("--node_rank",), "node_rank", "this node's rank", "int", lambda c: c.env.environ.get("SLURM_NODEID") or 0,
             "R", default_text="$SLURM_NODEID, else 0"),
        Flag(("--master_addr",), "master_addr", "the first node's address", "str",
             lambda c: c.env.first_host or "127.0.0.1", "HOST",
             default_text="the first host of $SLURM_JOB_NODELIST, else 127.0.0.1"),
    ]


DATA_FLAG = Flag(("--data", "--data_root"), "data", "dataset root", "str", data_default, "DIR",
                 default_text="$DATA, else ~/data; never the checkout's data/ package")
SPLIT_DIR_FLAG = Flag(("--split_dir",), "split_dir", "folder of the split files, or the published split/ folder as "
                      "it is (its subfolders are searched)", metavar="DIR",
                      default_text=lambda c: f"splits/{c.entry.name} of the checkout")
RUNS_FLAG = Flag(("--runs_dir",), "runs_dir", "where runs, inference outputs and probes go", metavar="DIR",
                 default_text=lambda c: f"checkpoints/{c.entry.name} of the checkout")
POOL_SPLIT_DIR_FLAG = Flag(("--pool_split_dir",), "pool_split_dir", "folder of the pool's lists and of MAK/, the "
                           "chosen items", metavar="DIR", default_text="splits/<pool>, e.g. splits/imagenet900")


def stage_flags() -> list[Flag]:
    """Which steps run, and the probes' settings."""
    return [
        bool_flag("resume", "continue the pre-training run"),
        bool_flag("only_finetuning", "skip pre-training: only the probes"),
        bool_flag("few_shot_only", "only the few-shot probe"),
        bool_flag("test_only", "the probes only evaluate their saved heads"),
        Flag(("--width",), "width", "channels of the first ResNet stage (smaller for quick runs)", "count", 64, "N"),
        bool_flag("cached_features", "probes train on features extracted once"),
        Flag(("--probe_epochs",), "probe_epochs", "full-shot probe epochs", "count", 30, "N"),
        Flag(("--fewshot_epochs", "--few_shot_epochs"), "fewshot_epochs", "few-shot probe epochs", "count", 100, "N"),
    ]


def bool_flag(name: str, help: str, dest: str | None = None) -> Flag:
    return Flag((f"--{name}",), dest or name, help, "bool", False, "True|False")


# ------------------------------------------------------------------------------------------------ helpers
def launch_prefix(o: dict, env: Env) -> list[str]:
    """One process: plain python (its failures end in the project's one-line error); several: torchrun."""
    if int(o["gpus"]) == 1 and int(o["nnodes"]) == 1:
        return [env.python]
    return [env.python, "-m", "torch.distributed.run", f"--nproc_per_node={o['gpus']}", f"--nnodes={o['nnodes']}",
            f"--node_rank={o['node_rank']}", f"--master_addr={o['master_addr']}", f"--master_port={o['port']}"]


def split_path(split: str, split_dir: str, dataset: str, env: Env) -> str:
    """A split file as given (relative to where the script was started), else where the registry's lookup finds
    it under ``split_dir`` (directly or in a published subfolder), else ``split_dir/<name><suffix>``."""
    if env.is_file(split):
        return env.path(split)
    found = registry.find_split(Path(split_dir), split, dataset)
    return str(found) if found else os.path.join(split_dir, registry.split_file_name(split, dataset))


@dataclass(frozen=True)
class Where:
    """A launcher's folders, absolute: the data, the split files and the runs (defaults: splits/<dataset> and
    checkpoints/<dataset> of the checkout)."""
    entry: registry.DatasetEntry
    env: Env
    data: str
    split_dir: str
    runs: str

    @classmethod
    def of(cls, entry: registry.DatasetEntry, o: dict, env: Env) -> "Where":
        return cls(entry, env, env.path(o["data"]),
                   env.path(o["split_dir"] or str(registry.REPO_ROOT / "splits" / entry.name)),
                   env.path(o["runs_dir"] or str(registry.REPO_ROOT / "checkpoints" / entry.name)))

    def split(self, flag: str, split: str) -> tuple[list[str], list[Need]]:
        """``[flag, path]`` of a split of the dataset, and the need of its file (with how to make it)."""
        path = split_path(split, self.split_dir, self.entry.name, self.env)
        hint = registry.make_splits_hint(self.entry.name, split, self.data, self.split_dir)
        return [flag, path], [Need(path, flag, "split", f"split file {path} not found ({hint})")]


def runs_pretraining(o: dict) -> bool:
    return not (o["only_finetuning"] or o["few_shot_only"] or o["test_only"])


def probe_steps(where: Where, o: dict, name: str, label: str, few: str, few_lr: str | None = None) -> list[Step]:
    """The full-shot and few-shot probes of run ``name``, labelled ``label`` in the report (plain python: a probe
    is one process)."""
    env, splits = where.env, where.entry.splits
    checkpoint = f"{where.runs}/{name}/model.pt"
    val, val_needs = where.split("--valSplit", splits.val)
    probe = ["--checkpoint", checkpoint, "--dataset", where.entry.name, "--data", where.data, *val, "--save-dir",
             f"{where.runs}/probes", "--method", label, "--num_workers", o["workers"]]
    needs = [Need(checkpoint, "--checkpoint"), Need(where.data, "--data"), *val_needs]
    if splits.test:
        test, test_needs = where.split("--testSplit", splits.test)
        probe += test
        needs += test_needs
    if o["cached_features"]:
        probe.append("--cached_features")
    if o["test_only"]:
        probe.append("--test_only")
    steps = []
    if not o["few_shot_only"]:
        full, full_needs = where.split("--trainSplit", splits.full)
        steps.append(Step([env.python, "train_linear.py", f"{name}_full", *probe, *full, "--epochs",
                           o["probe_epochs"]], needs + full_needs))
    few_split, few_needs = where.split("--trainSplit", few)
    steps.append(Step([env.python, "train_fewshot.py", f"{name}_few", *probe, *few_split, "--epochs",
                       o["fewshot_epochs"], *(["--lr", few_lr] if few_lr else [])], needs + few_needs))
    return steps


def as_str(values: dict) -> dict:
    return {k: v if isinstance(v, bool) or v is None else str(v) for k, v in values.items()}


# ------------------------------------------------------------------------------------- per-dataset launcher
METHOD_LABELS = ", ".join(names.method_label(p, b, c) for b in (False, True) for p in (False, True) for c in (False, True))


def per_dataset_flags() -> list[Flag]:
    return [
        Flag(("-e", "--epochs"), "epochs", "pre-training epochs", "count", lambda c: c.defaults["epochs"], "N"),
        Flag(("-s", "--split"), "split", "long-tailed split, a name in --split_dir or a file", "str",
             lambda c: c.entry.splits.train, "NAME"),
        *launch_flags(workers=10, gpus=1),
        Flag(("--lr",), "lr", "pre-training learning rate", "number", lambda c: c.defaults["lr"], "X"),
        Flag(("--batch_size", "--pretrain_batch_size"), "batch_size", "global batch size", "count",
             lambda c: c.defaults["batch_size"], "N"),
        Flag(("--temp",), "temp", "temperature (SDCLR: the paper's for the dataset)", "number",
             lambda c: c.defaults["temperature"], "X"),
        Flag(("--save_dir",), "save_dir", "method label: runs go to <runs_dir>/<NAME>_<split>, probes are labelled "
             "NAME", metavar="NAME", default_text=f"the method's: {METHOD_LABELS}"),
        bool_flag("COLT", "add OOD images sampled online by tailness (COLT)", "colt"),
        Flag(("--budget",), "budget", "COLT: pool images per sampling round", "int", lambda c: c.defaults["budget"], "N"),
        Flag(("--sample_interval",), "sample_interval", "COLT: epochs between rounds", "int", 25, "N"),
        Flag(("--warmup",), "warmup", "COLT: epochs before the first round", "int", 100, "N"),
        Flag(("--k_largest_logits",), "k_largest_logits", "COLT: negatives summed into tailness", "int", 10, "N"),
        Flag(("--k_means_clusters",), "k_means_clusters", "COLT: k-means clusters of the ID embeddings", "int", 10, "N"),
        Flag(("--sup_weight",), "sup_weight", "COLT: weight of the distribution-level loss", "number",
             lambda c: c.defaults["sup_weight"], "X"),
        Flag(("--cluster_temperature",), "cluster_temperature", "COLT: softmax temperature of the cluster budgets",
             "number", "1.0", "X"),
        Flag(("--sample_set",), "sample_set", "COLT: the OOD pool", "str",
             lambda c: registry.default_sample_set(c.entry.name), "NAME"),
        Flag(("--ood_scorer",), "ood_scorer", "COLT: clusters, neighbours or random", metavar="NAME",
             default_text="train_simclr.py's"),
        bool_flag("prune", "SDCLR: contrast with a pruned copy of the encoder"),
        Flag(("--prune_percent",), "prune_percent", "SDCLR: fraction of weights the pruned branch drops (with --prune "
             "True)", "number", lambda c: registry.paper_defaults(c.entry.name, "sdclr")["prune_percent"], "X"),
        bool_flag("prune_dual_bn", "SDCLR: own BatchNorm for the pruned branch (with --prune True)"),
        bool_flag("bcl", "BCL: per-image augmentation strength from its momentum loss"),
        Flag(("--rand_k",), "rand_k", "BCL: RandAugment operations per view", "int", metavar="N",
             default_text="train_simclr.py's"),
        Flag(("--rand_strength",), "rand_strength", "BCL: RandAugment strength", "int", metavar="N",
             default_text="train_simclr.py's"),
        Flag(("--momentum_loss_beta",), "momentum_loss_beta", "BCL: EMA factor of the per-image loss", "number",
             metavar="X", default_text="train_simclr.py's"),
        Flag(("--additional_dataset",), "additional_dataset", "pool of extra images chosen offline (MAK; "
             "sampling.sh writes the split; not with --COLT)", metavar="NAME"),
        Flag(("--additional_split",), "additional_split", "the chosen items: a file, or MAK/<split>/<name> in "
             "splits/<pool>/", metavar="FILE"),
        Flag(("--additional_data",), "additional_data", "the pool's .npy file or folder", metavar="PATH",
             default_text="--ood_data's pool"),
        Flag(("--additional_dataset_root",), "additional_dataset_root", "image root of an image-list pool",
             metavar="DIR"),
        DATA_FLAG,
        Flag(("--ood_data",), "ood_data", "the OOD pool", metavar="PATH",
             default_text=lambda c: "$OOD_DATA" + (f", else <data>/{c.entry.default_pool_file}"
                                                   if c.entry.default_pool_file else "")),
        SPLIT_DIR_FLAG,
        RUNS_FLAG,
        *stage_flags(),
        Flag(("--few_shot_lr",), "few_shot_lr", "few-shot probe learning rate", "number", metavar="X",
             default_text="train_fewshot.py's, 30"),
        Flag(("--few_shot_split",), "few_shot_split", "few-shot probe split", metavar="NAME",
             default_text=lambda c: c.entry.splits.few or "the split's name with " + " or ".join(
                 f"{a} -> {b}" for a, b in c.entry.splits.few_from)),
    ]


PER_DATASET_DESCRIPTION = """\
Pre-training ({dataset}: SimCLR; --prune True: SDCLR; --bcl True: BCL; each with --COLT True: + COLT; with
--additional_dataset: + MAK's offline items), then full-shot and few-shot linear probing. The same steps as
python train_simclr.py, train_linear.py and train_fewshot.py; bash_log.txt in the run folder lists them."""


def per_dataset_plan(entry: registry.DatasetEntry, given: dict, env: Env) -> Plan:
    o = as_str(with_defaults(per_dataset_flags(), given, Context(entry, env, "sdclr" if given.get("prune") else
                                                                 "simclr")))
    if not o["prune"]:
        for dest in ("prune_percent", "prune_dual_bn"):
            if given.get(dest):
                raise UsageError(f"--{dest} sets SDCLR's pruned branch: add --prune True")
    if not o["bcl"]:
        for dest in ("rand_k", "rand_strength", "momentum_loss_beta"):
            if dest in given:
                raise UsageError(f"--{dest} is a BCL setting: add --bcl True")
    dataset = entry.name
    label = o["save_dir"] or names.method_label(o["prune"], o["bcl"], o["colt"])
    where = Where.of(entry, o, env)
    data, runs = where.data, where.runs
    ood = o["ood_data"] or env.environ.get("OOD_DATA") or ""
    if not ood and entry.default_pool_file:
        ood = os.path.join(o["data"], entry.default_pool_file)
    ood = env.path(ood) if ood else ""
    split = o["split"]
    few = o["few_shot_split"] or registry.few_shot_split(dataset, names.split_stem(split))
    if few is None:
        markers = " or ".join(a for a, _ in entry.splits.few_from)
        raise UsageError(f"--split {split}: its few-shot split cannot be derived (its name has no {markers}); "
                         f"name it with --few_shot_split")
    name = names.launcher_run_name(label, split)
    train_split, train_needs = where.split("--trainSplit", split)
    train = ["train_simclr.py", name, "--dataset", dataset, "--data", data, *train_split, "--save-dir", runs,
             "--model", str(registry.paper_defaults(dataset)["model"]), "--width", o["width"], "--epochs", o["epochs"],
             "--batch_size", o["batch_size"], "--lr", o["lr"], "--temperature", o["temp"], "--num_workers", o["workers"]]
    needs = [Need(data, "--data"), *train_needs]
    if o["colt"]:
        train += ["--COLT", "--budget", o["budget"], "--sample_interval", o["sample_interval"], "--warmup", o["warmup"],
                  "--k_largest_logits", o["k_largest_logits"], "--k_means_clusters", o["k_means_clusters"],
                  "--sup_weight", o["sup_weight"], "--cluster_temperature", o["cluster_temperature"],
                  "--sample_set", o["sample_set"]]
        if ood:
            train += ["--ood_data", ood]
            needs.append(Need(ood, "--ood_data"))
        if o["ood_scorer"]:
            train += ["--ood_scorer", o["ood_scorer"]]
    if o["prune"]:
        train += ["--prune", "--prune_percent", o["prune_percent"]] + (["--prune_dual_bn"] if o["prune_dual_bn"] else [])
    if o["bcl"]:
        train.append("--bcl")
        for dest in ("rand_k", "rand_strength", "momentum_loss_beta"):
            if o[dest] is not None:
                train += [f"--{dest}", o[dest]]
    if o["additional_dataset"]:  # MAK: the extra items sampled offline, the same for the whole run
        train += ["--additional_dataset", o["additional_dataset"]]
        extra = o["additional_split"]
        if extra:
            # a file as given; a bare name (MAK/<split>/<name>) is looked up by train_simclr.py in splits/<pool>/
            if os.path.exists(os.path.join(env.cwd, extra)):
                extra = env.path(extra)
                needs.append(Need(extra, "--additional_split"))
            train += ["--additional_split", extra]
        pool_data = o["additional_data"]
        if not pool_data and o["additional_dataset"].lower() != "none" and entry.default_pool_file:
            pool_data = ood  # the same pool as COLT's
        if pool_data:
            train += ["--additional_data", env.path(pool_data)]
            needs.append(Need(env.path(pool_data), "--additional_data"))
        if o["additional_dataset_root"]:
            train += ["--additional_dataset_root", env.path(o["additional_dataset_root"])]
    if o["resume"]:
        train.append("--resume")

    steps = []
    if runs_pretraining(o):
        prefix = launch_prefix(o, env)
        if len(prefix) > 1:  # check every input in one plain process first: bad input is not buried under
            steps.append(Step([env.python, *train, "--check_only"], needs))  # torchrun's ChildFailedError report
        steps.append(Step([*prefix, *train], needs, makes=[f"{runs}/{name}/model.pt"]))
    steps += probe_steps(where, o, name, label, few, o["few_shot_lr"])
    return Plan(steps, f"{runs}/{name}")


# ------------------------------------------------------------------------------------------ MAK launchers
def mak_dataset(name: str) -> registry.DatasetEntry:
    """A dataset the MAK launchers know (it has the release's settings), by any of its names."""
    entry = registry.find_dataset(name)
    if entry is None or entry.mak is None:
        known = ", ".join(d.mak.release_name for d in registry.datasets() if d.mak)
        raise UsageError(f"unknown --pretrain_dataset '{name}' ({known})")
    return entry


def pretrain_run_name(entry: registry.DatasetEntry, o: dict) -> str:
    """The pre-training run the MAK steps read: the release's name (ImageNet-100), or the per-dataset
    launcher's SimCLR run (CIFAR)."""
    if entry.mak.release_run_names:
        return names.release_run_name(o["split"], o["model"], o["epochs"], o["batch_size"], o["seed"])
    return names.launcher_run_name(names.method_label(), o["split"])


def run_name_flags(seed_flag: str, seed_default, seed_help: str) -> list[Flag]:
    """The flags that name the pre-training run (their defaults: the release's for the dataset)."""
    return [
        Flag(("-e", "--epochs"), "epochs", "pre-training epochs, part of the run name", "count",
             lambda c: c.mak.epochs, "N"),
        Flag(("-s", "--split"), "split", "long-tailed split of the pre-training run", "str",
             lambda c: c.entry.splits.train, "NAME"),
        Flag((seed_flag,), "seed", seed_help, "int", seed_default, "N"),
        Flag(("--batch_size",), "batch_size", "pre-training batch size, part of the run name", "count",
             lambda c: c.mak.batch_size, "N"),
        Flag(("--model",), "model", "encoder, part of the run name", "str",
             lambda c: registry.paper_defaults(c.entry.name)["model"], "NAME"),
    ]


def pool_of(name: str) -> registry.PoolEntry:
    entry = registry.find_pool(name)
    if entry is None:
        raise UsageError(f"unknown pool '{name}' ({', '.join(p.name for p in registry.pools())})")
    return entry


def pool_split_dir(o: dict, pool: registry.PoolEntry, env: Env) -> str:
    return env.path(o["pool_split_dir"] or str(registry.REPO_ROOT / "splits" / pool.name))


def pool_split_path(split: str, pool: registry.PoolEntry, folder: str, env: Env) -> str:
    """The pool's split as infer_features.py / train_simclr.py get it: a list file (a path, else a name in
    the pool's folder), the .npy file or folder itself, or nothing (the embedded pool)."""
    if pool.layout == "list":
        if os.path.exists(os.path.join(env.cwd, split)):
            return env.path(split)
        return os.path.join(folder, split.removesuffix(".txt") + ".txt")
    if pool.layout == "embedded":
        return ""
    return env.path(split)


# add-data: MAK steps 1 and 4 --------------------------------------------------------------------------------
def add_data_flags() -> list[Flag]:
    return [
        *run_name_flags("--seed", 1, "seed of the run (the MAK paper: 10, 20, 30)"),
        *launch_flags(workers=5, gpus=1),
        Flag(("--dataset",), "dataset", "long-tailed dataset", "str", lambda c: c.mak.release_name, "NAME"),
        Flag(("--additional_dataset",), "additional_dataset", "None, or an image-list pool: imagenet-900, "
             "imagenet_places365_mix or image_list", "str", "None", "NAME"),
        Flag(("--additional_split",), "additional_split", "the chosen items: MAK/<name> in --pool_split_dir (what "
             "sampling.sh writes) or a file", metavar="S"),
        Flag(("--additional_split_name",), "additional_split_name", "its part of the run name", metavar="N",
             default_text="the split's file name"),
        Flag(("--additional_dataset_root",), "additional_dataset_root", "image root of the pool's list",
             metavar="DIR", default_text="--data"),
        Flag(("--method",), "method", "method label of the probes in the report", metavar="NAME",
             default_text="SimCLR, or the split name without _s<seed>"),
        DATA_FLAG, SPLIT_DIR_FLAG, POOL_SPLIT_DIR_FLAG, RUNS_FLAG,
        *stage_flags(),
        Flag(("--max_steps_per_epoch",), "max_steps_per_epoch", "stop each epoch after this many steps (0: full "
             "epochs)", "int", 0, "N"),
    ]


ADD_DATA_DESCRIPTION = """\
MAK steps 1 and 4: SimCLR pre-training on {dataset}-LT, alone (--additional_dataset None) or with the pool
items sampling.sh chose, then full-shot and few-shot linear probing. Runs go to <runs_dir>/<name>, the
release's name: <split>_<model>_scheduling_sgd_lr0.5_temp0.2_epoch<E>_batch<B>_s<seed>[_addImagenet900<split name>]."""


def add_data_plan(script_entry: registry.DatasetEntry, given: dict, env: Env) -> Plan:
    entry = mak_dataset(given.get("dataset", script_entry.mak.release_name))
    if not entry.mak.release_run_names:
        raise UsageError(f"--dataset {given['dataset']}: re-train CIFAR with cifar-10-LT_extra.sh / "
                         f"cifar-100-LT_extra.sh --additional_dataset ...")
    o = as_str(with_defaults(add_data_flags(), given, Context(entry, env)))
    where = Where.of(entry, o, env)
    method = o["method"]
    name = pretrain_run_name(entry, o)
    extra, needs = [], []
    if o["additional_dataset"].lower() != "none":
        if not o["additional_split"]:
            raise UsageError(f"--additional_dataset {o['additional_dataset']} needs --additional_split (e.g. MAK/<name> "
                             f"as sampling.sh wrote it)")
        pool = pool_of(o["additional_dataset"])
        if pool.layout != "list":
            raise UsageError(f"--additional_dataset takes None or an image-list pool here, got "
                             f"'{o['additional_dataset']}'")
        chosen = pool_split_path(o["additional_split"], pool, pool_split_dir(o, pool, env), env)
        split_name = o["additional_split_name"] or names.split_stem(chosen)
        name = names.added_run_name(name, pool.run_tag, split_name)
        method = method or split_name.removesuffix(f"_s{o['seed']}")
        extra = ["--additional_dataset", o["additional_dataset"], "--additional_split", chosen]
        if o["additional_dataset_root"]:
            extra += ["--additional_dataset_root", env.path(o["additional_dataset_root"])]
        needs.append(Need(chosen, "--additional_split", "product",
                          f"no chosen items at {chosen} (make them with: {SCRIPTS}/sampling.sh --pretrain_seed "
                          f"{o['seed']} ...; it writes MAK/<name> under --pool_split_dir)"))
    method = method or names.method_label()
    train_split, train_needs = where.split("--trainSplit", o["split"])
    train = [*launch_prefix(o, env), "train_simclr.py", name, "--dataset", entry.name, "--data", where.data,
             *train_split, "--save-dir", where.runs, "--model", o["model"], "--width", o["width"], "--epochs", o["epochs"],
             "--batch_size", o["batch_size"], "--output_ch", "128", "--lr", "0.5", "--temperature", "0.2",
             "--optimizer", "sgd", "--num_workers", o["workers"], "--seed", o["seed"], *extra]
    if int(o["max_steps_per_epoch"]):
        train += ["--max_steps_per_epoch", o["max_steps_per_epoch"]]
    if o["resume"]:
        train.append("--resume")
    steps = []
    if runs_pretraining(o):
        steps.append(Step(train, [*needs, Need(where.data, "--data"), *train_needs],
                          makes=[f"{where.runs}/{name}/model.pt"]))
    steps += probe_steps(where, o, name, method, entry.splits.few)
    return Plan(steps, f"{where.runs}/{name}")


# inference and sampling: MAK steps 2 and 3 ------------------------------------------------------------------
def pretrain_flags(seed_help: str) -> list[Flag]:
    """The flags of the steps that read a pre-training run (inference, sampling)."""
    return [
        *run_name_flags("--pretrain_seed", 10, seed_help),
        Flag(("--pretrain_dataset",), "pretrain_dataset", "the long-tailed dataset", "str",
             lambda c: c.mak.release_name, "NAME",
             default_text=lambda c: f"{c.mak.release_name}; one of "
                                    f"{', '.join(d.mak.release_name for d in registry.datasets() if d.mak)}"),
        Flag(("--pretrain_name",), "pretrain_name", "the pre-training run", metavar="NAME",
             default_text=lambda c: "from the flags above: " + (
                 "<split>_<model>_scheduling_sgd_lr0.5_temp0.2_epoch<E>_batch<B>_s<pretrain_seed>"
                 if c.mak.release_run_names else "SimCLR_<split>, as cifar-*-LT_extra.sh names it")),
        Flag(("--inference_dataset",), "inference_dataset", "the long-tailed set or a pool", metavar="NAME"),
        Flag(("--inference_dataset_split",), "inference_dataset_split", "long-tailed set: its split; image-list "
             "pool: its list (a name in --pool_split_dir or a file); 300K_random_images: the .npy; folder: the "
             "folder", metavar="S"),
        Flag(("--inference_dataset_split_name",), "inference_dataset_split_name", "the split's part of the "
             "inference output names", metavar="N", default_text="the split's file name"),
        DATA_FLAG, SPLIT_DIR_FLAG, POOL_SPLIT_DIR_FLAG, RUNS_FLAG,
    ]


@dataclass
class PretrainRun:
    """What the inference and sampling steps know about the run they read, with absolute paths."""
    entry: registry.DatasetEntry
    o: dict
    name: str
    where: Where

    @property
    def data(self) -> str:
        return self.where.data

    @property
    def split_dir(self) -> str:
        return self.where.split_dir

    @property
    def runs(self) -> str:
        return self.where.runs


def pretrain_run(given: dict, script_entry: registry.DatasetEntry, flags: list[Flag], env: Env) -> PretrainRun:
    entry = mak_dataset(given.get("pretrain_dataset", script_entry.mak.release_name))
    o = as_str(with_defaults(flags, given, Context(entry, env)))
    return PretrainRun(entry, o, o["pretrain_name"] or pretrain_run_name(entry, o), Where.of(entry, o, env))


def default_pool_split(run: PretrainRun, pool: registry.PoolEntry, split: str | None) -> str | None:
    """The dataset's own MAK pool (ImageNet-900's list, <data>/300K_random_images.npy) needs no split."""
    mak, entry = run.entry.mak, run.entry
    if split or registry.find_pool(mak.pool or entry.default_pool) is not pool:
        return split
    if mak.pool_split:
        return mak.pool_split
    return os.path.join(run.data, entry.default_pool_file) if entry.default_pool_file else None


def inference_flags() -> list[Flag]:
    return [
        *pretrain_flags("seed of the pre-training run; also the seed of the augmented passes"),
        *launch_flags(workers=5, gpus=lambda c: c.mak.inference_gpus),
        Flag(("--checkpoint",), "checkpoint", "the pre-training checkpoint", metavar="FILE",
             default_text="<runs_dir>/<pre-training run>/model.pt"),
        Flag(("--inference_repeat_time",), "inference_repeat_time", "augmented passes", "count", 10, "R"),
        bool_flag("inference_noAug", "one pass with the test transform instead"),
        Flag(("--inference_dataset_root",), "inference_dataset_root", "image root of an image-list pool",
             metavar="DIR", default_text="--data"),
        Flag(("--chunk_size",), "chunk_size", "items per output file", "count", metavar="N",
             default_text="infer_features.py's"),
    ]


INFERENCE_DESCRIPTION = """\
MAK step 2: features of a dataset or pool from the pre-training run, written to
<runs_dir>/Infer_<inference_dataset>_<split name>[_noAug]__<pre-training run> (infer_features.py; chunked,
resumable: a re-run skips finished chunks)."""


def inference_plan(script_entry: registry.DatasetEntry, given: dict, env: Env) -> Plan:
    run = pretrain_run(given, script_entry, inference_flags(), env)
    o, entry = run.o, run.entry
    dataset = o["inference_dataset"] or entry.mak.release_name
    split = o["inference_dataset_split"]
    needs = []
    id_entry = registry.find_dataset(dataset)
    if id_entry is not None:
        split = split or o["split"]
        (_, path), needs = Where(id_entry, env, run.data, run.split_dir, run.runs).split("--inference_dataset_split",
                                                                                        split)
    else:
        pool = pool_of(dataset)
        split = default_pool_split(run, pool, split)
        if not split and pool.layout != "embedded":
            raise UsageError(f"--inference_dataset {dataset} needs --inference_dataset_split")
        path = pool_split_path(split or "", pool, pool_split_dir(o, pool, env), env)
        if path:
            needs.append(Need(path, "--inference_dataset_split"))
    split_name = o["inference_dataset_split_name"] or names.split_stem(split or "all")
    checkpoint = env.path(o["checkpoint"] or f"{run.runs}/{run.name}/model.pt")
    no_aug = o["inference_noAug"]
    command = [*launch_prefix(o, env), "infer_features.py", names.inference_name(dataset, split_name, no_aug, run.name),
               "--checkpoint", checkpoint, "--inference_dataset", dataset, "--data", run.data, "--save-dir", run.runs,
               "--batch_size", o["batch_size"], "--num_workers", o["workers"], "--seed", o["seed"]]
    if path:
        command += ["--inference_dataset_split", path]
    command += ["--inference_noAug"] if no_aug else ["--inference_repeat_time", o["inference_repeat_time"]]
    if o["inference_dataset_root"]:
        command += ["--inference_dataset_root", env.path(o["inference_dataset_root"])]
    if o["chunk_size"]:
        command += ["--chunk_size", o["chunk_size"]]
    made_by = (f"{SCRIPTS}/imagenet-100-add-data.sh or cifar-*-LT_extra.sh --save_dir {names.method_label()}, with the "
               f"same split, seed, epochs and batch size")
    needs.insert(0, Need(checkpoint, "--checkpoint", "product",
                         f"no pre-training checkpoint at {checkpoint} (make it with: {made_by})"))
    return Plan([Step(command, needs)], f"{run.runs}/{run.name}")


def sampling_flags() -> list[Flag]:
    return [
        *pretrain_flags("seed of the pre-training run; part of the split's name"),
        Flag(("--sampling_method",), "sampling_method", "mak, random (offline random K) or kcenter", "str", "mak", "M"),
        Flag(("--K_means_num",), "K_means_num", "k-means clusters of the long-tailed set", "count", 10, "K"),
        Flag(("--loss_weight",), "loss_weight", "a in score = a*z(ECLE) - (1-a)*z(distance)", "number", 0.5, "a"),
        Flag(("--core_sample_ratio",), "core_sample_ratio", "candidates = the top r*K scores", "number", 1.5, "r"),
        Flag(("--sampling_num",), "sampling_num", "budget: pool items to choose", "count", 10000, "K"),
        Flag(("--loss_repeat_time",), "loss_repeat_time", "augmented passes used for ECLE", "count", 10, "R"),
        Flag(("--seed",), "sample_seed", "seed of sample_mak.py's ECLE batchings, k-means and random sampling "
             "(the release's k-means: 0)", "int", 0, "N"),
        bool_flag("overwrite", "replace a split of the same name"),
    ]


SAMPLING_DESCRIPTION = """\
MAK step 3 (sample_mak.py, one process): choose --sampling_num pool items from the inference outputs
Infer_<pool>_<split name>_noAug__<run>, Infer_<dataset>_<split>_noAug__<run> and Infer_<pool>_<split name>__<run>
in --runs_dir, and write the split <pool_split_dir>/MAK/<name> (CIFAR: MAK/<split>/<name>, one folder per
long-tailed split) with <name>.json and <name>.png, where
<name> = optimize_<loss_weight>lossR<loss_repeat_time>_nearK<K_means_num>_coreR<core_sample_ratio>_num<sampling_num>_s<pretrain_seed>
(random_num<N>_s<seed> / kcenter_num<N>_s<seed> for those methods). Re-train on it with
imagenet-100-add-data.sh --additional_dataset imagenet-900 --additional_split MAK/<name> --additional_split_name <name>,
or cifar-10-LT_extra.sh --save_dir MAK --additional_dataset 300K_random_images --additional_split MAK/<split>/<name>."""

METHODS = ("mak", "random", "kcenter")


def sampling_plan(script_entry: registry.DatasetEntry, given: dict, env: Env) -> Plan:
    if given.get("sampling_method", "mak") not in METHODS:
        raise UsageError(f"--sampling_method takes {', '.join(METHODS[:-1])} or {METHODS[-1]}, got "
                         f"'{given['sampling_method']}'")
    run = pretrain_run(given, script_entry, sampling_flags(), env)
    o, entry = run.o, run.entry
    dataset = o["inference_dataset"] or entry.mak.pool or entry.default_pool
    if registry.find_dataset(dataset) is not None:
        raise UsageError(f"--inference_dataset is the pool to sample from, got the dataset '{dataset}'")
    pool = pool_of(dataset)
    split = default_pool_split(run, pool, o["inference_dataset_split"])
    split_name = o["inference_dataset_split_name"] or names.split_stem(split or "all")
    method = o["sampling_method"]
    name = names.mak_split_name(method, int(o["sampling_num"]), int(o["seed"]), float(o["loss_weight"]),
                                int(o["loss_repeat_time"]), int(o["K_means_num"]), float(o["core_sample_ratio"]))
    save_dir = f"{pool_split_dir(o, pool, env)}/MAK"
    if not entry.mak.release_run_names:  # CIFAR: five long-tailed splits, one pool: one folder per split
        save_dir += f"/{names.split_stem(o['split'])}"
    outputs = {"pool": names.inference_name(dataset, split_name, True, run.name),
               "train": names.inference_name(entry.mak.release_name, names.split_stem(o["split"]), True, run.name),
               "aug": names.inference_name(dataset, split_name, False, run.name)}
    needed = ["pool"] + (["train"] if method != "random" else [])
    if method == "mak" and float(o["loss_weight"]) > 0:  # ECLE needs the augmented passes unless a = 0
        needed.append("aug")
    flags = {"pool": "--no_aug_sampling_dataset_inference_exp", "train": "--no_aug_training_dataset_inference_exp",
             "aug": "--aug_sampling_dataset_inference_exp"}
    command = [env.python, "sample_mak.py", "--inference_root", run.runs]
    for kind in needed:
        command += [flags[kind], outputs[kind]]
    command += ["--sampling_method", method, "--sampling_num", o["sampling_num"], "--loss_weight", o["loss_weight"],
                "--core_sample_ratio", o["core_sample_ratio"], "--K_means_num", o["K_means_num"], "--loss_repeat_time",
                o["loss_repeat_time"], "--seed", o["sample_seed"], "--split_save_dir", save_dir, "--loss_txt_name", name]
    if o["overwrite"]:
        command.append("--overwrite")
    needs = [Need(f"{run.runs}/{outputs[kind]}/meta.json", flags[kind], "product",
                  f"no inference output {run.runs}/{outputs[kind]}; make it with: "
                  f"{inference_hint(run, kind, dataset, split, pool_split_dir(o, pool, env))}") for kind in needed]
    return Plan([Step(command, needs)], f"{run.runs}/{run.name}")


def inference_hint(run: PretrainRun, kind: str, dataset: str, split: str | None, pool_folder: str) -> str:
    """The inference launcher command that writes output ``kind`` (pool, train or aug) of these settings."""
    o, mak = run.o, run.entry.mak
    command = [f"{SCRIPTS}/{mak.inference_script}", "--pretrain_dataset", mak.release_name, "--pretrain_seed",
               o["seed"], "--epochs", o["epochs"], "--batch_size", o["batch_size"], "-s", o["split"], "--model",
               o["model"]]
    if kind == "train":
        command += ["--inference_dataset", mak.release_name, "--inference_dataset_split", o["split"],
                    "--inference_repeat_time", "1", "--inference_noAug", "True"]
    else:
        command += ["--inference_dataset", dataset, "--inference_dataset_split", split or ""]
        command += ["--inference_repeat_time", "1", "--inference_noAug", "True"] if kind == "pool" else \
            ["--inference_repeat_time", o["loss_repeat_time"]]
        if o["inference_dataset_split_name"]:
            command += ["--inference_dataset_split_name", o["inference_dataset_split_name"]]
    command += ["--pretrain_name", run.name, "--data", run.data, "--split_dir", run.split_dir, "--runs_dir", run.runs,
                "--pool_split_dir", pool_folder]
    return shlex.join(command)


# ------------------------------------------------------------------------------------------------- table
@dataclass(frozen=True)
class Launcher:
    flags: Any  # () -> list[Flag]
    plan: Any  # (dataset entry, given flags, Env) -> Plan
    description: str


LAUNCHERS = {
    "per_dataset": Launcher(per_dataset_flags, per_dataset_plan, PER_DATASET_DESCRIPTION),
    "add_data": Launcher(add_data_flags, add_data_plan, ADD_DATA_DESCRIPTION),
    "inference": Launcher(inference_flags, inference_plan, INFERENCE_DESCRIPTION),
    "sampling": Launcher(sampling_flags, sampling_plan, SAMPLING_DESCRIPTION),
}
