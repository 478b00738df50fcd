"""Optimisers: SGD with momentum, and LARS (You et al., 2017) on top of it."""
from __future__ import annotations

import torch
import torch.nn as nn


class LARS(torch.optim.SGD):
    r"""SGD with momentum whose per-tensor step is scaled by the trust ratio

    .. math:: \eta \, \lVert w \rVert / (\lVert \nabla w \rVert + \lambda \lVert w \rVert),

    applied (with weight decay) only to parameter groups with ``lars=True``; BatchNorm parameters and
    biases are conventionally put in a group with ``lars=False`` and no weight decay.
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001):
        self.trust_coefficient = trust_coefficient
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=0.0)
        for group in self.param_groups:
            group.setdefault("lars", True)
            group.setdefault("lars_weight_decay", weight_decay)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            if not group["lars"]:
                continue
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.add(p, alpha=group["lars_weight_decay"])
                w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(grad)
                ratio = torch.where((w_norm > 0) & (g_norm > 0),
                                    self.trust_coefficient * w_norm / g_norm, torch.ones_like(w_norm))
                p.grad.copy_(grad.mul_(ratio))
        return super().step(closure)


def split_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """LARS groups: conv/linear weights get weight decay and adaptation; BN parameters and biases neither.

    SGD's own ``weight_decay`` stays 0 because LARS folds the decay into the adapted gradient.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": 0.0, "lars": True, "lars_weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0, "lars": False, "lars_weight_decay": 0.0}]


def build_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float, momentum: float = 0.9):
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "lars":
        return LARS(split_decay_groups(model, weight_decay), lr=lr, momentum=momentum)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd or lars")
