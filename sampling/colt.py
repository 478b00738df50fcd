"""COLT's online OOD sampling (Bai et al., ICLR 2023) as a plug-in for any method whose step gives the global
similarity logits: the per-sample tailness read off them, the sampling rounds (cluster the ID embeddings, give
each cluster a share of the budget from its mean tailness, fill each share with the nearest OOD items not
taken yet; or the paper's per-OOD rule, or the random baseline), the distribution-level loss, its state."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from losses import dist_supcon
from methods.base import Hook, StepOutput
from sampling.tailness import TailnessTracker, raw_tailness
from utils import distributed


def cluster_budgets(cluster_scores: np.ndarray, budget: int, temperature: float) -> np.ndarray:
    """weights = softmax(-zscore(scores) / temperature); share = floor(weight * budget); the rounding
    remainder goes to the last cluster, so the shares sum to ``budget`` exactly.

    zscore(s) = (s - mean(s)) / std(s) with the unbiased std (ddof=1, ``torch.std``'s default), as the
    released code computes it; the population std would move about 2% of a round's budget between clusters.
    Low scores (tail-like clusters, whose negatives carry little mass) get the larger shares.
    """
    scores = np.asarray(cluster_scores, dtype=np.float64)
    std = scores.std(ddof=1) if scores.size > 1 else 0.0
    z = (scores - scores.mean()) / std if std > 0 else np.zeros_like(scores)
    logits = -z / temperature
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    shares = np.floor(weights * budget).astype(np.int64)
    shares[-1] += budget - shares.sum()
    return shares


def nearest_unused(centroids: torch.Tensor, pool: torch.Tensor, shares: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Visit the clusters in order; each takes its share of the pool items most cosine-similar to its
    centroid among those not taken yet. Returns (pool indices, cluster of each), both int64, in pick order."""
    if int(shares.sum()) > pool.shape[0]:
        raise ValueError(f"budget {int(shares.sum())} exceeds the OOD pool of {pool.shape[0]} items")
    similarity = F.normalize(pool.float(), dim=1) @ F.normalize(centroids.float(), dim=1).t()  # (M, K)
    taken = torch.zeros(pool.shape[0], dtype=torch.bool, device=pool.device)
    picks, owners = [], []
    for cluster, share in enumerate(shares.tolist()):
        if share == 0:
            continue
        column = similarity[:, cluster].masked_fill(taken, float("-inf"))
        chosen = column.topk(share).indices
        taken[chosen] = True
        picks.append(chosen)
        owners.append(torch.full((share,), cluster, dtype=torch.int64, device=pool.device))
    if not picks:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return torch.cat(picks).cpu().numpy(), torch.cat(owners).cpu().numpy()


def cluster_mean_scores(assignment: np.ndarray, scores: np.ndarray, num_clusters: int) -> np.ndarray:
    """Mean EMA score of each cluster's scored members (never-seen samples, NaN, are left out; a cluster
    with no scored member takes the overall mean)."""
    scored = ~np.isnan(scores)
    sums = np.bincount(assignment[scored], weights=scores[scored], minlength=num_clusters)
    counts = np.bincount(assignment[scored], minlength=num_clusters)
    overall = scores[scored].mean() if scored.any() else 0.0
    return np.where(counts > 0, sums / np.maximum(counts, 1), overall)


@dataclass
class RoundResult:
    ood_indices: np.ndarray            # chosen pool indices, int64, unique
    ood_cluster: np.ndarray            # cluster that chose each item (-1 for the k-NN scorer)
    cluster_sizes: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    cluster_scores: np.ndarray = field(default_factory=lambda: np.empty(0))
    budgets: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))


