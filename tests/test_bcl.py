"""BCL's momentum loss and strengths against the release's formulas, written out independently."""
import numpy as np
import pytest
import torch

from methods import BCL, Batch, SimCLR, boosted_strengths
from methods.base import StepOutput
from models import build_simclr
from tests.multiprocess import run_processes


def release_weights(momentum: np.ndarray) -> np.ndarray:
    """The release's calculate_momentum_weight on one epoch's row, in float64."""
    z = (momentum - momentum.mean()) / momentum.std(ddof=1)
    return z / np.abs(z).max() / 2 + 0.5


def test_strengths_follow_the_release_formula():
    g = np.random.default_rng(0)
    momentum = g.gamma(2.0, 1.0, size=50)
    w = boosted_strengths(torch.tensor(momentum, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(w, release_weights(momentum), rtol=1e-5, atol=1e-6)
    assert w.min() >= 0 and w.max() <= 1 and np.isclose(max(abs(w - 0.5)), 0.5)


def test_unseen_images_and_a_constant_loss_give_the_neutral_strength():
    momentum = torch.tensor([1.0, float("nan"), 3.0, 2.0])
    w = boosted_strengths(momentum)
    assert w[1] == 0.5
    np.testing.assert_allclose(w[[0, 2, 3]].numpy(), release_weights(np.array([1.0, 3.0, 2.0])), rtol=1e-6)
    assert torch.equal(boosted_strengths(torch.full((4,), 2.0)), torch.full((4,), 0.5))
    assert torch.equal(boosted_strengths(torch.full((3,), float("nan"))), torch.full((3,), 0.5))


def fake_output(index, is_ood, losses) -> StepOutput:
    n = len(index)
    batch = Batch(torch.zeros(n, 2, 3, 2, 2), torch.tensor(index), torch.tensor(is_ood))
    return StepOutput(torch.zeros(()), torch.zeros(2 * n, 2), torch.zeros(2 * n, 2 * n), torch.tensor(losses), batch)


def test_momentum_loss_equals_the_release_loop():
    """Every image seen once per epoch, in batches, as the release's sampler does."""
    beta, n, epochs = 0.9, 6, 4
    g = np.random.default_rng(1)
    losses = g.uniform(1, 5, size=(epochs, n))
    orders = [g.permutation(n) for _ in range(epochs)]
    bcl = BCL(n, beta=beta)
    shadow = np.zeros(n)
    for epoch in range(1, epochs + 1):
        order = orders[epoch - 1]
        for batch in (order[:3], order[3:]):
            bcl.step_end(fake_output(batch.tolist(), [False] * 3, losses[epoch - 1, batch].tolist()), epoch)
            for i in batch:  # the release, one image at a time
                new = losses[epoch - 1, i]
                shadow[i] = (1 - beta) * new + beta * shadow[i] if epoch > 1 else new
        bcl.epoch_end(epoch)
        np.testing.assert_allclose(bcl.momentum.values.numpy(), shadow, rtol=1e-6)
        np.testing.assert_allclose(bcl.strengths.numpy(), release_weights(shadow), rtol=1e-5, atol=1e-6)


def test_ood_images_keep_their_own_strength_and_no_momentum():
    bcl = BCL(3, ood_strength=0.25)
    bcl.step_end(fake_output([0, 7, 2], [False, True, False], [1.0, 9.0, 3.0]), epoch=1)
    assert torch.isnan(bcl.momentum.values[1]) and bcl.momentum.values[2] == 3.0
    assert torch.equal(bcl.item_strengths(3), torch.zeros(3))  # epoch 1: plain views
    bcl.epoch_end(1)
    strengths = bcl.item_strengths(5)
    assert strengths.shape == (5,) and torch.equal(strengths[3:], torch.full((2,), 0.25))
    assert strengths[1] == 0.5


def test_state_round_trip():
    bcl = BCL(4, beta=0.8)
    bcl.step_end(fake_output([0, 1, 3], [False] * 3, [1.0, 2.0, 4.0]), epoch=1)
    bcl.epoch_end(1)
    other = BCL(4)
    other.load_state_dict(bcl.state_dict())
    assert torch.equal(other.strengths, bcl.strengths) and other.momentum.beta == 0.8
    assert torch.equal(other.momentum.values.nan_to_num(-1), bcl.momentum.values.nan_to_num(-1))
    with pytest.raises(ValueError, match="is for 4"):
        BCL(5).load_state_dict(bcl.state_dict())


def _momentum(rank, world_size, views, index):
    torch.manual_seed(0)
    model = build_simclr("res18", width=4, output_ch=8).eval()  # eval: BN must not depend on the shard
    b = views.shape[0] // world_size
    part = slice(rank * b, (rank + 1) * b)
    out = SimCLR(model, temperature=0.2).step(Batch(views[part], index[part], torch.zeros(b, dtype=torch.bool)))
    bcl = BCL(10)
    bcl.step_end(out, epoch=1)
    return bcl.momentum.values


def test_two_gloo_processes_track_the_momentum_of_one():
    g = torch.Generator().manual_seed(3)
    views = torch.randint(0, 256, (8, 2, 3, 32, 32), dtype=torch.uint8, generator=g)
    index = torch.tensor([3, 0, 9, 7, 1, 5, 2, 8])
    single = _momentum(0, 1, views, index)
    assert (~torch.isnan(single)).sum() == 8
    for values in run_processes(_momentum, 2, views, index):
        torch.testing.assert_close(values, single, equal_nan=True, rtol=1e-5, atol=1e-6)
