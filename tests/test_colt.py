import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sampling.colt import (COLT, COLTConfig, cluster_budgets, cluster_mean_scores, nearest_unused, select_by_clusters,
                           select_by_neighbours)


def test_budgets_follow_the_formula_and_sum_exactly():
    scores = np.array([0.3, 0.1, 0.5, 0.2])
    for budget, t in [(10000, 1.0), (7, 0.5), (1, 2.0)]:
        shares = cluster_budgets(scores, budget, t)
        z = (scores - scores.mean()) / scores.std(ddof=1)
        weights = np.exp(-z / t) / np.exp(-z / t).sum()
        expected = np.floor(weights * budget).astype(int)
        expected[-1] += budget - expected.sum()
        assert shares.tolist() == expected.tolist() and shares.sum() == budget and (shares >= 0).all()
    assert cluster_budgets(np.full(3, 0.4), 10, 1.0).tolist() == [3, 3, 4]  # equal scores: equal weights
    assert cluster_budgets(np.array([0.4]), 10, 1.0).tolist() == [10]  # one cluster takes everything


def released_budgets(cluster_weight: torch.Tensor, budget: int, temperature: float) -> list[int]:
    """The released rule (COLT train_simCLR.py, sampling step), transcribed in torch: torch.std is unbiased."""
    cluster_weight = -((cluster_weight - torch.mean(cluster_weight)) / torch.std(cluster_weight))
    cluster_weight = F.softmax(cluster_weight / temperature, dim=0)
    cluster_budget = (cluster_weight * budget).to(torch.int64)
    cluster_budget[-1] += int(budget - cluster_budget.sum())
    return cluster_budget.tolist()


def test_budgets_match_the_released_rule():
    g = torch.Generator().manual_seed(0)
    differs_from_population_std = 0
    for trial in range(50):
        scores = torch.rand(10, generator=g, dtype=torch.float64)
        for budget, t in [(10000, 1.0), (10000, 0.5), (777, 2.0)]:
            shares = cluster_budgets(scores.numpy(), budget, t)
            assert shares.tolist() == released_budgets(scores, budget, t)
            z = (scores - scores.mean()) / scores.std(unbiased=False)
            population = np.floor(F.softmax(-z / t, dim=0).numpy() * budget).astype(np.int64)
            differs_from_population_std += int(not np.array_equal(population[:-1], shares[:-1]))
    assert differs_from_population_std > 0  # the test can tell ddof=1 from ddof=0


def brute_force_nearest(centroids, pool, shares):
    u, c = F.normalize(pool, dim=1), F.normalize(centroids, dim=1)
    taken, picks = set(), []
    for cluster, share in enumerate(shares):
        ranked = sorted(range(len(pool)), key=lambda i: -float(u[i] @ c[cluster]))
        chosen = [i for i in ranked if i not in taken][:share]
        taken.update(chosen)
        picks += chosen
    return picks


def test_nearest_unused_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    centroids, pool = torch.randn(4, 6, generator=g), torch.randn(60, 6, generator=g)
    shares = np.array([5, 0, 12, 9])
    picks, owners = nearest_unused(centroids, pool, shares)
    assert picks.tolist() == brute_force_nearest(centroids, pool, shares)
    assert owners.tolist() == [0] * 5 + [2] * 12 + [3] * 9
    assert len(set(picks.tolist())) == 26 and picks.min() >= 0 and picks.max() < 60
    with pytest.raises(ValueError, match="exceeds the OOD pool"):
        nearest_unused(centroids, pool[:20], shares)


def test_cluster_means_skip_unseen_samples():
    assignment = np.array([0, 0, 1, 1, 2])
    scores = np.array([1.0, 3.0, np.nan, 4.0, np.nan])
    assert cluster_mean_scores(assignment, scores, 3).tolist() == [2.0, 4.0, (1 + 3 + 4) / 3]