def select_by_clusters(id_embeddings: torch.Tensor, pool_embeddings: torch.Tensor, scores: np.ndarray,
                       budget: int, num_clusters: int, temperature: float, seed: int = 0) -> RoundResult:
    """The released COLT rule: k-means on ID embeddings, budgets from cluster tailness, nearest OOD items."""
    from sklearn.cluster import KMeans
    if budget > pool_embeddings.shape[0]:
        raise ValueError(f"--budget {budget} exceeds the OOD pool of {pool_embeddings.shape[0]} items")
    if num_clusters > id_embeddings.shape[0]:
        raise ValueError(f"--k_means_clusters {num_clusters} exceeds the {id_embeddings.shape[0]} ID samples")
    kmeans = KMeans(n_clusters=num_clusters, random_state=seed, n_init=10)
    assignment = kmeans.fit_predict(id_embeddings.float().cpu().numpy().astype(np.float64))
    cluster_scores = cluster_mean_scores(assignment, scores, num_clusters)
    shares = cluster_budgets(cluster_scores, budget, temperature)
    centroids = torch.as_tensor(kmeans.cluster_centers_, dtype=torch.float32, device=pool_embeddings.device)
    picks, owners = nearest_unused(centroids, pool_embeddings, shares)
    return RoundResult(picks, owners, np.bincount(assignment, minlength=num_clusters), cluster_scores, shares)


def select_by_neighbours(id_embeddings: torch.Tensor, pool_embeddings: torch.Tensor, scores: np.ndarray,
                         budget: int, k: int, chunk: int = 4096) -> RoundResult:
    """The paper's per-OOD formulation: each pool item's tailness is minus the mean EMA score of its k
    most cosine-similar ID samples (so, as with the cluster rule, items near tail-like samples rank high);
    the ``budget`` highest are taken."""
    if budget > pool_embeddings.shape[0]:
        raise ValueError(f"--budget {budget} exceeds the OOD pool of {pool_embeddings.shape[0]} items")
    if k > id_embeddings.shape[0]:
        raise ValueError(f"--ood_knn {k} exceeds the {id_embeddings.shape[0]} ID samples")
    ids = F.normalize(id_embeddings.float(), dim=1)
    score_vec = torch.as_tensor(scores, dtype=torch.float32, device=ids.device)
    score_vec = torch.nan_to_num(score_vec, nan=float(np.nanmean(scores)) if np.isfinite(scores).any() else 0.0)
    tailness = []
    for start in range(0, pool_embeddings.shape[0], chunk):
        block = F.normalize(pool_embeddings[start:start + chunk].float(), dim=1)
        neighbours = (block @ ids.t()).topk(k, dim=1).indices
        tailness.append(-score_vec[neighbours].mean(dim=1))
    chosen = torch.cat(tailness).topk(budget).indices.cpu().numpy().astype(np.int64)
    return RoundResult(chosen, np.full(budget, -1, np.int64))


def select_random(pool_size: int, budget: int, seed: int) -> RoundResult:
    """The random baseline of a COLT round: ``budget`` distinct pool items drawn uniformly (seeded per round,
    so a resumed run draws the same), sorted; no cluster owns them (-1)."""
    if budget > pool_size:
        raise ValueError(f"--budget {budget} exceeds the OOD pool of {pool_size} items")
    chosen = np.sort(np.random.default_rng(seed).choice(pool_size, size=budget, replace=False)).astype(np.int64)
    return RoundResult(ood_indices=chosen, ood_cluster=np.full(budget, -1, dtype=np.int64))


def _by_clusters(id_embeddings, pool_embeddings, scores, config, round_index: int) -> RoundResult:
    return select_by_clusters(id_embeddings, pool_embeddings, scores, config.budget, config.k_means_clusters,
                              config.cluster_temperature, seed=config.seed + round_index)


def _by_neighbours(id_embeddings, pool_embeddings, scores, config, round_index: int) -> RoundResult:
    return select_by_neighbours(id_embeddings, pool_embeddings, scores, config.budget, config.ood_knn)


def _at_random(id_embeddings, pool_embeddings, scores, config, round_index: int) -> RoundResult:
    return select_random(config.pool_size, config.budget, seed=config.seed * 1_000_003 + round_index)


# --ood_scorer -> (rule, whether it reads embeddings); seeds follow (--seed, round) so a resumed run draws the same
SELECTION_RULES = {"clusters": (_by_clusters, True), "neighbours": (_by_neighbours, True),
                   "random": (_at_random, False)}


