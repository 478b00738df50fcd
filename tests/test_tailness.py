import math

import pytest
import torch

from losses import nt_xent_logits
from sampling.tailness import TailnessTracker, raw_tailness


def brute_force_tailness(z1, z2, t, k):
    """Straight from the definition, one image and one probability at a time."""
    u = torch.nn.functional.normalize(torch.cat([z1, z2]).double(), dim=1)
    b = z1.shape[0]
    scores = []
    for m in range(b):
        probs = []
        for a, pos in ((m, m + b), (m + b, m)):
            denominator = sum(math.exp(float(u[a] @ u[j]) / t) for j in range(2 * b) if j != a)
            probs.append({j: math.exp(float(u[a] @ u[j]) / t) / denominator
                          for j in range(2 * b) if j not in (m, m + b)})
        averaged = sorted(((probs[0][j] + probs[1][j]) / 2 for j in probs[0]), reverse=True)
        scores.append(sum(averaged[:k]))
    return torch.tensor(scores, dtype=torch.float64)


@pytest.mark.parametrize("b,k,t", [(4, 1, 0.5), (5, 3, 0.2), (6, 10, 0.2)])
def test_raw_tailness_matches_brute_force(b, k, t):
    g = torch.Generator().manual_seed(b)
    z1, z2 = torch.randn(b, 8, generator=g), torch.randn(b, 8, generator=g)
    logits, _ = nt_xent_logits(z1, z2, t)
    torch.testing.assert_close(raw_tailness(logits, k).double(), brute_force_tailness(z1, z2, t, k),
                               rtol=1e-5, atol=1e-6)


def test_crowded_images_score_higher_than_isolated_ones():
    crowd = torch.tensor([[1.0, 0.0]]).repeat(4, 1) + 0.01 * torch.randn(4, 2)
    loner = torch.tensor([[-1.0, 0.0]])
    z = torch.cat([crowd, loner])
    scores = raw_tailness(nt_xent_logits(z, z, 0.2)[0], k=2)
    assert scores[:4].min() > scores[4]


def test_k_larger_than_the_negatives_is_an_error():
    logits, _ = nt_xent_logits(torch.randn(3, 4), torch.randn(3, 4), 0.2)
    with pytest.raises(ValueError, match="exceeds the 4 negatives"):
        raw_tailness(logits, 5)


def test_ema_matches_its_closed_form():
    beta = 0.9
    tracker = TailnessTracker(4, beta=beta)
    sightings = {0: [(1, 0.5), (2, 0.1), (4, 0.7)], 1: [(2, 0.3)], 2: [(1, 0.2), (3, 0.9)]}  # sample 3 unseen
    for epoch in range(1, 5):
        batch = [(i, r) for i, seen in sightings.items() for e, r in seen if e == epoch]
        if batch:
            tracker.update(torch.tensor([i for i, _ in batch]), torch.tensor([r for _, r in batch]), epoch)
    for i, seen in sightings.items():
        raws = [r for _, r in seen]
        n = len(raws)
        closed = beta ** (n - 1) * raws[0] + sum((1 - beta) * beta ** (n - 1 - j) * raws[j] for j in range(1, n))
        assert math.isclose(tracker.scores[i].item(), closed, rel_tol=1e-6)
        assert tracker.last_seen[i].item() == seen[-1][0]
    assert math.isnan(tracker.scores[3].item()) and tracker.last_seen[3].item() == -1


def test_state_round_trip():
    tracker = TailnessTracker(3, beta=0.5)
    tracker.update(torch.tensor([0, 2]), torch.tensor([1.0, 2.0]), epoch=1)
    other = TailnessTracker(3, beta=0.97)
    other.load_state_dict(tracker.state_dict())
    assert torch.equal(other.scores.nan_to_num(-1), tracker.scores.nan_to_num(-1)) and other.beta == 0.5
    with pytest.raises(ValueError, match="for 3 samples"):
        TailnessTracker(4).load_state_dict(tracker.state_dict())


@pytest.mark.cuda
def test_tailness_and_its_ema_on_the_accelerator_equal_the_cpu(accelerator):
    """512 pairs of 128-d embeddings (the papers' batch), k = 10, t = 0.2, then three EMA updates over
    overlapping index sets: within 1e-6 absolute (scores are sums of ten probabilities below 1)."""
    g = torch.Generator().manual_seed(7)
    z1, z2 = torch.randn(512, 128, generator=g), torch.randn(512, 128, generator=g)
    trackers = {}
    raws = {}
    for device in (torch.device("cpu"), accelerator):
        logits, _ = nt_xent_logits(z1.to(device), z2.to(device), 0.2)
        raws[device] = raw = raw_tailness(logits, 10)
        tracker = TailnessTracker(1000, beta=0.97, device=device)
        for epoch, start in enumerate((0, 300, 488), start=1):
            tracker.update(torch.arange(start, start + 512), raw, epoch)
        trackers[device] = tracker
    cpu, ours = trackers[torch.device("cpu")], trackers[accelerator]
    assert raws[accelerator].device.type == accelerator.type
    torch.testing.assert_close(raws[accelerator].cpu(), raws[torch.device("cpu")], rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.scores.cpu(), cpu.scores, rtol=0, atol=1e-6, equal_nan=True)
    assert torch.equal(ours.last_seen.cpu(), cpu.last_seen)
