"""What every method and plug-in shares: the batch, a step's output, the method and the hooks.

A *method* (SimCLR, SDCLR) is one ``nn.Module``: its ``forward`` maps the two views of this process's images
to their embeddings (the part ``DistributedDataParallel`` wraps: one forward per backward), and ``step``
turns them into the loss over the global batch. A *plug-in* (COLT, BCL, the distribution loss of extra
images) adds to the loop through :class:`Hook`: a round at an epoch's start, an extra loss, a per-step
update, per-item augmentation strengths, and its own state in the checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from losses import image_losses, nt_xent_logits, view_losses
from utils import distributed
from utils.device import to_device
from utils.precision import autocast


@dataclass
class Batch:
    """One process's share of a global batch."""
    views: torch.Tensor                     # (b, 2, 3, H, W) image levels: uint8, or float whole levels
    index: torch.Tensor                     # (b,) int64: position in the ID set, or in the pool where is_ood
    is_ood: torch.Tensor                    # (b,) bool: the image comes from the OOD pool (COLT, MAK)
    strength: torch.Tensor | None = None    # (b,) per-item augmentation strength the views were made with

    @classmethod
    def of(cls, item) -> "Batch":
        """From a loader's ``(views, labels, index, is_ood[, strength])`` tuple (labels are never used)."""
        views, _labels, index, is_ood, *rest = item
        return cls(views, torch.as_tensor(index), torch.as_tensor(is_ood, dtype=torch.bool),
                   rest[0] if rest else None)


@dataclass
class StepOutput:
    """A step over the global batch of N images (all ranks' images, rank order)."""
    loss: torch.Tensor          # the method's loss, a scalar with gradients
    z: torch.Tensor             # (2N, d) float32 embeddings [view 1 of the N images; view 2], with gradients
    logits: torch.Tensor        # (2N, 2N) NT-Xent similarity logits, diagonal -inf
    image_loss: torch.Tensor    # (N,) detached per-image loss (the mean of its two views' losses)
    local: Batch                # this process's batch
    _meta: torch.Tensor | None = field(default=None, repr=False)

    def _gathered(self) -> torch.Tensor:
        if self._meta is None:  # one collective, and only when a plug-in asks
            local = torch.stack([self.local.index, self.local.is_ood.long()], dim=1).to(self.z.device)
            self._meta = distributed.all_gather_variable(local)
        return self._meta

    @property
    def index(self) -> torch.Tensor:
        """(N,) dataset positions of the global batch's images."""
        return self._gathered()[:, 0]

    @property
    def is_ood(self) -> torch.Tensor:
        """(N,) whether each image of the global batch comes from the OOD pool."""
        return self._gathered()[:, 1].bool()


class Method(nn.Module):
    """A contrastive framework over one network. Subclasses override ``forward`` (and ``epoch_start``).

    ``network`` is the encoder + projection head (``features(x)``: the backbone output probes use;
    ``network(x)``: the projection); what the checkpoint saves as ``state_dict``.
    """

    name = "base"

    def __init__(self, network: nn.Module, temperature: float, precision: str = "fp32"):
        super().__init__()
        self.network = network
        self.temperature = temperature
        self.precision = precision

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Local embeddings of view 1 and view 2 (b, d each)."""
        raise NotImplementedError

    def step(self, batch: Batch, runner: nn.Module | None = None) -> StepOutput:
        """NT-Xent over the 2N embeddings of the global batch. ``runner`` is this module as the loop calls it
        (wrapped by DDP or compiled); by default the module itself."""
        device = next(self.network.parameters()).device
        x1, x2 = to_device(batch.views[:, 0], device), to_device(batch.views[:, 1], device)
        with autocast(device, self.precision):
            z1, z2 = (runner or self)(x1, x2)
        z1 = distributed.all_gather_with_grad(z1.float())
        z2 = distributed.all_gather_with_grad(z2.float())
        logits, positive = nt_xent_logits(z1, z2, self.temperature)
        per_view = view_losses(logits, positive)
        return StepOutput(per_view.mean(), torch.cat([z1, z2]), logits, image_losses(per_view.detach()), batch)

    def epoch_start(self, epoch: int) -> dict:
        """Called before each epoch's first step (SDCLR re-prunes here); returns scalars to log."""
        return {}

    def eval_network(self) -> nn.Module:
        """The network embedding passes, probes and MAK inference use."""
        return self.network


class Hook:
    """A plug-in's place in the loop; every hook is optional. ``key`` names its entry in the checkpoint."""

    key = "hook"

    def epoch_start(self, epoch: int, loop) -> None:
        """Before the method's epoch start; ``loop`` (see train_simclr.Loop) embeds datasets and can change
        the training set (COLT's rounds)."""

    def extra_loss(self, out: StepOutput) -> torch.Tensor | None:
        """A term added to the method's loss."""
        return None

    def step_end(self, out: StepOutput, epoch: int) -> None:
        """After the optimiser step, with the step's detached outputs (per-item moving averages)."""

    def epoch_end(self, epoch: int) -> None:
        """After the epoch's last step, before the checkpoint."""

    def item_strengths(self, n_items: int) -> torch.Tensor | None:
        """Per-item augmentation strengths in [0, 1] for the coming epoch over the ``n_items`` training items
        (ID first, then the OOD items), or None."""
        return None

    def resume(self, loop) -> None:
        """After the run's state was loaded from a checkpoint (COLT trains on its selection again)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