@dataclass
class COLTConfig:
    """COLT's settings (the flags of ``add_arguments``)."""
    budget: int
    warmup: int
    sample_interval: int
    k_largest_logits: int
    beta: float
    k_means_clusters: int
    cluster_temperature: float
    sup_weight: float
    ood_scorer: str
    ood_knn: int
    temperature: float
    seed: int
    pool_size: int

    @classmethod
    def from_args(cls, args, pool_size: int) -> "COLTConfig":
        return cls(args.budget, args.warmup, args.sample_interval, args.k_largest_logits, args.beta,
                   args.k_means_clusters, args.cluster_temperature, args.sup_weight, args.ood_scorer,
                   args.ood_knn, args.temperature, args.seed, pool_size)


class DistributionLoss(Hook):
    """``weight`` x COLT's distribution-level contrastive loss (ID views attract ID views, OOD attract OOD)
    whenever the global batch holds OOD images; also used for MAK's extra images (``--additional_sup_weight``)."""

    key = "distribution_loss"

    def __init__(self, weight: float, temperature: float):
        self.weight, self.temperature = weight, temperature

    def extra_loss(self, out: StepOutput) -> torch.Tensor | None:
        if self.weight <= 0:
            return None
        is_ood = out.is_ood
        if not is_ood.any():  # the same decision on every rank: the batch is global
            return None
        return self.weight * dist_supcon(out.z, torch.cat([is_ood, is_ood]), self.temperature)


class COLT(Hook):
    """The COLT plug-in. State (checkpointed): the tailness EMA of every ID image, the rounds done and the
    current OOD selection."""

    key = "colt"

    def __init__(self, num_id: int, config: COLTConfig, device="cpu"):
        if config.warmup < 0 or config.sample_interval < 1:
            raise ValueError(f"--warmup must be >= 0 and --sample_interval >= 1, got {config.warmup} and "
                             f"{config.sample_interval}")
        self.config = config
        self.tracker = TailnessTracker(num_id, config.beta, device)
        self.rounds_done = 0
        self.ood_indices = np.empty(0, np.int64)
        self.distribution_loss = DistributionLoss(config.sup_weight, config.temperature)

    def is_sampling_epoch(self, epoch: int) -> bool:
        """Rounds run at the start of epochs warmup+1, warmup+1+interval, ..."""
        return epoch > self.config.warmup and (epoch - self.config.warmup - 1) % self.config.sample_interval == 0

    def epoch_start(self, epoch: int, loop) -> None:
        if self.is_sampling_epoch(epoch):
            start = time.time()
            result = self.sample(loop)
            loop.set_ood_items(result.ood_indices)
            if loop.info.is_main:
                record_round(result, self, loop, epoch, time.time() - start)

    def sample(self, loop) -> RoundResult:
        """One round: embed ID set and pool (test view, projection), choose ``budget`` pool items."""
        rule, needs_embeddings = SELECTION_RULES[self.config.ood_scorer]
        embeddings = (loop.embed(loop.id_set), loop.embed(loop.ood_pool)) if needs_embeddings else (None, None)
        result = None
        if loop.info.is_main:  # one process decides (k-means threads need not agree bit for bit), then broadcasts
            result = rule(*embeddings, self.tracker.scores.cpu().numpy(), self.config, self.rounds_done)
        result = distributed.broadcast_object(result)
        self.rounds_done += 1
        self.ood_indices = result.ood_indices
        return result

    def resume(self, loop) -> None:
        if len(self.ood_indices):
            loop.set_ood_items(self.ood_indices)

    def extra_loss(self, out: StepOutput) -> torch.Tensor | None:
        return self.distribution_loss.extra_loss(out)

    def step_end(self, out: StepOutput, epoch: int) -> None:
        """The batch's ID images' tailness, from the same logits the method's loss used."""
        raw = raw_tailness(out.logits.detach(), self.config.k_largest_logits)
        is_id = ~out.is_ood
        self.tracker.update(out.index[is_id], raw[is_id], epoch)

    def state_dict(self) -> dict:
        return {"tracker": self.tracker.state_dict(), "rounds_done": self.rounds_done,
                "ood_indices": torch.from_numpy(self.ood_indices.copy())}

    def load_state_dict(self, state: dict) -> None:
        self.tracker.load_state_dict(state["tracker"])
        self.rounds_done = int(state["rounds_done"])
        self.ood_indices = state["ood_indices"].numpy().astype(np.int64)


