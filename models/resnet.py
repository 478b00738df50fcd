"""ResNet encoders on torchvision's ResNet classes, with a CIFAR stem and a width option.

``width`` is the channel count of the first stage (64 in the standard nets); stages double it.
Small widths (8, 16) make tests and CPU runs cheap without changing the architecture's shape.
Parameter names match torchvision's (conv1, bn1, layer1..4), so checkpoints stay interchangeable.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

# Original releases' names first; the torchvision spelling is accepted too.
MODEL_NAMES = {"res18": (BasicBlock, [2, 2, 2, 2]), "resnet18": (BasicBlock, [2, 2, 2, 2]),
               "res50": (Bottleneck, [3, 4, 6, 3]), "resnet50": (Bottleneck, [3, 4, 6, 3])}


class ResNetEncoder(ResNet):
    """A torchvision ResNet whose ``fc`` is replaced (identity by default) and whose stem may be CIFAR's.

    CIFAR stem: one 3x3 stride-1 convolution and no max-pool, for 32x32 inputs.
    ImageNet stem: torchvision's 7x7 stride-2 convolution and 3x3 max-pool.
    """

    def __init__(self, block, layers, width: int = 64, cifar_stem: bool = False):
        nn.Module.__init__(self)  # ResNet.__init__ hard-codes 64 channels; the layers are built below instead
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = width
        self.dilation = 1
        self.groups = 1
        self.base_width = 64  # Bottleneck's inner width is planes * base_width / 64: keep the standard ratio
        if cifar_stem:
            self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.feature_dim = width * 8 * block.expansion
        self.fc = nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (the input of ``fc``)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def build_encoder(name: str, width: int = 64, cifar_stem: bool = True) -> ResNetEncoder:
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODEL_NAMES)}")
    block, layers = MODEL_NAMES[name]
    return ResNetEncoder(block, layers, width=width, cifar_stem=cifar_stem)
