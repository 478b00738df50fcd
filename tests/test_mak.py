import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans

from sampling import mak
from tests.test_nt_xent import brute_nt_xent


def brute_ecle(views, t, batch_size, repeats, seed):
    """Loop over pairs, repeats, batches and items, drawing the permutations in the documented order."""
    n = views[0].shape[0]
    b = min(batch_size, n)
    g = torch.Generator().manual_seed(seed)
    total = np.zeros(n)
    count = 0
    for pa in range(len(views)):
        for pb in range(pa + 1, len(views)):
            for _ in range(repeats):
                order = torch.randperm(n, generator=g)
                losses = {}
                for i in range(math.ceil(n / b)):
                    if (i + 1) * b < n:
                        idx, offset = order[i * b:(i + 1) * b], 0
                    else:
                        idx, offset = order[n - b:], i * b - (n - b)
                    batch = brute_nt_xent(torch.as_tensor(views[pa])[idx], torch.as_tensor(views[pb])[idx], t)
                    for pos in range(offset, b):
                        item = int(idx[pos])
                        assert item not in losses
                        losses[item] = float(batch[pos])
                assert len(losses) == n
                for item, value in losses.items():
                    total[item] += value
                count += 1
    return total / count


@pytest.mark.parametrize("n,batch_size", [(37, 8), (32, 8), (5, 8)])
def test_ecle_matches_brute_force(n, batch_size):
    rng = np.random.default_rng(n)
    views = [rng.standard_normal((n, 4)).astype(np.float32) for _ in range(3)]
    got = mak.ecle(views, temperature=0.2, batch_size=batch_size, repeats=2, seed=3, chunk_batches=2)
    assert got.shape == (n,) and got.dtype == np.float64
    np.testing.assert_allclose(got, brute_ecle(views, 0.2, batch_size, 2, 3), rtol=1e-5, atol=1e-5)


def test_ecle_accepts_tensors_and_memmaps(tmp_path):
    rng = np.random.default_rng(1)
    views = [rng.standard_normal((20, 4)).astype(np.float32) for _ in range(2)]
    path = tmp_path / "v.npy"
    np.save(path, np.stack(views))
    mapped = np.load(path, mmap_mode="r")
    expected = mak.ecle(views, batch_size=8, repeats=2)
    np.testing.assert_allclose(mak.ecle([mapped[0], mapped[1]], batch_size=8, repeats=2), expected)
    np.testing.assert_allclose(mak.ecle([torch.from_numpy(v) for v in views], batch_size=8, repeats=2), expected)


def test_ecle_errors():
    with pytest.raises(ValueError, match="at least 2"):
        mak.ecle([np.zeros((4, 3))])
    with pytest.raises(ValueError, match="shape"):
        mak.ecle([np.zeros((4, 3)), np.zeros((5, 3))])


def test_proximity_matches_brute_force_and_sklearn():
    rng = np.random.default_rng(0)
    ids = rng.standard_normal((30, 5)).astype(np.float32)
    pool = rng.standard_normal((23, 5)).astype(np.float32)
    distance, centroids = mak.proximity(ids, pool, num_clusters=3, seed=1, chunk=7)
    assert distance.shape == (23,) and centroids.shape == (3, 5)
    reference = KMeans(n_clusters=3, random_state=1, n_init=10).fit(F.normalize(torch.from_numpy(ids), dim=1).numpy())
    expected_centroids = reference.cluster_centers_ / np.linalg.norm(reference.cluster_centers_, axis=1, keepdims=True)
    np.testing.assert_allclose(centroids, expected_centroids, rtol=1e-5, atol=1e-6)
    for m in range(23):
        u = pool[m].astype(np.float64) / np.linalg.norm(pool[m])
        best = max(float(u @ c) for c in centroids.astype(np.float64))
        assert distance[m] == pytest.approx(1 - best, abs=1e-6)
    with pytest.raises(ValueError, match="num_clusters"):
        mak.proximity(ids, pool, num_clusters=31)


def test_zscore_and_mak_score():
    x = np.array([1.0, 2.0, 4.0, 7.0])
    np.testing.assert_allclose(mak.zscore(x), (x - x.mean()) / np.std(x))
    np.testing.assert_array_equal(mak.zscore(np.full(5, 3.0)), np.zeros(5))
    e, d = np.array([0.5, 0.1, 0.9, 0.3]), np.array([0.2, 0.4, 0.1, 0.8])
    np.testing.assert_allclose(mak.mak_score(e, d, 0.3), 0.3 * mak.zscore(e) - 0.7 * mak.zscore(d))