def class_tailness_correlation(scores: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Spearman's rank correlation between each class's mean tailness and its count in the training set
    (ranks with ties averaged); positive = head classes score higher, the direction COLT relies on.
    Returns (rho, per-class counts, per-class mean scores); rho is nan with fewer than 2 scored classes."""
    scored = ~np.isnan(scores) & (labels >= 0)
    classes = np.unique(labels[labels >= 0])
    counts = np.array([(labels == c).sum() for c in classes], dtype=np.float64)
    means = np.array([scores[scored & (labels == c)].mean() if (scored & (labels == c)).any() else np.nan
                      for c in classes])
    ok = ~np.isnan(means)
    if ok.sum() < 2:
        return math.nan, counts, means
    a, b = _ranks(counts[ok]), _ranks(means[ok])
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return (float((a * b).sum()) / denominator if denominator > 0 else math.nan), counts, means


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for value in np.unique(x):
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def record_round(result: RoundResult, colt: COLT, loop, epoch: int, seconds: float) -> None:
    """ood_round{r}.npy, ood_round{r}.json (what the report reads: the tailness by class and, for a pool that
    knows how its items relate to the ID classes, the picks by relation), a grid of chosen images per
    cluster, the ID tailness by class, log and TensorBoard."""
    import json
    from utils.checkpoint import atomic_write
    from utils.picks import format_picks, item_relations, picks_summary
    from utils.plots import save_image_grid, save_tailness_histogram
    r, logger, run_dir = colt.rounds_done, loop.logger, Path(loop.run_dir)
    atomic_write(run_dir / f"ood_round{r}.npy", lambda f: np.save(f, result.ood_indices, allow_pickle=False))
    scores = colt.tracker.scores.cpu().numpy()
    if len(result.budgets):
        logger.info(f"COLT round {r} (epoch {epoch}): cluster sizes {result.cluster_sizes.tolist()}, "
                    f"mean tailness {np.round(result.cluster_scores, 4).tolist()}, "
                    f"budgets {result.budgets.tolist()}, {seconds:.1f}s")
        for c, (size, share) in enumerate(zip(result.cluster_sizes, result.budgets)):
            logger.scalars({f"cluster{c}_size": int(size), f"cluster{c}_budget": int(share)}, epoch, "colt/")
    else:
        rule = "uniformly at random" if colt.config.ood_scorer == "random" else "by neighbour tailness"
        logger.info(f"COLT round {r} (epoch {epoch}): {len(result.ood_indices)} OOD items {rule}, {seconds:.1f}s")
    logger.scalars({"round_seconds": seconds, "mean_tailness": float(np.nanmean(scores))}, epoch, "colt/")
    logger.histogram("colt/tailness", scores[~np.isnan(scores)], epoch)
    labels = loop.id_labels
    known = labels is not None and (labels >= 0).any()
    record = {"round": r, "epoch": epoch, "ood_scorer": colt.config.ood_scorer, "chosen": len(result.ood_indices),
              "seconds": round(seconds, 3)}
    if known:
        rho, class_counts, class_means = class_tailness_correlation(scores, labels)
        logger.info(f"tailness before round {r}: class means vs class counts, Spearman {rho:.2f} (positive: head "
                    f"classes score higher, as COLT assumes; labels are read for this report only)")
        logger.scalars({"tailness_count_spearman": rho}, epoch, "colt/")
        record.update(tailness_count_spearman=None if math.isnan(rho) else rho,
                      classes=np.unique(labels[labels >= 0]).tolist(), class_counts=class_counts.astype(int).tolist(),
                      class_mean_tailness=[None if math.isnan(m) else float(m) for m in class_means])
    near_class = getattr(loop, "pool_near_class", None)  # report-only metadata of the pool (None: unknown)
    if known and near_class is not None and len(near_class) == len(loop.ood_pool):
        picks = picks_summary(item_relations(near_class, np.bincount(labels[labels >= 0])), result.ood_indices)
        logger.info(f"COLT round {r}: {format_picks(picks)}")
        logger.scalars({f"picks_{name.replace(' ', '_')}": cell["share"]
                        for name, cell in picks["relations"].items()}, epoch, "colt/")
        record["picks"] = picks
    atomic_write(run_dir / f"ood_round{r}.json", lambda f: f.write((json.dumps(record, indent=2) + "\n").encode()))
    clusters = np.unique(result.ood_cluster)
    shown = 8
    rows = [loop.eval_images(loop.ood_pool, result.ood_indices[result.ood_cluster == c][:shown]) for c in clusters]
    save_image_grid(rows, [cluster_row_title(result, c) for c in clusters], run_dir / f"ood_round{r}.png",
                    max_per_row=shown,
                    title=f"COLT round {r}: sampled OOD images per ID cluster, the first {shown} of each budget "
                          f"(size = ID images in the cluster, tailness = their mean score, budget = OOD images "
                          f"given)")
    counts = np.bincount(labels[labels >= 0]) if known else None
    names = loop.class_names
    if names is not None and counts is not None and len(counts) > len(names):
        names = None
    save_tailness_histogram(scores, labels if known else None, run_dir / f"tailness_round{r}.png",
                            class_counts=counts, class_names=names,
                            title=f"ID tailness before round {r} (epoch {epoch})")


def cluster_row_title(result: RoundResult, cluster: int) -> str:
    """A row label of ood_round<r>.png: the cluster's ID size, mean tailness and budget (as in log.txt)."""
    if cluster < 0 or cluster >= len(result.budgets):
        return "chosen"
    return (f"cluster {cluster}\nsize {int(result.cluster_sizes[cluster])}\n"
            f"tailness {result.cluster_scores[cluster]:.4f}\nbudget {int(result.budgets[cluster])}")


def add_arguments(parser) -> None:
    """COLT's flags (the released scripts' names and defaults)."""
    g = parser.add_argument_group("COLT: online OOD sampling by tailness (off unless --COLT)")
    g.add_argument("--COLT", action="store_true", help="add OOD images picked online by tailness, and the "
                                                       "distribution-level contrastive loss")
    g.add_argument("--sample_set", default=None,
                   help="OOD pool: synthetic (the embedded pool), 300K_random_images (--ood_data FILE.npy), "
                        "image_list (--ood_data LIST, images under --ood_root or --data) or folder "
                        "(--ood_data DIR); default: synthetic / 300K_random_images for CIFAR / image_list")
    g.add_argument("--ood_data", default=None, help="path of the OOD pool (see --sample_set); never guessed")
    g.add_argument("--ood_root", default=None, help="image root of an image_list pool (default: --data)")
    g.add_argument("--budget", type=int, default=None,
                   help="OOD images per sampling round (default 10000; 1000 for synthetic)")
    g.add_argument("--warmup", type=int, default=100, help="epochs of plain training before the first round "
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
    g.add_argument("--ood_scorer", default="clusters", choices=list(SELECTION_RULES),
                   help="clusters: the released rule (reproduces the published numbers); neighbours: the "
                        "paper's per-OOD score from the k nearest ID samples; random: --budget uniformly random "
                        "pool items each round (COLT's schedule, budget and loss: the random baseline)")
    g.add_argument("--ood_knn", type=int, default=10, help="neighbours per OOD item for --ood_scorer neighbours")
    g.add_argument("--embed_batch_size", type=int, default=512, help="batch size of the embedding passes")


def check_args(args) -> list[str]:
    """What is wrong with COLT's settings (empty if nothing); the training script reports the first."""
    errors = [f"--{name} must be positive, got {getattr(args, name)}"
              for name in ("budget", "sample_interval", "k_largest_logits", "k_means_clusters", "ood_knn",
                           "embed_batch_size") if getattr(args, name) <= 0]
    if args.COLT and args.k_largest_logits > 2 * args.batch_size - 2:
        errors.append(f"--k_largest_logits {args.k_largest_logits} exceeds the {2 * args.batch_size - 2} "
                      f"negatives of an image in a global batch of {args.batch_size} (2 x batch_size - 2)")
    if not all(math.isfinite(v) for v in (args.sup_weight, args.cluster_temperature, args.beta)) or \
            args.warmup < 0 or args.sup_weight < 0 or args.cluster_temperature <= 0 or not 0 <= args.beta < 1:
        errors.append("--warmup and --sup_weight must be >= 0, --cluster_temperature > 0, 0 <= --beta < 1")
    return errors
