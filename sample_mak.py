r"""MAK step 3: choose --sampling_num pool items once, offline, from the inference outputs of step 2.

    python sample_mak.py --no_aug_sampling_dataset_inference_exp pool_noaug \
        --no_aug_training_dataset_inference_exp train_noaug --aug_sampling_dataset_inference_exp pool_aug \
        --inference_root checkpoints --sampling_num 10000

Model-aware K-center (Jiang et al., NeurIPS 2021): tailness (ECLE of the augmented projections, high =
tail-like), proximity (distance of the backbone features to k-means centroids of the long-tailed set),
score = a*z(ECLE) - (1-a)*z(distance), the top --core_sample_ratio x K candidates, then greedy K-center over
them with the long-tailed set counted as covered. --sampling_method random / kcenter give the ablations
that use no score; --loss_weight 0 --core_sample_ratio 1 is proximity alone, --core_sample_ratio 1 is
tailness + proximity without K-center. The math is in sampling/mak.py.

Writes, in --split_save_dir: the chosen items as a split of the pool (image-list lines for image-list pools,
an index .npy otherwise), <name>.json (settings, per-stage seconds, ECLE / distance of chosen vs all) and
<name>.png (a grid of chosen images); for a pool that knows how its items relate to the ID classes (the
synthetic pool), the JSON's "picks" gives the chosen share near tail / medium / head classes and far
against the pool's, and "mak_terms" what drove MAK's choice: each relation's mean z(ECLE), z(distance) and
score, and the relations of the top-score candidates K-center chose from. ECLE and distances are cached in
--loss_dist_save_dir and reused only when every input they depend on is the same.
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without installing

import numpy as np

from data import registry
from data.relations import relations_picks, selection_relations
from sampling import mak
from utils.checkpoint import atomic_write
from utils.cli import ArgumentParser, HelpFormatter
from utils.device import pick_device
from utils.errors import one_line_errors
from utils.feature_store import FeatureStore, content_identity
from utils.names import mak_split_name
from utils.picks import format_picks, mak_terms
from utils.run_dir import check_name, check_output_folder, folder_kind, KINDS, write_marker

METHODS = ("mak", "random", "kcenter")
METHOD_TITLES = {"mak": "MAK (tailness + proximity, then K-center)", "random": "random sampling",
                 "kcenter": "K-center over the whole pool"}


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    g = p.add_argument_group("inference outputs (folders written by infer_features.py)")
    g.add_argument("--inference_root", default="checkpoints",
                   help="folder holding the inference outputs named below (a name may also be a path)")
    g.add_argument("--no_aug_sampling_dataset_inference_exp", required=True,
                   help="the pool without augmentation (backbone features: proximity, K-center)")
    g.add_argument("--no_aug_training_dataset_inference_exp", default=None,
                   help="the long-tailed training set without augmentation (k-means centroids, covered set); "
                        "not needed by --sampling_method random")
    g.add_argument("--aug_sampling_dataset_inference_exp", default=None,
                   help="the pool under the training augmentation, >= 2 passes (ECLE); needed when "
                        "--loss_weight > 0 with --sampling_method mak")
    g = p.add_argument_group("sampling (defaults: the MAK paper's)")
    g.add_argument("--sampling_method", default="mak", choices=METHODS,
                   help="mak: score -> candidates -> K-center; random: K uniformly random pool items; "
                        "kcenter: K-center over the whole pool, no score")
    g.add_argument("--sampling_num", type=int, default=10000, help="budget K: pool items to choose")
    g.add_argument("--loss_weight", type=float, default=0.5,
                   help="a in score = a*z(ECLE) - (1-a)*z(distance); 0 = proximity alone")
    g.add_argument("--core_sample_ratio", type=float, default=1.5,
                   help="candidates = the top int(ratio*K) scores; 1.0 skips K-center")
    g.add_argument("--K_means_num", type=int, default=10, help="k-means clusters of the long-tailed set")
    g.add_argument("--K_means_seed", type=int, default=0,
                   help="random_state of k-means (0, as the MAK release, whatever --seed is)")
    g.add_argument("--loss_repeat_time", type=int, default=10,
                   help="augmented passes used for ECLE (the first this many; every pair of them)")
    g.add_argument("--ecle_batch_repeats", type=int, default=10, help="random batchings per pair of passes")
    g.add_argument("--ecle_batch_size", type=int, default=512, help="items per ECLE batch (negatives)")
    g.add_argument("--temperature", type=float, default=0.2, help="NT-Xent temperature of ECLE")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of the ECLE batchings and of random sampling (k-means: --K_means_seed)")
    g = p.add_argument_group("outputs")
    g.add_argument("--split_save_dir", default=None,
                   help="folder of the written split (default splits/<pool>/MAK in this checkout, where "
                        "train_simclr.py --additional_split MAK/<name> finds it)")
    g.add_argument("--loss_txt_name", default=None,
                   help="name of the written split (default from the settings, e.g. "
                        "optimize_0.5lossR10_nearK10_coreR1.5_num10000_s0; .txt or .npy is added)")
    g.add_argument("--loss_dist_save_dir", default=None,
                   help="cache folder of ECLE and distances (default <pool inference folder>/mak_cache)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing split of the same name")
    g.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"], help="where the math runs")
    args = p.parse_args(argv)
    for name in ("loss_weight", "core_sample_ratio", "temperature"):
        if not math.isfinite(getattr(args, name)):
            p.error(f"--{name} must be a finite number, got {getattr(args, name)}")
    if args.sampling_num <= 0:
        p.error(f"--sampling_num must be positive, got {args.sampling_num}")
    if not 0 <= args.loss_weight <= 1:
        p.error(f"--loss_weight must be in [0, 1], got {args.loss_weight}")
    if args.core_sample_ratio < 1:
        p.error(f"--core_sample_ratio must be >= 1 (fewer candidates than the budget), got {args.core_sample_ratio}")
    for name in ("K_means_num", "loss_repeat_time", "ecle_batch_repeats", "ecle_batch_size"):
        if getattr(args, name) <= 0:
            p.error(f"--{name} must be positive, got {getattr(args, name)}")
    if not args.temperature > 0:
        p.error(f"--temperature must be positive, got {args.temperature}")
    if args.loss_txt_name is not None:
        try:
            check_name(args.loss_txt_name, "--loss_txt_name")
        except ValueError as e:
            p.error(str(e))
    return args


def default_name(args) -> str:
    """The MAK release's naming of its splits, plus one name per ablation without a score."""
    return mak_split_name(args.sampling_method, args.sampling_num, args.seed, args.loss_weight,
                          args.loss_repeat_time, args.K_means_num, args.core_sample_ratio)


