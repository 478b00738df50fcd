import math

import pytest
import torch
import torch.nn.functional as F

from losses import image_losses, nt_xent, nt_xent_logits, nt_xent_per_item, view_losses
from tests.multiprocess import run_processes


def brute_force_nt_xent(z1, z2, t):
    """One anchor at a time, straight from the formula."""
    u = F.normalize(torch.cat([z1, z2]).double(), dim=1)
    n2 = u.shape[0]
    total = 0.0
    for i in range(n2):
        pos = (i + n2 // 2) % n2
        denom = sum(math.exp(float(u[i] @ u[k]) / t) for k in range(n2) if k != i)
        total += -math.log(math.exp(float(u[i] @ u[pos]) / t) / denom)
    return total / n2


def test_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    for n, d, t in [(1, 3, 0.5), (4, 8, 0.2), (7, 5, 1.0)]:
        z1, z2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
        assert math.isclose(nt_xent(z1, z2, t).item(), brute_force_nt_xent(z1, z2, t), rel_tol=1e-5)


def test_identical_views_far_apart_give_low_loss():
    z = torch.eye(4) * 10
    assert nt_xent(z, z, 0.1).item() < 1e-3


def _distributed_loss(rank, world_size, z1, z2, t):
    from utils.distributed import all_gather_with_grad
    b = z1.shape[0] // world_size
    local1 = z1[rank * b:(rank + 1) * b].clone().requires_grad_(True)
    local2 = z2[rank * b:(rank + 1) * b].clone().requires_grad_(True)
    loss = nt_xent(all_gather_with_grad(local1), all_gather_with_grad(local2), t)
    loss.backward()
    # DDP averages gradients over ranks; do the same here.
    return loss.item(), local1.grad / world_size, local2.grad / world_size


def test_two_gloo_processes_equal_one_process():
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    loss = nt_xent(a, b, 0.2)
    loss.backward()
    results = run_processes(_distributed_loss, 2, z1, z2, 0.2)
    for rank, (dist_loss, g1, g2) in enumerate(results):
        assert math.isclose(dist_loss, loss.item(), rel_tol=1e-6)
        torch.testing.assert_close(g1, a.grad[rank * 3:(rank + 1) * 3])
        torch.testing.assert_close(g2, b.grad[rank * 3:(rank + 1) * 3])


def brute_nt_xent(z1, z2, t):
    """Per image: one view and one similarity at a time, float64, the mean of the image's two views."""
    b = z1.shape[0]
    u = F.normalize(torch.cat([z1, z2]).double(), dim=1)
    out = []
    for m in range(b):
        views = []
        for i, partner in ((m, m + b), (m + b, m)):
            denominator = sum(math.exp(float(u[i] @ u[k]) / t) for k in range(2 * b) if k != i)
            views.append(-math.log(math.exp(float(u[i] @ u[partner]) / t) / denominator))
        out.append(sum(views) / 2)
    return torch.tensor(out, dtype=torch.float64)


def test_per_image_losses_from_the_logits_match_brute_force_and_the_batched_form():
    g = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(5, 6, generator=g), torch.randn(5, 6, generator=g)
    per_image = image_losses(view_losses(*nt_xent_logits(z1, z2, 0.2)))
    torch.testing.assert_close(per_image.double(), brute_nt_xent(z1, z2, 0.2), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(nt_xent_per_item(z1, z2, 0.2), per_image, rtol=1e-5, atol=1e-5)
    assert math.isclose(per_image.mean().item(), nt_xent(z1, z2, 0.2).item(), rel_tol=1e-6)


def test_nt_xent_per_item_matches_brute_force_with_leading_dims():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(2, 3, 5, 4, generator=g), torch.randn(2, 3, 5, 4, generator=g)
    got = nt_xent_per_item(z1, z2, 0.2)
    assert got.shape == (2, 3, 5) and got.dtype == torch.float32
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(got[i, j].double(), brute_nt_xent(z1[i, j], z2[i, j], 0.2),
                                       rtol=1e-5, atol=1e-5)
    got64 = nt_xent_per_item(z1[0, 0].double(), z2[0, 0].double(), 0.5)
    assert got64.dtype == torch.float64
    torch.testing.assert_close(got64, brute_nt_xent(z1[0, 0], z2[0, 0], 0.5))


@pytest.mark.parametrize("t", [0.01, 0.025, 1.0])  # below, at and above the fixed-shift threshold
def test_nt_xent_per_item_both_paths(t):
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    torch.testing.assert_close(nt_xent_per_item(z1, z2, t).double(), brute_nt_xent(z1, z2, t),
                               rtol=1e-5, atol=1e-4)


def test_nt_xent_per_item_single_pair_and_errors():
    z = torch.randn(1, 4)
    torch.testing.assert_close(nt_xent_per_item(z, -z, 0.2), torch.zeros(1))  # only the partner: loss 0
    with pytest.raises(ValueError):
        nt_xent_per_item(torch.randn(3, 4), torch.randn(2, 4), 0.2)


@pytest.mark.cuda
def test_loss_and_gradients_on_the_accelerator_equal_the_cpu(accelerator):
    """The same (256 x 128) embeddings at t = 0.2: loss within 1e-5 relative, gradients within 1e-5 of
    their largest entry (float32 on both; only the order of the reductions differs)."""
    g = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(256, 128, generator=g), torch.randn(256, 128, generator=g)
    results = []
    for device in (torch.device("cpu"), accelerator):
        a, b = z1.to(device).requires_grad_(True), z2.to(device).requires_grad_(True)
        loss = nt_xent(a, b, 0.2)
        loss.backward()
        results.append((loss.item(), a.grad.cpu(), b.grad.cpu()))
    (cpu_loss, cpu_a, cpu_b), (loss, ga, gb) = results
    assert math.isclose(loss, cpu_loss, rel_tol=1e-5)
    for grad, ref in ((ga, cpu_a), (gb, cpu_b)):
        torch.testing.assert_close(grad, ref, rtol=0, atol=1e-5 * ref.abs().max().item())
