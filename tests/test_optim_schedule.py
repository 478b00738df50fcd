import math

import torch

from utils.optim import LARS, split_decay_groups
from utils.schedule import warmup_cosine


def test_warmup_then_cosine():
    total, warm = 100, 10
    assert warmup_cosine(0, total, warm) == 0.1
    assert warmup_cosine(9, total, warm) == 1.0
    assert warmup_cosine(10, total, warm) == 1.0
    assert math.isclose(warmup_cosine(55, total, warm), 0.5)
    assert warmup_cosine(100, total, warm) < 1e-12


def test_lars_step_matches_the_trust_ratio_formula():
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    w0, b0 = layer.weight.detach().clone(), layer.bias.detach().clone()
    opt = LARS(split_decay_groups(layer, 1e-4), lr=0.5, momentum=0.9, trust_coefficient=0.001)
    layer(torch.randn(8, 4)).pow(2).sum().backward()
    gw, gb = layer.weight.grad.clone(), layer.bias.grad.clone()
    opt.step()
    d = gw + 1e-4 * w0
    expected_w = w0 - 0.5 * 0.001 * w0.norm() / d.norm() * d
    torch.testing.assert_close(layer.weight.detach(), expected_w)
    torch.testing.assert_close(layer.bias.detach(), b0 - 0.5 * gb)  # biases: plain SGD, no decay
