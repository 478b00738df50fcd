"""COLT's online OOD sampling (Bai et al., ICLR 2023): cluster the ID embeddings, give each cluster a share
of the budget from its mean tailness, and fill each share with the nearest OOD items not taken yet."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from sampling.tailness import TailnessTracker


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


class COLTState:
    """What a COLT run must carry across a resume: the tailness scores, the current OOD selection and the
    number of sampling rounds done."""

    def __init__(self, num_id: int, beta: float, warmup: int, interval: int, device="cpu"):
        if warmup < 0 or interval < 1:
            raise ValueError(f"--warmup must be >= 0 and --sample_interval >= 1, got {warmup} and {interval}")
        self.tracker = TailnessTracker(num_id, beta, device)
        self.warmup, self.interval = warmup, interval
        self.rounds_done = 0
        self.ood_indices = np.empty(0, np.int64)

    def is_sampling_epoch(self, epoch: int) -> bool:
        """Rounds run at the start of epochs warmup+1, warmup+1+interval, ..."""
        return epoch > self.warmup and (epoch - self.warmup - 1) % self.interval == 0

    def state_dict(self) -> dict:
        return {"tracker": self.tracker.state_dict(), "rounds_done": self.rounds_done,
                "ood_indices": torch.from_numpy(self.ood_indices.copy())}

    def load_state_dict(self, state: dict) -> None:
        self.tracker.load_state_dict(state["tracker"])
        self.rounds_done = int(state["rounds_done"])
        self.ood_indices = state["ood_indices"].numpy().astype(np.int64)


def select_random(pool_size: int, budget: int, seed: int) -> RoundResult:
    """The random baseline of a COLT round: ``budget`` distinct pool items drawn uniformly (seeded per round,
    so a resumed run draws the same), sorted; no cluster owns them (-1)."""
    if budget > pool_size:
        raise ValueError(f"--budget {budget} exceeds the OOD pool of {pool_size} items")
    chosen = np.sort(np.random.default_rng(seed).choice(pool_size, size=budget, replace=False)).astype(np.int64)
    return RoundResult(ood_indices=chosen, ood_cluster=np.full(budget, -1, dtype=np.int64))
