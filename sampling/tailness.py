"""COLT's per-sample tailness score, read off the contrastive similarity matrix of each training batch."""
from __future__ import annotations

import torch


def raw_tailness(logits: torch.Tensor, k: int) -> torch.Tensor:
    r"""Top-k negative probability mass of each image in a batch of B pairs of views.

    ``logits`` is the (2B, 2B) matrix of ``losses.nt_xent_logits`` (rows/columns ordered [view 1; view 2],
    diagonal -inf). Row-wise softmax gives, for anchor view a with positive view b,

    .. math:: p_{aj} = \frac{\exp(s_{aj}/\tau)}{\exp(s_{ab}/\tau) + \sum_{n \ne a, b} \exp(s_{an}/\tau)}.

    The two rows of image m (views m and m + B) are averaged over the negatives (all columns but the
    image's own two views), and the score is the sum of the k largest averaged probabilities. Crowded
    (head-like) images have much probability on negatives and score high; isolated (tail-like) ones low.
    Returns a (B,) tensor. Every column counts as a negative, OOD images included.
    """
    two_b = logits.shape[0]
    b = two_b // 2
    if k > two_b - 2:
        raise ValueError(f"--k_largest_logits {k} exceeds the {two_b - 2} negatives of a batch of {b} pairs")
    p = torch.softmax(logits.float(), dim=1)
    p_image = (p[:b] + p[b:]) / 2
    own = torch.arange(b, device=logits.device)
    p_image[own, own] = float("-inf")
    p_image[own, own + b] = float("-inf")
    return p_image.topk(k, dim=1).values.sum(dim=1)


class TailnessTracker:
    """Exponential moving average of each ID sample's raw tailness over the epochs it was seen in.

    The first sighting sets the score; each later one does s <- beta * s + (1 - beta) * raw.
    Holds two vectors only: the scores (NaN until first seen) and the epoch each sample was last seen
    (-1 never). Updates are scatters on the batch, no per-sample Python loop. Under DDP each rank updates
    with the whole global batch, so all ranks hold identical scores without extra communication.
    """

    def __init__(self, num_samples: int, beta: float = 0.97, device: torch.device | str = "cpu"):
        if not 0 <= beta < 1:
            raise ValueError(f"--beta must be in [0, 1), got {beta}")
        self.beta = beta
        self.scores = torch.full((num_samples,), float("nan"), device=device)
        self.last_seen = torch.full((num_samples,), -1, dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, indices: torch.Tensor, raw: torch.Tensor, epoch: int) -> None:
        """``indices``: ID dataset positions of the scored images (unique within a batch)."""
        indices = indices.to(self.scores.device)
        raw = raw.to(self.scores.device, torch.float32)
        previous = self.scores[indices]
        seen_before = self.last_seen[indices] >= 0
        self.scores[indices] = torch.where(seen_before, self.beta * previous + (1 - self.beta) * raw, raw)
        self.last_seen[indices] = epoch

    def state_dict(self) -> dict:
        return {"scores": self.scores.cpu(), "last_seen": self.last_seen.cpu(), "beta": self.beta}

    def load_state_dict(self, state: dict) -> None:
        if state["scores"].shape != self.scores.shape:
            raise ValueError(f"tailness state is for {state['scores'].numel()} samples, "
                             f"this training set has {self.scores.numel()}")
        self.scores.copy_(state["scores"])
        self.last_seen.copy_(state["last_seen"])
        self.beta = state["beta"]