def open_store(name: str | None, args, flag: str, aug: str) -> FeatureStore:
    """An inference output by name (under --inference_root) or path, complete and of the right kind."""
    if not name:
        raise ValueError(f"{flag} is required for these settings")
    path = Path(name) if Path(name).is_dir() else Path(args.inference_root) / name
    kind = folder_kind(path)
    if kind not in (None, "inference"):
        raise ValueError(f"{flag}: {path} holds {KINDS[kind]}, not an inference output")
    store = FeatureStore(path)
    if not store.exists():
        raise FileNotFoundError(f"{flag}: no inference output at {path} (make it with: python infer_features.py "
                                f"{path.name} --checkpoint CKPT --inference_dataset ... "
                                f"{'--inference_noAug' if aug == 'none' else '--inference_repeat_time R'} "
                                f"--save-dir {path.parent})")
    meta = store.check_complete(command_hint=f"the same infer_features.py command again ({path})")
    if meta["augmentation"] != aug:
        raise ValueError(f"{flag}: {path} was made {'with' if aug == 'none' else 'without'} augmentation "
                         f"(expected {'--inference_noAug' if aug == 'none' else 'augmented passes'})")
    return store


def check_together(pool: dict, train: dict | None, pool_aug: dict | None) -> None:
    """Refuse outputs that were not made from one checkpoint, or augmented passes of another pool."""
    metas = [("pool", pool)] + [(n, m) for n, m in (("training set", train), ("augmented pool", pool_aug)) if m]
    sums = {m["checkpoint_sha256"] for _, m in metas}
    if len(sums) > 1:
        listing = ", ".join(f"{n}: {m['checkpoint']}" for n, m in metas)
        raise ValueError(f"the inference outputs come from different checkpoints ({listing})")
    if pool["role"] != "pool":
        raise ValueError(f"--no_aug_sampling_dataset_inference_exp holds {pool['dataset']}, an ID dataset, not a pool")
    if train is not None and train["role"] != "id":
        raise ValueError(f"--no_aug_training_dataset_inference_exp holds the pool {train['dataset']}, not the "
                         f"long-tailed training set")
    if pool_aug is not None and (pool_aug["dataset"], pool_aug["split"], pool_aug["num_items"]) != \
            (pool["dataset"], pool["split"], pool["num_items"]):
        raise ValueError(f"the augmented passes are of {pool_aug['dataset']} {pool_aug['split']} "
                         f"({pool_aug['num_items']} items), the pool is {pool['dataset']} {pool['split']} "
                         f"({pool['num_items']} items)")


