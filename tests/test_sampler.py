import pytest
import torch

from data.sampler import EpochSampler


def test_ranks_split_each_global_batch_like_one_process():
    single = EpochSampler(23, 6, world_size=1, rank=0, seed=3)
    ranks = [EpochSampler(23, 6, world_size=2, rank=r, seed=3) for r in range(2)]
    for epoch in (1, 2):
        for s in [single, *ranks]:
            s.set_epoch(epoch)
        order, seeds = single.epoch_order()
        parts = [s.epoch_order() for s in ranks]
        assert len(order) == 18 and len(single) == 18 and all(len(s) == 9 for s in ranks)
        for k in range(3):  # global batch k = rank 0's k-th local batch, then rank 1's
            glued = torch.cat([p[0][k * 3:(k + 1) * 3] for p in parts])
            assert torch.equal(glued, order[k * 6:(k + 1) * 6])
            glued_seeds = torch.cat([p[1][k * 3:(k + 1) * 3] for p in parts])
            assert torch.equal(glued_seeds, seeds[k * 6:(k + 1) * 6])
        assert len(set(order.tolist())) == 18


def test_epochs_differ_and_repeat():
    a, b = EpochSampler(50, 10, seed=0), EpochSampler(50, 10, seed=0)
    a.set_epoch(1), b.set_epoch(1)
    assert list(a) == list(b)
    b.set_epoch(2)
    assert list(a) != list(b)


def test_clear_errors():
    with pytest.raises(ValueError, match="does not divide"):
        EpochSampler(100, 10, world_size=3)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        EpochSampler(5, 10)


def test_strengths_travel_in_the_keys_and_follow_the_order():
    s = EpochSampler(20, 4, world_size=2, rank=1, seed=5)
    s.set_epoch(3)
    plain = list(s)
    strengths = torch.linspace(0, 1, 20)
    s.set_strengths(strengths)
    keys = list(s)
    assert [k[:2] for k in keys] == plain  # the same order and seeds as without strengths
    assert all(strength == strengths[index].item() for index, _, strength in keys)
    order, _ = s.epoch_order()
    assert torch.equal(s.epoch_strengths(), strengths[order])
    strengths[:] = 0  # the sampler keeps its own copy
    assert list(s) == keys
    s.set_strengths(None)
    assert list(s) == plain and s.epoch_strengths() is None


def test_bad_strengths_are_refused():
    s = EpochSampler(10, 5)
    with pytest.raises(ValueError, match="9 RandAugment strengths for 10 items"):
        s.set_strengths(torch.zeros(9))
    for bad in (torch.full((10,), 1.5), torch.full((10,), float("nan"))):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            s.set_strengths(bad)
    assert s.strengths is None
