import math

import pytest
import torch
import torch.nn.functional as F

from losses import dist_supcon, domain_labels_for_views
from tests.multiprocess import run_processes


def brute_force(z, is_ood, t):
    """Anchor by anchor, positive by positive, in double precision."""
    u = F.normalize(z.double(), dim=1)
    m = len(u)
    per_anchor = []
    for i in range(m):
        positives = [p for p in range(m) if p != i and bool(is_ood[p]) == bool(is_ood[i])]
        if not positives:
            continue
        denominator = sum(math.exp(float(u[i] @ u[k]) / t) for k in range(m) if k != i)
        per_anchor.append(-sum(math.log(math.exp(float(u[i] @ u[p]) / t) / denominator)
                               for p in positives) / len(positives))
    return sum(per_anchor) / len(per_anchor)


def classic_supcon(z, labels, t):
    """An independent formulation: label masks, row-max stabilisation, explicit exp-sums."""
    u = F.normalize(z.double(), dim=1)
    logits = u @ u.t() / t
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    not_self = 1 - torch.eye(len(u), dtype=torch.float64)
    same = (labels[:, None] == labels[None, :]).double() * not_self
    log_prob = logits - torch.log((torch.exp(logits) * not_self).sum(dim=1, keepdim=True))
    has = same.sum(dim=1) > 0
    return -((same * log_prob).sum(dim=1)[has] / same.sum(dim=1)[has]).mean()


@pytest.mark.parametrize("b,t,seed", [(3, 0.2, 0), (5, 0.5, 1), (6, 0.2, 2)])
def test_matches_brute_force_and_an_independent_supcon(b, t, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(2 * b, 7, generator=g)
    is_ood = domain_labels_for_views(torch.rand(b, generator=g) < 0.4)
    loss = dist_supcon(z, is_ood, t).item()
    assert math.isclose(loss, brute_force(z, is_ood, t), rel_tol=1e-5)
    assert math.isclose(loss, classic_supcon(z, is_ood.long(), t).item(), rel_tol=1e-5)


def test_all_id_and_single_ood_image():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(8, 5, generator=g)
    all_id = torch.zeros(8, dtype=torch.bool)
    assert math.isclose(dist_supcon(z, all_id, 0.2).item(), brute_force(z, all_id, 0.2), rel_tol=1e-5)
    one_ood = domain_labels_for_views(torch.tensor([False, False, True, False]))
    assert math.isclose(dist_supcon(z, one_ood, 0.2).item(), brute_force(z, one_ood, 0.2), rel_tol=1e-5)


def test_gradients_temperature_and_degenerate_batches():
    z = torch.randn(6, 4, requires_grad=True)
    is_ood = domain_labels_for_views(torch.tensor([True, False, False]))
    dist_supcon(z, is_ood, 0.2).backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert dist_supcon(z, is_ood, 0.2).item() != pytest.approx(dist_supcon(z, is_ood, 0.5).item())
    lonely = torch.randn(2, 4, requires_grad=True)
    zero = dist_supcon(lonely, torch.tensor([True, False]), 0.2)
    zero.backward()
    assert zero.item() == 0 and lonely.grad is not None
    with pytest.raises(ValueError, match="expected z"):
        dist_supcon(torch.randn(4, 3), torch.zeros(3, dtype=torch.bool))


def _distributed(rank, world_size, z1, z2, ood_images, t):
    from utils.distributed import all_gather_with_grad
    b = z1.shape[0] // world_size
    part = slice(rank * b, (rank + 1) * b)
    a, c = z1[part].clone().requires_grad_(True), z2[part].clone().requires_grad_(True)
    loss = dist_supcon(torch.cat([all_gather_with_grad(a), all_gather_with_grad(c)]),
                       domain_labels_for_views(ood_images), t)
    loss.backward()
    return loss.item(), a.grad / world_size, c.grad / world_size


def test_two_gloo_processes_equal_one_process():
    g = torch.Generator().manual_seed(4)
    z1, z2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    ood = torch.tensor([False, True, False, False, True, False])
    a, c = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    loss = dist_supcon(torch.cat([a, c]), domain_labels_for_views(ood), 0.2)
    loss.backward()
    for rank, (value, ga, gc) in enumerate(run_processes(_distributed, 2, z1, z2, ood, 0.2)):
        assert math.isclose(value, loss.item(), rel_tol=1e-6)
        torch.testing.assert_close(ga, a.grad[rank * 3:(rank + 1) * 3])
        torch.testing.assert_close(gc, c.grad[rank * 3:(rank + 1) * 3])


@pytest.mark.cuda
def test_loss_and_gradients_on_the_accelerator_equal_the_cpu(accelerator):
    """384 views (a quarter OOD), 128 dims, t = 0.2: loss within 1e-5 relative, gradients within 1e-5 of
    their largest entry."""
    g = torch.Generator().manual_seed(5)
    z = torch.randn(384, 128, generator=g)
    is_ood = domain_labels_for_views(torch.rand(192, generator=g) < 0.25)
    results = []
    for device in (torch.device("cpu"), accelerator):
        leaf = z.to(device).requires_grad_(True)
        loss = dist_supcon(leaf, is_ood.to(device), 0.2)
        loss.backward()
        results.append((loss.item(), leaf.grad.cpu()))
    (cpu_loss, cpu_grad), (loss, grad) = results
    assert math.isclose(loss, cpu_loss, rel_tol=1e-5)
    torch.testing.assert_close(grad, cpu_grad, rtol=0, atol=1e-5 * cpu_grad.abs().max().item())