def test_top_candidates():
    score = np.random.default_rng(0).standard_normal(20)
    got = mak.top_candidates(score, 7, 1.5)
    assert len(got) == 10 and got.dtype == np.int64  # int(10.5) rounds down
    np.testing.assert_array_equal(got, np.argsort(score)[-10:])
    assert np.all(np.diff(score[got]) > 0)
    np.testing.assert_array_equal(mak.top_candidates(score, 15, 2.0), np.argsort(score))  # capped at the pool
    for bad in [dict(sampling_num=0), dict(sampling_num=21), dict(sampling_num=5, core_sample_ratio=0.9)]:
        with pytest.raises(ValueError):
            mak.top_candidates(score, **bad)


def brute_k_center(candidates, covered, k):
    """Recompute every unpicked candidate's largest similarity to the whole covered set at every step."""
    x = F.normalize(torch.as_tensor(candidates).double(), dim=1)
    covered_set = [F.normalize(torch.as_tensor(covered).double(), dim=1)[i] for i in range(len(covered))]
    picks = []
    for _ in range(k):
        best_value, best_j = None, None
        for j in range(len(x)):
            if j in picks:
                continue
            value = max((float(x[j] @ c) for c in covered_set), default=-math.inf)
            if best_value is None or value < best_value:
                best_value, best_j = value, j
        picks.append(best_j)
        covered_set.append(x[best_j])
    return picks


@pytest.mark.parametrize("gram_max_bytes", [2 ** 31, 0])  # Gram rows / matrix-vector products
@pytest.mark.parametrize("seed,c,n,k", [(0, 25, 10, 8), (1, 30, 0, 12), (2, 20, 40, 19), (3, 15, 5, 1)])
def test_k_center_matches_brute_force(seed, c, n, k, gram_max_bytes):
    rng = np.random.default_rng(seed)
    candidates = rng.standard_normal((c, 6)).astype(np.float32)
    covered = rng.standard_normal((n, 6)).astype(np.float32)
    got = mak.k_center_greedy(candidates, covered, k, chunk=7, gram_max_bytes=gram_max_bytes)
    assert got.dtype == np.int64 and len(got) == k and len(set(got.tolist())) == k
    assert got.tolist() == brute_k_center(candidates, covered, k)


def test_k_center_edge_cases():
    basis = np.eye(6, dtype=np.float32)  # all similarities exactly 0: ties go to the lowest index
    np.testing.assert_array_equal(mak.k_center_greedy(basis, np.zeros((0, 6)), 4), [0, 1, 2, 3])
    np.testing.assert_array_equal(mak.k_center_greedy(basis, None, 4, gram_max_bytes=0), [0, 1, 2, 3])
    np.testing.assert_array_equal(mak.k_center_greedy(basis[:3], basis, 5), [0, 1, 2])  # k >= C: all
    np.testing.assert_array_equal(mak.k_center_greedy(torch.from_numpy(basis), basis[:2], 6), np.arange(6))
    with pytest.raises(ValueError):
        mak.k_center_greedy(basis, basis, 0)
    with pytest.raises(ValueError):
        mak.k_center_greedy(basis, np.zeros((3, 5)), 2)


def test_random_subset():
    got = mak.random_subset(50, 10, seed=4)
    assert got.dtype == np.int64 and len(set(got.tolist())) == 10 and got.min() >= 0 and got.max() < 50
    assert np.all(np.diff(got) > 0)
    np.testing.assert_array_equal(got, mak.random_subset(50, 10, seed=4))
    assert not np.array_equal(got, mak.random_subset(50, 10, seed=5))
    for k in (0, 51):
        with pytest.raises(ValueError):
            mak.random_subset(50, k)


@pytest.fixture
def pool():
    rng = np.random.default_rng(7)
    m = 40
    return dict(ecle_values=rng.random(m), distance=rng.random(m),
                pool_features=rng.standard_normal((m, 6)).astype(np.float32),
                id_features=rng.standard_normal((12, 6)).astype(np.float32))


def test_select_ablations(pool):
    k = 8
    got = mak.select(**pool, sampling_num=k, mode="proximity")
    assert set(got.tolist()) == set(np.argsort(pool["distance"])[:k].tolist())
    got = mak.select(**dict(pool, ecle_values=None), sampling_num=k, mode="proximity")
    assert set(got.tolist()) == set(np.argsort(pool["distance"])[:k].tolist())

    score = mak.mak_score(pool["ecle_values"], pool["distance"], 0.3)
    got = mak.select(**pool, sampling_num=k, mode="tailness_proximity", loss_weight=0.3)
    assert set(got.tolist()) == set(np.argsort(score)[-k:].tolist())

    got = mak.select(**pool, sampling_num=k, mode="mak", loss_weight=0.3, core_sample_ratio=2.0)
    candidates = np.argsort(score)[-16:]
    assert len(set(got.tolist())) == k and set(got.tolist()) <= set(candidates.tolist())
    expected = brute_k_center(pool["pool_features"][candidates], pool["id_features"], k)
    np.testing.assert_array_equal(got, candidates[expected])
    # no more candidates than the budget: all of them, no K-center
    got = mak.select(**pool, sampling_num=k, mode="mak", core_sample_ratio=1.0)
    assert set(got.tolist()) == set(np.argsort(mak.mak_score(pool["ecle_values"], pool["distance"]))[-k:].tolist())

    got = mak.select(**dict(pool, ecle_values=None, distance=None), sampling_num=k, mode="kcenter")
    np.testing.assert_array_equal(got, brute_k_center(pool["pool_features"], pool["id_features"], k))

    got = mak.select(None, None, pool["pool_features"], None, sampling_num=k, mode="random", seed=2)
    np.testing.assert_array_equal(got, mak.random_subset(40, k, seed=2))
    assert len(set(got.tolist())) == k and 0 <= got.min() and got.max() < 40


