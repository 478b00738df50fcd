"""Encoder + projection head, the network SimCLR trains."""
from __future__ import annotations

from models.heads import ProjectionHead
from models.resnet import ResNetEncoder, build_encoder


def build_simclr(name: str, width: int = 64, cifar_stem: bool = True, output_ch: int = 128) -> ResNetEncoder:
    """A ResNet whose ``fc`` is the projection head: ``forward`` gives projections, ``features`` the
    pooled backbone output that probing uses. Keys (conv1.*, layer1-4.*, fc.fc1.*, ...) are as released."""
    net = build_encoder(name, width=width, cifar_stem=cifar_stem)
    net.fc = ProjectionHead(net.feature_dim, output_ch)
    return net
