r"""BCL (Zhou et al., "Contrastive Learning with Boosted Memorization", ICML 2022) as a plug-in on any method
that gives per-image losses: SimCLR (BCL-I, ``--rand_k 1``) or SDCLR (BCL-D, ``--prune --rand_k 2``).

Each ID image's NT-Xent loss (the mean of its two views') is tracked with a momentum average
(``--momentum_loss_beta``, 0.97; the first sighting takes the raw value). After each epoch, over the ID set,

.. math:: z = \frac{m - \bar m}{\operatorname{std}(m)}, \qquad w = \frac{z}{2 \max |z|} + \frac12 \in [0, 1]

(unbiased std, as released); the next epoch's views of an image get RandAugment at strength w
(``data.randaug``). The strengths are computed here, in the main process, and reach the augmentation with the
batch keys: persistent workers cannot see stale ones. Images not seen yet (the sampler drops the last partial
batch) take z = 0, w = 1/2; OOD images (COLT's, MAK's) get ``--bcl_ood_strength`` (0: plain views).
"""
from __future__ import annotations

import torch

from methods.base import Hook, StepOutput
from utils.moving_average import PerItemAverage


def boosted_strengths(momentum: torch.Tensor) -> torch.Tensor:
    """w of every item from its momentum loss (NaN = not seen yet, which takes w = 1/2)."""
    seen = ~torch.isnan(momentum)
    w = torch.full_like(momentum, 0.5)
    if seen.sum() < 2:
        return w
    values = momentum[seen].double()
    z = (values - values.mean()) / values.std()  # unbiased, as the release's torch.std
    peak = z.abs().max()
    if not torch.isfinite(peak) or peak == 0:
        return w
    w[seen] = (z / peak / 2 + 0.5).to(w.dtype)
    return w


class BCL(Hook):
    key = "bcl"

    def __init__(self, num_id: int, beta: float = 0.97, ood_strength: float = 0.0, device="cpu"):
        self.momentum = PerItemAverage(num_id, beta, device)
        self.strengths = torch.zeros(num_id)  # the first epoch: no RandAugment (the release's initial w = 0)
        self.ood_strength = ood_strength

    def step_end(self, out: StepOutput, epoch: int) -> None:
        is_id = ~out.is_ood
        self.momentum.update(out.index[is_id], out.image_loss[is_id], epoch)

    def epoch_end(self, epoch: int) -> None:
        self.strengths = boosted_strengths(self.momentum.values).cpu()

    def item_strengths(self, n_items: int) -> torch.Tensor:
        ood = torch.full((n_items - len(self.strengths),), self.ood_strength)
        return torch.cat([self.strengths, ood])

    def state_dict(self) -> dict:
        return {"momentum": self.momentum.state_dict(), "strengths": self.strengths.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.momentum.load_state_dict(state["momentum"])
        if state["strengths"].shape != self.strengths.shape:
            raise ValueError(f"BCL state is for {state['strengths'].numel()} images, this training set has "
                             f"{self.strengths.numel()}")
        self.strengths = state["strengths"].clone()
