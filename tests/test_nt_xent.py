import math

import pytest
import torch
import torch.nn.functional as F

from losses import nt_xent
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