def cached(cache_dir: Path, name: str, key: dict, compute):
    """``compute()``, kept in ``<name>_<digest of key>.npz`` with its key inside; reused only if the key
    stored there is ``key``. Values and key are one file written atomically: a run killed at any moment
    leaves the old file, the new one or none, never values of one setting under the key of another."""
    text = json.dumps(key, sort_keys=True)
    path = cache_dir / f"{name}_{hashlib.sha256(text.encode()).hexdigest()[:16]}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["key"]) == text:
                    return z["values"], True
        except (OSError, ValueError, KeyError, EOFError):
            pass  # a damaged cache is recomputed
    result = np.asarray(compute())
    atomic_write(path, lambda f: np.savez(f, values=result, key=np.array(text)))
    return result, False


class PassSequence:
    """The first ``n`` augmented passes of a store, each loaded only when asked for (a pool's passes need
    not fit in memory together)."""

    def __init__(self, store: FeatureStore, n: int):
        self.store, self.n = store, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, r: int) -> np.ndarray:
        if not 0 <= r < self.n:
            raise IndexError(r)
        return self.store.load("proj", r)


class StoreRows:
    """The pool's backbone features as an indexable of rows: ``rows[indices]`` reads only their chunks
    (K-center needs the candidates' rows, never the whole pool)."""

    def __init__(self, store: FeatureStore):
        self.store, self.size = store, store.meta()["num_items"]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, indices) -> np.ndarray:
        return self.store.rows("feat", np.asarray(indices))


def stats(values: np.ndarray | None, chosen: np.ndarray) -> dict | None:
    if values is None:
        return None
    pick = values[chosen]
    return {"all_mean": float(values.mean()), "all_std": float(values.std()),
            "chosen_mean": float(pick.mean()), "chosen_std": float(pick.std())}


def named(stem: Path, suffix: str) -> Path:
    return stem.parent / (stem.name + suffix)


def write_split(meta: dict, chosen: np.ndarray, out: Path) -> Path:
    """The chosen pool items in the format train_simclr.py --additional_split reads for that pool."""
    if meta["split"] and registry.pool(meta["dataset"]).layout == "list":
        lines = [line for line in Path(meta["split"]).read_text().splitlines() if line.strip()]
        if len(lines) != meta["num_items"]:
            raise ValueError(f"the pool's list {meta['split']} has {len(lines)} lines, its inference output "
                             f"{meta['num_items']} items: the list changed since the inference; run it again")
        path = named(out, ".txt")
        text = "".join(lines[i] + "\n" for i in chosen)
        atomic_write(path, lambda f: f.write(text.encode()))
    else:
        path = named(out, ".npy")
        atomic_write(path, lambda f: np.save(f, chosen.astype(np.int64), allow_pickle=False))
    return path


def save_grid(meta: dict, chosen: np.ndarray, score: np.ndarray | None, path: Path, title: str) -> None:
    """The chosen images, highest score first when there is a score (else in pool order)."""
    from data.ood import build_inference_set
    from data.views import eval_transform
    from utils.embed import with_transform
    from utils.plots import save_image_grid
    dataset, _ = build_inference_set(meta["dataset"], meta["split"], meta["source"], meta["source"])
    dataset = with_transform(dataset, eval_transform(meta["image_kind"]))
    order = chosen[np.argsort(-score[chosen], kind="stable")] if score is not None else chosen
    shown = order[:48]
    images = np.stack([dataset[int(i)][0].permute(1, 2, 0).numpy() for i in shown]) if len(shown) else \
        np.empty((0, 1, 1, 3), np.uint8)
    rows = [images[k:k + 8] for k in range(0, len(images), 8)] or [images]
    save_image_grid(rows, [f"{k * 8 + 1}-{k * 8 + len(r)}" for k, r in enumerate(rows)], path,
                    title=f"{title}: {len(shown)} of {len(chosen)} chosen"
                          + (", highest score first (rows: ranks)" if score is not None else ", in pool order"))


