"""MAK's offline open-world sampling (Jiang, Chen, Chen, Wang, "Improving Contrastive Learning on Imbalanced
Data via Open-World Sampling", NeurIPS 2021), as pure functions.

With a pre-trained SimCLR encoder, MAK picks K extra images once from an unlabeled pool by three criteria:
tailness (ECLE: the expected contrastive loss of an item over random batches and pairs of augmented views),
proximity (cosine distance to the nearest k-means centroid of the ID set) and diversity (greedy K-center
over the best-scoring candidates, the ID set counting as already covered). The equations are the released
code's; the computation here is vectorised (batched matmuls, a running maximum instead of a growing set).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from losses.nt_xent import nt_xent_unit_rows

MODES = ("mak", "kcenter", "proximity", "tailness_proximity", "random")


def _unit(x, device) -> torch.Tensor:
    """Rows of ``x`` (array, memmap or tensor) on ``device`` in float32, each divided by max(||row||, 1e-12)."""
    if isinstance(x, torch.Tensor):
        t = x.detach().to(device=device, dtype=torch.float32)
    else:  # np.array copies, so a read-only memmap is read once and never handed to torch as is
        t = torch.from_numpy(np.array(x, dtype=np.float32)).to(device)
    return F.normalize(t, dim=-1)


def ecle(projections: Sequence, temperature: float = 0.2, batch_size: int = 512, repeats: int = 10,
         seed: int = 0, device: str | torch.device = "cpu", chunk_batches: int = 32) -> np.ndarray:
    r"""Empirical contrastive loss expectation (ECLE, MAK's tailness) of each of N pool items: (N,) float64.

    ``projections``: R >= 2 arrays or tensors (N, d), the projection-head outputs of R augmented passes.
    For every pair of passes (a, b), a < b, in the order (0,1), (0,2), ..., (1,2), ..., and every one of
    ``repeats`` repeats, the N items are randomly permuted and cut into consecutive batches of B =
    ``batch_size``; when B does not divide N the last batch is instead the permutation's last B items, and
    only those not in an earlier batch keep their loss (the release's ``random_order[N-B:]`` with offset
    ``i*B-(N-B)``). Each item thus gets exactly one loss per (pair, repeat), ``losses.nt_xent_per_item``
    with pass a as z1 and pass b as z2, and

    .. math:: \mathrm{ECLE}_n = \frac{1}{P \cdot \text{repeats}} \sum_{(a,b)} \sum_r \ell_n^{(a,b,r)},
              \quad P = R(R-1)/2.

    Randomness: one CPU ``torch.Generator`` seeded with ``seed`` draws ``torch.randperm(N)`` once per
    (pair, repeat), pair-major, repeat-minor, so the result does not depend on ``device``. If N < B, one
    batch holds all N items (the release asserts N >= B instead); the permutations are still drawn.
    Losses are computed in float32 and summed in float64. Only two (N, d) passes sit on ``device`` at a
    time (memory-mapped inputs are read one pass at a time); the full batches of one (pair, repeat) go
    through batched matmuls ``chunk_batches`` batches at a time.
    """
    views = list(projections)
    if len(views) < 2:
        raise ValueError(f"ECLE needs at least 2 augmented passes, got {len(views)}")
    shape = tuple(views[0].shape)
    if len(shape) != 2 or shape[0] < 1:
        raise ValueError(f"each pass must be a non-empty (N, d) array, got shape {shape}")
    for r, v in enumerate(views):
        if tuple(v.shape) != shape:
            raise ValueError(f"pass {r} has shape {tuple(v.shape)}, pass 0 has {shape}")
    if temperature <= 0 or batch_size < 1 or repeats < 1 or chunk_batches < 1:
        raise ValueError(f"need temperature > 0, batch_size, repeats and chunk_batches >= 1; got "
                         f"{temperature}, {batch_size}, {repeats}, {chunk_batches}")
    n = shape[0]
    b = min(batch_size, n)
    full, rest = divmod(n, b)
    offset = b - rest if rest else 0  # items of the last batch already covered by the full batches
    pairs = [(i, j) for i in range(len(views)) for j in range(i + 1, len(views))]
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros(n, dtype=torch.float64, device=device)
    loaded: dict[int, torch.Tensor] = {}
    with torch.no_grad():
        for pa, pb in pairs:
            loaded = {i: u for i, u in loaded.items() if i in (pa, pb)}  # drop first: two passes at most
            for i in (pa, pb):
                if i not in loaded:
                    loaded[i] = _unit(views[i], device)
            ua, ub = loaded[pa], loaded[pb]
            for _ in range(repeats):
                perm = torch.randperm(n, generator=generator).to(device)
                index = torch.cat([perm[:full * b], perm[n - b:]]) if rest else perm
                index = index.view(-1, b)
                losses = torch.empty(index.shape, device=device)
                for c in range(0, index.shape[0], chunk_batches):
                    ib = index[c:c + chunk_batches]
                    losses[c:c + chunk_batches] = nt_xent_unit_rows(ua[ib], ub[ib], temperature)
                index, losses = index.reshape(-1), losses.reshape(-1)
                if offset:
                    keep = torch.ones(index.numel(), dtype=torch.bool, device=device)
                    keep[full * b:full * b + offset] = False
                    index, losses = index[keep], losses[keep]
                total[index] += losses.double()  # indices are unique: each item once per (pair, repeat)
    return (total / (len(pairs) * repeats)).cpu().numpy()


def zscore(x) -> np.ndarray:
    """(x - mean) / std with the population std (np.std, as the release); a constant vector gives zeros."""
    x = np.asarray(x, dtype=np.float64)
    std = x.std()
    return (x - x.mean()) / std if std > 0 else np.zeros_like(x)


def fit_centroids(id_features, num_clusters: int = 10, seed: int = 0) -> np.ndarray:
    """k-means centroids of the ID set, L2-normalised: (num_clusters, d) float32.

    sklearn ``KMeans(num_clusters, random_state=seed, n_init=10)`` on the L2-normalised (float32, as
    ``F.normalize``) ID backbone features; the centroids are then normalised too.
    """
    from sklearn.cluster import KMeans  # imported here: only this function needs it

    ids = _unit(id_features, "cpu")
    if ids.dim() != 2:
        raise ValueError(f"ID features must be (N, d), got shape {tuple(ids.shape)}")
    if not 1 <= num_clusters <= ids.shape[0]:
        raise ValueError(f"num_clusters must be in [1, {ids.shape[0]}] (the number of ID items), got {num_clusters}")
    kmeans = KMeans(n_clusters=num_clusters, random_state=seed, n_init=10).fit(ids.numpy())
    return _unit(kmeans.cluster_centers_, "cpu").numpy()


def centroid_distance(pool_features, centroids, device: str | torch.device = "cpu", chunk: int = 65536) -> np.ndarray:
    r"""MAK's proximity of each pool item, (M,) float64: with u the normalised pool feature and c the
    (normalised) centroids,

    .. math:: \mathrm{dist}(u) = 1 - \max_c \cos(u, c),

    computed ``chunk`` pool items at a time on ``device`` (so a pool may be streamed in blocks).
    """
    centroids = _unit(centroids, device)
    if len(pool_features.shape) != 2 or pool_features.shape[1] != centroids.shape[1]:
        raise ValueError(f"pool features must be (M, {centroids.shape[1]}), got shape {tuple(pool_features.shape)}")
    distance = []
    with torch.no_grad():
        for start in range(0, pool_features.shape[0], chunk):
            u = _unit(pool_features[start:start + chunk], device)
            distance.append((1 - (u @ centroids.T).amax(dim=1)).cpu())
    return torch.cat(distance).double().numpy() if distance else np.zeros(0)


def proximity(id_features, pool_features, num_clusters: int = 10, seed: int = 0,
              device: str | torch.device = "cpu", chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Distance of each pool item to the ID set: ((M,) float64 distances, (num_clusters, d) centroids);
    ``fit_centroids`` then ``centroid_distance``."""
    centroids = fit_centroids(id_features, num_clusters, seed)
    return centroid_distance(pool_features, centroids, device, chunk), centroids


def mak_score(ecle_values, distance, loss_weight: float = 0.5) -> np.ndarray:
    """MAK's score, high = wanted: ``a * zscore(ecle) - (1 - a) * zscore(distance)``, a = ``loss_weight``
    (tail-like items have a high ECLE, in-domain items a small distance)."""
    ecle_values, distance = np.asarray(ecle_values), np.asarray(distance)
    if ecle_values.shape != distance.shape:
        raise ValueError(f"ECLE has shape {ecle_values.shape}, distance {distance.shape}")
    return loss_weight * zscore(ecle_values) - (1 - loss_weight) * zscore(distance)


def top_candidates(score, sampling_num: int, core_sample_ratio: float = 1.5) -> np.ndarray:
    """Positions of the n = floor(core_sample_ratio * sampling_num) highest scores (all items if n exceeds
    them), in ascending score order: ``np.argsort(score, kind="stable")[-n:]``, int64.

    A ratio below 1 is refused: it would leave fewer candidates than the budget ``sampling_num``.
    """
    score = np.asarray(score)
    if not 0 < sampling_num <= len(score):
        raise ValueError(f"sampling_num must be in [1, {len(score)}] (the pool size), got {sampling_num}")
    if core_sample_ratio < 1:
        raise ValueError(f"core_sample_ratio must be >= 1 (fewer candidates than the budget), got {core_sample_ratio}")
    n = min(int(core_sample_ratio * sampling_num), len(score))
    return np.argsort(score, kind="stable")[-n:].astype(np.int64)


def _gram(x: torch.Tensor, block: int, tile: int = 128) -> torch.Tensor:
    """x @ x.T computed block-row by block-row on and right of the diagonal (about half the products), the
    rest filled by transposition. On the CPU the transposed copy goes in small tiles: a whole strided block
    copy is several times slower (cache misses, and thread start-up on a busy machine)."""
    c = x.shape[0]
    g = torch.empty(c, c, dtype=x.dtype, device=x.device)
    step = tile if x.device.type == "cpu" else block
    for i in range(0, c, block):
        torch.mm(x[i:i + block], x[i:].T, out=g[i:i + block, i:])
        end = min(i + block, c)
        for r in range(i, end, step):
            r2 = min(r + step, end)
            for q in range(0, i, step):
                q2 = min(q + step, i)
                g[r:r2, q:q2] = g[q:q2, r:r2].T
    return g


def k_center_greedy(candidates, covered, k: int, device: str | torch.device = "cpu", chunk: int = 4096,
                    gram_max_bytes: int = 2 ** 31) -> np.ndarray:
    r"""Greedy K-center (farthest-first) by cosine similarity: (k,) int64 candidate positions in pick order.

    Rows of ``candidates`` (C, d) and ``covered`` (N, d), N may be 0, are L2-normalised (float32). With
    ``best[j]`` the largest similarity of candidate j to anything covered (the covered set and the
    candidates picked so far), each step picks the unpicked j with the smallest ``best[j]`` (ties: lowest
    index, as ``torch.argmin``) and updates

    .. math:: best \leftarrow \max(best, \; \mathrm{sim}(\text{candidates}, \text{picked})).

    A running ``best`` replaces the release's re-concatenated covered set (O(K C (N+K) d)): the initial
    ``best`` costs C N d (chunked matmuls, ``chunk`` rows a side), each step one candidate row. That row
    comes from the candidate Gram matrix, computed once (about C^2 d / 2) when its C^2 * 4 bytes fit in
    ``gram_max_bytes``, otherwise from a (C, d) matrix-vector product per step (memory-bound); both are
    exact. If k >= C every candidate is taken: ``arange(C)``.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    x = _unit(candidates, device)
    if x.dim() != 2:
        raise ValueError(f"candidates must be (C, d), got shape {tuple(x.shape)}")
    c = x.shape[0]
    if k >= c:
        return np.arange(c, dtype=np.int64)
    y = x[:0] if covered is None or len(covered) == 0 else _unit(covered, device)
    if y.dim() != 2 or y.shape[1] != x.shape[1]:
        raise ValueError(f"covered must be (N, {x.shape[1]}), got shape {tuple(y.shape)}")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError("features must be finite")
    picks = np.empty(k, dtype=np.int64)
    with torch.no_grad():
        best = torch.full((c,), float("-inf"), device=x.device)
        for i in range(0, c, chunk):
            for j in range(0, y.shape[0], chunk):
                torch.maximum(best[i:i + chunk], (x[i:i + chunk] @ y[j:j + chunk].T).amax(dim=1),
                              out=best[i:i + chunk])
        gram = _gram(x, chunk) if c * c * 4 <= gram_max_bytes else None
        if x.device.type == "cpu":  # numpy: far less per-call overhead than torch on (C,) vectors
            best_np = best.numpy()
            gram_np = gram.numpy() if gram is not None else None
            for step in range(k):
                p = int(best_np.argmin())
                picks[step] = p
                np.maximum(best_np, gram_np[p] if gram_np is not None else (x @ x[p]).numpy(), out=best_np)
                best_np[p] = np.inf
        else:
            for step in range(k):
                p = int(torch.argmin(best))
                picks[step] = p
                torch.maximum(best, gram[p] if gram is not None else x @ x[p], out=best)
                best[p] = float("inf")
    return picks


def random_subset(pool_size: int, k: int, seed: int = 0) -> np.ndarray:
    """k distinct pool positions drawn uniformly (``np.random.default_rng(seed).choice(pool_size, k,
    replace=False)``), sorted, int64."""
    if not 0 < k <= pool_size:
        raise ValueError(f"k must be in [1, {pool_size}] (the pool size), got {k}")
    return np.sort(np.random.default_rng(seed).choice(pool_size, k, replace=False)).astype(np.int64)


def select(ecle_values, distance, pool_features, id_features, sampling_num: int, mode: str,
           loss_weight: float = 0.5, core_sample_ratio: float = 1.5, seed: int = 0,
           device: str | torch.device = "cpu") -> np.ndarray:
    """Pool positions (int64, unique) of the ``sampling_num`` items chosen by ``mode``:

    - ``mak``: score = mak_score(ecle, distance, loss_weight); candidates = top_candidates(score,
      sampling_num, core_sample_ratio); K-center over the candidates' pool (backbone) features with the ID
      (backbone) features as covered; pick order. With no more candidates than the budget, all of them.
    - ``kcenter``: K-center over the whole pool, ID covered; pick order.
    - ``proximity``: a = 0 and ratio 1: the sampling_num smallest distances, ascending score.
    - ``tailness_proximity``: a = loss_weight and ratio 1: the top scores, no K-center; ascending score.
    - ``random``: random_subset(pool size, sampling_num, seed); sorted.

    Inputs a mode does not use may be None (ecle for proximity, kcenter, random; distance for kcenter,
    random; features for proximity, tailness_proximity, random).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}, expected one of {', '.join(MODES)}")
    needs = {"mak": ("ecle", "distance", "pool_features", "id_features"),
             "kcenter": ("pool_features", "id_features"),
             "proximity": ("distance",),
             "tailness_proximity": ("ecle", "distance"),
             "random": ()}[mode]
    given = {"ecle": ecle_values, "distance": distance, "pool_features": pool_features, "id_features": id_features}
    missing = [name for name in needs if given[name] is None]
    if missing:
        raise ValueError(f"mode {mode!r} needs {', '.join(missing)}")
    sizes = {name: len(given[name]) for name in ("ecle", "distance", "pool_features") if given[name] is not None}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"pool inputs disagree on the pool size: {sizes}")
    if not sizes:
        raise ValueError("need at least one of ecle, distance, pool_features to know the pool size")
    pool_size = next(iter(sizes.values()))
    if not 0 < sampling_num <= pool_size:
        raise ValueError(f"sampling_num must be in [1, {pool_size}] (the pool size), got {sampling_num}")
    if mode == "random":
        return random_subset(pool_size, sampling_num, seed)
    if mode == "kcenter":
        return k_center_greedy(pool_features, id_features, sampling_num, device=device)
    if mode == "proximity":
        return top_candidates(-zscore(distance), sampling_num, 1.0)
    score = mak_score(ecle_values, distance, loss_weight)
    if mode == "tailness_proximity":
        return top_candidates(score, sampling_num, 1.0)
    candidates = top_candidates(score, sampling_num, core_sample_ratio)
    if len(candidates) <= sampling_num:
        return candidates
    if isinstance(pool_features, torch.Tensor):
        features = pool_features[torch.as_tensor(candidates, device=pool_features.device)]
    else:  # fancy indexing reads only the candidates' rows of a memmap
        features = pool_features[candidates]
    return candidates[k_center_greedy(features, id_features, sampling_num, device=device)]