def test_select_with_tensor_features(pool):
    expected = mak.select(**pool, sampling_num=6, mode="mak")
    tensors = dict(pool, pool_features=torch.from_numpy(pool["pool_features"]),
                   id_features=torch.from_numpy(pool["id_features"]))
    np.testing.assert_array_equal(mak.select(**tensors, sampling_num=6, mode="mak"), expected)


def test_select_errors(pool):
    with pytest.raises(ValueError, match="pool size"):
        mak.select(**pool, sampling_num=41, mode="mak")
    with pytest.raises(ValueError, match="pool size"):
        mak.select(**pool, sampling_num=41, mode="kcenter")
    with pytest.raises(ValueError, match="ecle"):
        mak.select(**dict(pool, ecle_values=None), sampling_num=5, mode="mak")
    with pytest.raises(ValueError, match="ecle"):
        mak.select(**dict(pool, ecle_values=None), sampling_num=5, mode="tailness_proximity")
    with pytest.raises(ValueError, match="unknown mode"):
        mak.select(**pool, sampling_num=5, mode="best")
    with pytest.raises(ValueError, match="disagree"):
        mak.select(**dict(pool, distance=pool["distance"][:-1]), sampling_num=5, mode="mak")


def assert_same_greedy_picks(ours, reference, candidates, covered, tie=1e-5):
    """Equal pick sequences, or sequences that part at a near-tie: where they first differ, both picks'
    largest similarity to what was covered then (float64) lies within ``tie`` of each other."""
    ours, reference = np.asarray(ours), np.asarray(reference)
    if np.array_equal(ours, reference):
        return
    s = int(np.flatnonzero(ours != reference)[0])
    x = F.normalize(torch.as_tensor(candidates, dtype=torch.float64), dim=1)
    y = torch.cat([F.normalize(torch.as_tensor(covered, dtype=torch.float64), dim=1), x[reference[:s]]])
    best = (x[[ours[s], reference[s]]] @ y.T).amax(dim=1)
    assert abs(best[0] - best[1]) < tie, f"picks part at step {s} without a tie: {best.tolist()}"


@pytest.mark.cuda
@pytest.mark.parametrize("gram_max_bytes", [2 ** 31, 0], ids=["gram", "matvec"])
def test_k_center_on_the_accelerator_equals_the_cpu(accelerator, gram_max_bytes):
    """K = 300 of 2,000 candidates with 1,500 covered at d = 64, both per-step paths: the same picks in the
    same order (or the same up to a near-tie, assert_same_greedy_picks)."""
    rng = np.random.default_rng(11)
    candidates = rng.standard_normal((2000, 64)).astype(np.float32)
    covered = rng.standard_normal((1500, 64)).astype(np.float32)
    cpu = mak.k_center_greedy(candidates, covered, 300, chunk=512, gram_max_bytes=gram_max_bytes)
    ours = mak.k_center_greedy(candidates, covered, 300, device=accelerator, chunk=512,
                               gram_max_bytes=gram_max_bytes)
    assert len(np.unique(ours)) == 300
    assert_same_greedy_picks(ours, cpu, candidates, covered)


@pytest.mark.cuda
def test_ecle_and_proximity_on_the_accelerator_equal_the_cpu(accelerator):
    """ECLE of 3,000 items, R = 4 passes, 3 repeats, batch 512 (a partial last batch), t = 0.2: within 1e-4
    relative (float32 exps and sums, summed in float64). Distances to 10 centroids: within 1e-6."""
    rng = np.random.default_rng(12)
    views = [rng.standard_normal((3000, 128)).astype(np.float32) for _ in range(4)]
    cpu = mak.ecle(views, temperature=0.2, batch_size=512, repeats=3, seed=4)
    ours = mak.ecle(views, temperature=0.2, batch_size=512, repeats=3, seed=4, device=accelerator)
    np.testing.assert_allclose(ours, cpu, rtol=1e-4, atol=0)
    pool = rng.standard_normal((5000, 256)).astype(np.float32)
    centroids = rng.standard_normal((10, 256)).astype(np.float32)
    np.testing.assert_allclose(mak.centroid_distance(pool, centroids, device=accelerator, chunk=2048),
                               mak.centroid_distance(pool, centroids, chunk=2048), rtol=0, atol=1e-6)
