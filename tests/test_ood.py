import numpy as np
import pytest
import torch
from PIL import Image

from data.datasets import ArrayImageDataset
from data.ood import IdOodDataset, ImageFolderPool, build_ood_pool, default_sample_set, random_images_pool


def test_300k_pool_is_memory_mapped(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "300K_random_images.npy", images)
    pool = build_ood_pool("300K", str(tmp_path / "300K_random_images.npy"), "cifar10", None)
    assert isinstance(pool.images, np.memmap) and len(pool) == 50
    image, label, index = pool[7]
    assert torch.equal(image, torch.from_numpy(images[7]).permute(2, 0, 1)) and (label, index) == (-1, 7)


def test_300k_pool_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="OOD pool not found"):
        random_images_pool(tmp_path / "missing.npy")
    np.save(tmp_path / "floats.npy", np.zeros((4, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="expected uint8"):
        random_images_pool(tmp_path / "floats.npy")
    with pytest.raises(ValueError, match="--ood_data is required"):
        build_ood_pool("300K_random_images", None, "cifar10", None)
    with pytest.raises(ValueError, match="unknown --sample_set"):
        build_ood_pool("laion", "x", "cifar10", None)


def test_folder_pool_is_sorted_and_recursive(tmp_path):
    rng = np.random.default_rng(1)
    for name in ["b/z.png", "a.PNG", "b/c/y.jpg", "notes.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("txt"):
            (tmp_path / name).write_text("not an image")
        else:
            Image.fromarray(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)).save(tmp_path / name)
    pool = ImageFolderPool(tmp_path)
    assert pool.paths == ["a.PNG", "b/c/y.jpg", "b/z.png"]
    assert pool[1][0].shape == (3, 9, 11) and pool[1][0].dtype == torch.uint8
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        ImageFolderPool(tmp_path / "empty")


def test_synthetic_pool_and_defaults(tmp_path):
    pool = build_ood_pool("synthetic", None, "synthetic", str(tmp_path))
    assert len(pool) == 10000 and pool[0][0].shape == (3, 32, 32)
    assert default_sample_set("cifar100") == "300K_random_images"
    assert default_sample_set("places") == "image_list"


def test_id_ood_dataset_marks_and_replaces_the_selection():
    id_set = ArrayImageDataset(np.zeros((5, 32, 32, 3), np.uint8), np.arange(5))
    pool = ArrayImageDataset(np.full((20, 32, 32, 3), 255, np.uint8))
    data = IdOodDataset(id_set, pool)
    assert len(data) == 5 and data[4][1:] == (4, 4, False)
    data.set_ood_indices([13, 2])
    assert len(data) == 7 and data[5][1:] == (-1, 13, True) and data[6][2:] == (2, True)
    assert data[6][0].max() == 255
    data.set_ood_indices(np.array([7]))
    assert len(data) == 6 and data[5][2] == 7
    with pytest.raises(ValueError, match="out of range"):
        data.set_ood_indices([20])
    data.set_ood_indices(None)
    assert len(data) == 5
