import numpy as np
import pytest
from PIL import Image

from data.datasets import ImageListDataset
from data.views import TwoViews, simclr_augmentation, eval_transform


@pytest.fixture
def image_root(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "n01" ).mkdir()
    lines = []
    for i, (size, label) in enumerate([((40, 30), 0), ((25, 50), 3), ((64, 64), 1)]):
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        name = f"n01/img_{i}.JPEG" if i < 2 else f"n01/img_{i}.png"
        Image.fromarray(pixels).save(tmp_path / name, format="PNG" if name.endswith("png") else "JPEG")
        lines.append(f"{name} {label}")
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n\n")
    return tmp_path


def test_reads_list_and_decodes_uint8_rgb(image_root):
    ds = ImageListDataset(image_root, image_root / "train.txt")
    assert len(ds) == 3 and ds.labels.tolist() == [0, 3, 1]
    image, label, index = ds[1]
    assert image.dtype.is_floating_point is False and image.shape == (3, 50, 25)
    assert (label, index) == (3, 1)
    png = np.asarray(Image.open(image_root / "n01/img_2.png"))
    assert np.array_equal(ds[2][0].permute(1, 2, 0).numpy(), png)


def test_imagenet_views_are_uint8_224(image_root):
    ds = ImageListDataset(image_root, image_root / "train.txt", transform=TwoViews(simclr_augmentation("imagenet")))
    views = ds[0][0]
    assert views.shape == (2, 3, 224, 224) and str(views.dtype) == "torch.uint8"
    evaluation = ImageListDataset(image_root, image_root / "train.txt", transform=eval_transform("imagenet"))
    assert evaluation[1][0].shape == (3, 224, 224)


def test_clear_errors(image_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="image list not found"):
        ImageListDataset(image_root, image_root / "missing.txt")
    (image_root / "bad.txt").write_text("n01/img_0.JPEG\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        ImageListDataset(image_root, image_root / "bad.txt")
    (image_root / "gone.txt").write_text("n01/nothing.JPEG 0\n")
    with pytest.raises(FileNotFoundError, match=r"1 image\(s\) that do not exist"):
        ImageListDataset(image_root, image_root / "gone.txt")