def test_select_by_clusters_spends_the_budget_on_distinct_items():
    g = torch.Generator().manual_seed(1)
    ids, pool = torch.randn(80, 8, generator=g), torch.randn(300, 8, generator=g)
    scores = torch.rand(80, generator=g).numpy()
    result = select_by_clusters(ids, pool, scores, budget=101, num_clusters=5, temperature=1.0, seed=0)
    assert len(result.ood_indices) == 101 == len(np.unique(result.ood_indices)) == result.budgets.sum()
    assert result.cluster_sizes.sum() == 80 and result.ood_indices.max() < 300
    # the same inputs give the same selection
    again = select_by_clusters(ids, pool, scores, budget=101, num_clusters=5, temperature=1.0, seed=0)
    assert np.array_equal(result.ood_indices, again.ood_indices)
    with pytest.raises(ValueError, match="exceeds the OOD pool"):
        select_by_clusters(ids, pool[:100], scores, budget=101, num_clusters=5, temperature=1.0)


def test_select_by_neighbours_equals_brute_force():
    g = torch.Generator().manual_seed(2)
    ids, pool = torch.randn(30, 5, generator=g), torch.randn(50, 5, generator=g)
    scores = torch.rand(30, generator=g).numpy()
    result = select_by_neighbours(ids, pool, scores, budget=7, k=3, chunk=16)
    u, v = F.normalize(pool, dim=1), F.normalize(ids, dim=1)
    tailness = [-np.mean(scores[np.argsort(-(v @ u[i]).numpy())[:3]]) for i in range(50)]
    assert sorted(result.ood_indices.tolist()) == sorted(np.argsort(tailness)[::-1][:7].tolist())


def test_sampling_epochs():
    config = lambda warmup: COLTConfig(budget=5, warmup=warmup, sample_interval=25, k_largest_logits=3, beta=0.97,
                                       k_means_clusters=2, cluster_temperature=1.0, sup_weight=0.2,
                                       ood_scorer="clusters", ood_knn=3, temperature=0.2, seed=1, pool_size=20)
    state = COLT(10, config(100))
    assert [e for e in range(1, 200) if state.is_sampling_epoch(e)] == [101, 126, 151, 176]
    with pytest.raises(ValueError):
        COLT(10, config(-1))



@pytest.mark.cuda
def test_selection_on_the_accelerator_equals_the_cpu(accelerator):
    """Both rules on 600 clustered ID and 3,000 pool embeddings (64-d), budget 500: the same pool items in
    the same order and the same owners (k-means runs on the CPU either way; similarities in float32 differ
    by about 1e-7, far below the gaps between neighbouring items' similarities)."""
    g = torch.Generator().manual_seed(8)
    centres = torch.randn(10, 64, generator=g)
    ids = centres.repeat_interleave(60, dim=0) + 0.3 * torch.randn(600, 64, generator=g)
    pool = torch.randn(3000, 64, generator=g)
    scores = torch.rand(600, generator=g).numpy()
    scores[::7] = np.nan  # never-seen samples
    cpu = select_by_clusters(ids, pool, scores, 500, 10, 1.0, seed=0)
    ours = select_by_clusters(ids.to(accelerator), pool.to(accelerator), scores, 500, 10, 1.0, seed=0)
    assert np.array_equal(ours.ood_indices, cpu.ood_indices) and np.array_equal(ours.ood_cluster, cpu.ood_cluster)
    assert np.array_equal(ours.budgets, cpu.budgets) and ours.budgets.sum() == 500
    cpu = select_by_neighbours(ids, pool, scores, 500, k=10, chunk=1024)
    ours = select_by_neighbours(ids.to(accelerator), pool.to(accelerator), scores, 500, k=10, chunk=1024)
    # items with the same neighbours tie: compare the chosen items' scores (equal sets up to ties)
    filled = torch.as_tensor(np.where(np.isnan(scores), np.nanmean(scores), scores))
    neighbours = (F.normalize(pool, dim=1) @ F.normalize(ids, dim=1).t()).topk(10, dim=1).indices
    tailness = -filled[neighbours].mean(dim=1).numpy()
    np.testing.assert_allclose(np.sort(tailness[ours.ood_indices]), np.sort(tailness[cpu.ood_indices]), atol=1e-6)
    assert len(np.unique(ours.ood_indices)) == 500
