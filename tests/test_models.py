import pytest
import torch

from models import build_encoder, build_simclr


@pytest.mark.parametrize("name,width,cifar,size,dim", [("res18", 8, True, 32, 64), ("res50", 4, False, 64, 128)])
def test_shapes_and_stems(name, width, cifar, size, dim):
    net = build_simclr(name, width=width, cifar_stem=cifar, output_ch=16)
    x = torch.randn(4, 3, size, size)
    assert net.features(x).shape == (4, dim)
    assert net(x).shape == (4, 16)
    assert (net.conv1.kernel_size == (3, 3)) == cifar
    assert isinstance(net.maxpool, torch.nn.Identity) == cifar


def test_standard_width_matches_torchvision_resnet18_layout():
    import torchvision
    ours = build_encoder("res18", width=64, cifar_stem=False)
    reference = torchvision.models.resnet18()
    shapes = lambda m: {k: tuple(v.shape) for k, v in m.state_dict().items() if not k.startswith("fc.")}
    assert shapes(ours) == shapes(reference)


def test_head_keys_follow_the_original_releases():
    keys = build_simclr("res18", width=8).state_dict().keys()
    assert {"fc.fc1.weight", "fc.fc1.bias", "fc.bn1.weight", "fc.fc2.weight", "fc.bn2.weight"} <= set(keys)
    assert "fc.fc2.bias" not in keys


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown model"):
        build_encoder("vgg")
