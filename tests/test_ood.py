import copy
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from data.datasets import ArrayImageDataset, ImageListDataset
from data.ood import (IdOodDataset, ImageFolderPool, RandomImagesPool, build_ood_pool, canonical_sample_set,
                      default_sample_set)


def chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array)).permute(2, 0, 1)


@pytest.fixture
def random_images(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    path = tmp_path / "300K_random_images.npy"
    np.save(path, images)
    return images, path


def test_300k_pool_is_memory_mapped(random_images):
    images, path = random_images
    pool = build_ood_pool("300K", str(path), "cifar10", None)
    assert isinstance(pool, RandomImagesPool) and isinstance(pool.images, np.memmap) and len(pool) == 50
    for i in (0, 7, 49):
        image, label, index = pool[i]
        assert image.dtype == torch.uint8 and torch.equal(image, chw(images[i])) and (label, index) == (-1, i)
    assert (pool.labels == -1).all()
    for alias in ("ti_300k", "300k_random_images", "300K_Random_Images"):
        assert len(build_ood_pool(alias, str(path), "cifar100", None)) == 50


def test_300k_pool_pickles_as_its_path(random_images):
    images, path = random_images
    pool = RandomImagesPool(path, transform=torch.clone)
    blob = pickle.dumps(pool)
    assert len(blob) < images.nbytes // 4  # workers started by spawn get the path, not the pixels
    clone = pickle.loads(blob)
    assert isinstance(clone.images, np.memmap) and clone.transform is torch.clone
    assert torch.equal(clone[3][0], pool[3][0])
    shallow = copy.copy(pool)
    shallow.transform = None
    assert pool.transform is torch.clone and torch.equal(shallow[3][0], chw(images[3]))


def test_300k_pool_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        RandomImagesPool(tmp_path / "missing.npy")
    np.save(tmp_path / "floats.npy", np.zeros((4, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match=r"floats.npy.*float32"):
        RandomImagesPool(tmp_path / "floats.npy")
    np.save(tmp_path / "grey.npy", np.zeros((4, 32, 32), np.uint8))
    with pytest.raises(ValueError, match=r"grey.npy.*\(4, 32, 32\)"):
        RandomImagesPool(tmp_path / "grey.npy")
    (tmp_path / "text.npy").write_text("not numpy")
    with pytest.raises(ValueError, match="text.npy"):
        RandomImagesPool(tmp_path / "text.npy")


def test_build_ood_pool_errors():
    for sample_set in ("300K_random_images", "image_list", "folder"):
        with pytest.raises(ValueError, match=f"--ood_data is required for --sample_set {sample_set}"):
            build_ood_pool(sample_set, None, "cifar10", "/somewhere")
    with pytest.raises(ValueError, match=r"unknown --sample_set 'laion'.*synthetic, 300K_random_images"):
        build_ood_pool("laion", "x", "cifar10", None)
    with pytest.raises(ValueError, match="unknown dataset"):
        build_ood_pool("synthetic", None, "mnist", None)
    assert canonical_sample_set(" Image_List ") == "image_list"


def write_images(root, names, rng):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)).save(root / name)


def test_folder_pool_is_sorted_and_recursive(tmp_path):
    write_images(tmp_path, ["b/z.png", "a.PNG", "b/c/y.jpg", "b/c/x.JPEG"], np.random.default_rng(1))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "dir.png").mkdir()  # a folder named like an image is not one
    pool = build_ood_pool("folder", str(tmp_path), "imagenet100", None)
    assert isinstance(pool, ImageFolderPool)
    assert pool.paths == ["a.PNG", "b/c/x.JPEG", "b/c/y.jpg", "b/z.png"]
    image, label, index = pool[3]
    assert image.shape == (3, 9, 11) and image.dtype == torch.uint8 and (label, index) == (-1, 3)
    with Image.open(tmp_path / "b/z.png") as png:
        assert torch.equal(image, chw(np.asarray(png)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        ImageFolderPool(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ImageFolderPool(tmp_path / "nowhere")


def test_image_list_pool_under_ood_root(tmp_path):
    write_images(tmp_path / "imagenet-r", ["n01/a.jpg", "n02/b.jpg"], np.random.default_rng(2))
    (tmp_path / "r.txt").write_text("n01/a.jpg 3\nn02/b.jpg 7\n")
    pool = build_ood_pool("image_list", str(tmp_path / "r.txt"), "imagenet100", "/elsewhere",
                          ood_root=str(tmp_path / "imagenet-r"), transform=torch.clone)
    assert isinstance(pool, ImageListDataset) and len(pool) == 2 and pool.transform is torch.clone
    pool.transform = None
    assert pool[1][1:] == (7, 1)


def test_synthetic_pool_and_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("LTSSL_DATA", str(tmp_path))
    pool = build_ood_pool("synthetic", None, "synthetic", None)
    assert (tmp_path / "synthetic").is_dir()  # from LTSSL_DATA, not the working directory
    assert len(pool) == 6000 and pool[0][0].shape == (3, 32, 32) and pool[0][0].dtype == torch.uint8
    assert (pool.labels == -1).all()  # how items relate to the classes is for reports only (data/relations.py)
    assert build_ood_pool(None, None, "synthetic", str(tmp_path / "synthetic")).images.shape == (6000, 32, 32, 3)
    assert [default_sample_set(d) for d in ("synthetic", "cifar10", "CIFAR-100", "imagenet100", "places")] == \
        ["synthetic", "300K_random_images", "300K_random_images", "image_list", "image_list"]


def test_id_ood_dataset_marks_and_replaces_the_selection():
    id_set = ArrayImageDataset(np.zeros((5, 32, 32, 3), np.uint8), np.arange(5))
    pool_images = np.arange(20, dtype=np.uint8)[:, None, None, None] * np.ones((1, 32, 32, 3), np.uint8)
    data = IdOodDataset(id_set, ArrayImageDataset(pool_images))
    assert len(data) == 5 and data.ood_indices.dtype == np.int64 and data[4][1:] == (4, 4, False)
    data.set_ood_indices([13, 2])
    assert len(data) == 7 and data.ood_indices.tolist() == [13, 2]
    assert data[5][1:] == (-1, 13, True) and data[6][1:] == (-1, 2, True)
    assert data[5][0].unique().tolist() == [13] and data[-1][2] == 2
    with pytest.raises(IndexError):
        data[7]
    data.set_ood_indices(np.array([7], np.int32))
    assert len(data) == 6 and data[5][2:] == (7, True) and data.ood_indices.dtype == np.int64
    for bad in ([20], [-1], [3, 3], [1.5]):
        with pytest.raises(ValueError):
            data.set_ood_indices(bad)
    assert data.ood_indices.tolist() == [7]  # a rejected selection leaves the previous one
    data.set_ood_indices([])
    assert len(data) == 5
    data.set_ood_indices(None)
    assert len(data) == 5


def test_id_ood_dataset_without_a_pool():
    data = IdOodDataset(ArrayImageDataset(np.zeros((3, 8, 8, 3), np.uint8), np.array([2, 1, 0])))
    assert len(data) == 3 and [data[i][1:] for i in range(3)] == [(2, 0, False), (1, 1, False), (0, 2, False)]
    data.set_ood_indices(None)
    with pytest.raises(ValueError, match="no OOD pool"):
        data.set_ood_indices([0])