def main(argv=None) -> Path:
    args = parse_args(argv)
    with one_line_errors():
        args.device = pick_device(args.device).type
        return run(args)


def check_finite(values: np.ndarray, what: str, store: FeatureStore) -> np.ndarray:
    bad = int(np.size(values) - np.isfinite(values).sum())
    if bad:
        raise ValueError(f"{bad} of the {what} are not finite: the inference output {store.root} holds NaN or "
                         f"infinite features; make it again from a good checkpoint")
    return values


def run(args) -> Path:
    seconds = {}
    start = time.time()
    needs_score = args.sampling_method == "mak"
    needs_ecle = needs_score and args.loss_weight > 0
    pool_store = open_store(args.no_aug_sampling_dataset_inference_exp, args,
                            "--no_aug_sampling_dataset_inference_exp", "none")
    train_store = None if args.sampling_method == "random" else open_store(
        args.no_aug_training_dataset_inference_exp, args, "--no_aug_training_dataset_inference_exp", "none")
    aug_store = open_store(args.aug_sampling_dataset_inference_exp, args, "--aug_sampling_dataset_inference_exp",
                           "train") if needs_ecle else None
    pool, train, pool_aug = (s.meta() if s else None for s in (pool_store, train_store, aug_store))
    check_together(pool, train, pool_aug)
    n_pool = pool["num_items"]
    if args.sampling_num > n_pool:
        raise ValueError(f"--sampling_num {args.sampling_num} exceeds the pool of {n_pool} items")
    if needs_ecle and args.loss_repeat_time > pool_aug["repeats"]:
        raise ValueError(f"--loss_repeat_time {args.loss_repeat_time} exceeds the {pool_aug['repeats']} augmented "
                         f"passes written in {aug_store.root} (make more with --inference_repeat_time)")
    if needs_ecle and args.loss_repeat_time < 2:
        raise ValueError("--loss_repeat_time must be >= 2: ECLE compares pairs of augmented passes")
    if train is not None and args.K_means_num > train["num_items"]:
        raise ValueError(f"--K_means_num {args.K_means_num} exceeds the {train['num_items']} training items")
    name = args.loss_txt_name or default_name(args)
    name = name[:-4] if name.endswith((".txt", ".npy")) else name
    split_dir = Path(args.split_save_dir) if args.split_save_dir else registry.REPO_ROOT / "splits" / pool["dataset"] / "MAK"
    check_output_folder(split_dir, "splits", "--split_save_dir")
    out = split_dir / name  # names hold dots (coreR1.5): add suffixes with named(), never with_suffix
    existing = [p for p in (named(out, ".txt"), named(out, ".npy")) if p.exists()]
    if existing and not args.overwrite:
        raise ValueError(f"{existing[0]} exists: pass --overwrite to replace it, or --loss_txt_name for another name")
    cache_dir = Path(args.loss_dist_save_dir) if args.loss_dist_save_dir else pool_store.root / "mak_cache"
    if cache_dir.exists() and not cache_dir.is_dir():
        raise ValueError(f"--loss_dist_save_dir {cache_dir} is a file, not a folder")
    if folder_kind(cache_dir) is not None:
        raise ValueError(f"--loss_dist_save_dir {cache_dir} holds {KINDS[folder_kind(cache_dir)]}: choose a folder "
                         f"of its own for the cache")
    print(f"MAK sampling ({args.sampling_method}): {args.sampling_num} of {n_pool} pool items ({pool['dataset']})",
          flush=True)

    ecle_values = distance = score = None
    if needs_ecle:
        t = time.time()
        key = {"pool_aug": content_identity(pool_aug), "passes": args.loss_repeat_time, "batch_repeats": args.ecle_batch_repeats,
               "batch_size": args.ecle_batch_size, "temperature": args.temperature, "seed": args.seed}
        ecle_values, hit = cached(cache_dir, f"ecle_R{args.loss_repeat_time}", key, lambda: mak.ecle(
            PassSequence(aug_store, args.loss_repeat_time), temperature=args.temperature,
            batch_size=args.ecle_batch_size, repeats=args.ecle_batch_repeats, seed=args.seed, device=args.device))
        check_finite(ecle_values, "ECLE values", aug_store)
        seconds["ecle"] = round(time.time() - t, 3)
        print(f"ECLE {'from cache' if hit else 'computed'} ({seconds['ecle']:.1f}s)", flush=True)
    id_features = None
    if train_store is not None:
        id_features = train_store.load("feat")
    if needs_score:
        t = time.time()
        key = {"pool": content_identity(pool), "train": content_identity(train), "clusters": args.K_means_num,
               "k_means_seed": args.K_means_seed}

        def compute_distance():
            centroids = mak.fit_centroids(check_finite(id_features, "training features", train_store),
                                          args.K_means_num, seed=args.K_means_seed)
            return np.concatenate([mak.centroid_distance(block, centroids, device=args.device)
                                   for _, block in pool_store.iter_chunks("feat")])
        distance, hit = cached(cache_dir, f"distance_K{args.K_means_num}", key, compute_distance)
        check_finite(distance, "distances", pool_store)
        seconds["proximity"] = round(time.time() - t, 3)
        print(f"distances {'from cache' if hit else 'computed'} ({seconds['proximity']:.1f}s)", flush=True)
        score = mak.mak_score(ecle_values if needs_ecle else np.zeros(n_pool), distance, args.loss_weight)

    t = time.time()
    if args.sampling_method == "random":
        chosen = mak.random_subset(n_pool, args.sampling_num, seed=args.seed)
    elif args.sampling_method == "kcenter":
        chosen = mak.select(None, None, pool_store.load("feat"), id_features, args.sampling_num, "kcenter",
                            device=args.device)
    else:
        chosen = mak.select(ecle_values if needs_ecle else np.zeros(n_pool), distance, StoreRows(pool_store),
                            id_features, args.sampling_num, "mak", loss_weight=args.loss_weight,
                            core_sample_ratio=args.core_sample_ratio, seed=args.seed, device=args.device)
    seconds["selection"] = round(time.time() - t, 3)
    chosen = np.sort(chosen)
    split_path = named(out, ".txt" if pool["split"] and pool["split"].endswith(".txt")
                       and pool["dataset"] not in ("300K_random_images", "folder") else ".npy")
    # the picture and the summary first, the split last: a split on disk is a finished sampling
    write_marker(split_dir, "splits")
    save_grid(pool, chosen, score, named(out, ".png"), METHOD_TITLES[args.sampling_method] +
              (f", {name}" if name != args.sampling_method else ""))
    seconds["total"] = round(time.time() - start, 3)
    summary = {"split": str(split_path), "pool": {k: pool[k] for k in ("dataset", "split", "num_items")},
               "checkpoint": pool["checkpoint"], "checkpoint_sha256": pool["checkpoint_sha256"],
               "settings": {k: v for k, v in vars(args).items()}, "chosen": len(chosen), "seconds": seconds,
               "ecle": stats(ecle_values, chosen), "distance": stats(distance, chosen)}
    found = selection_relations(pool, train)  # only pools that know how their items relate to the classes
    if found is not None:
        summary["picks"] = relations_picks(found, chosen)
        print(format_picks(summary["picks"]), flush=True)
        if score is not None:  # what drove the choice: the score's terms per relation, the candidates K-center saw
            relations = found[0]
            candidates = mak.top_candidates(score, args.sampling_num, args.core_sample_ratio)
            candidates = candidates if len(candidates) > args.sampling_num else None  # else no K-center step
            summary["mak_terms"] = mak_terms(relations, mak.zscore(ecle_values) if needs_ecle else None,
                                             mak.zscore(distance), score, candidates)
    text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
    atomic_write(named(out, ".json"), lambda f: f.write(text.encode()))
    split_path = write_split(pool, chosen, out)
    print(f"wrote {split_path} ({len(chosen)} items), {named(out, '.json').name}, "
          f"{named(out, '.png').name} in {seconds['total']:.1f}s", flush=True)
    return split_path


if __name__ == "__main__":
    main()
