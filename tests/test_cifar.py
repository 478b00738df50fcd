"""Reading and writing the official CIFAR python-pickle format (data/cifar.py)."""
from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from data.cifar import (CIFAR10_CLASSES, CIFAR100_CLASSES, CIFAR100_SUPERCLASSES, LAYOUTS, read_cifar,
                        read_cifar_labels, write_cifar)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}


def random_arrays(dataset: str, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
    return images, rng.integers(0, NUM_CLASSES[dataset], size=count)


@pytest.fixture(params=["cifar10", "cifar100"])
def fixture_data(request, tmp_path):
    """A 60-train / 20-test dataset folder written by write_cifar, with the arrays it holds."""
    dataset = request.param
    train = random_arrays(dataset, 60, seed=1)
    test = random_arrays(dataset, 20, seed=2)
    folder = write_cifar(tmp_path, dataset, *train, *test)
    return dataset, tmp_path, folder, train, test


def test_round_trip_is_exact_for_both_root_forms(fixture_data):
    dataset, root, folder, train, test = fixture_data
    assert folder == root / LAYOUTS[dataset].folder
    for given_root in (root, folder, str(folder)):
        for is_train, (images, labels) in ((True, train), (False, test)):
            read_images, read_labels = read_cifar(given_root, dataset, train=is_train)
            assert read_images.dtype == np.uint8 and read_images.shape == images.shape
            assert read_images.flags.c_contiguous
            assert read_labels.dtype == np.int64
            np.testing.assert_array_equal(read_images, images)
            np.testing.assert_array_equal(read_labels, labels)
            np.testing.assert_array_equal(read_cifar_labels(given_root, dataset, train=is_train), labels)


def test_written_files_follow_the_official_layout(fixture_data):
    dataset, _, folder, train, _ = fixture_data
    if dataset == "cifar10":
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            ["batches.meta", "test_batch"] + [f"data_batch_{i}" for i in range(1, 6)])
        with open(folder / "data_batch_2", "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        assert set(batch) == {b"batch_label", b"labels", b"data", b"filenames"}
        assert batch[b"batch_label"] == b"training batch 2 of 5"
        rows = train[0][12:24].transpose(0, 3, 1, 2).reshape(12, 3072)  # R, G, B planes per row
        np.testing.assert_array_equal(batch[b"data"], rows)
        assert batch[b"labels"] == train[1][12:24].tolist()
        with open(folder / "batches.meta", "rb") as f:
            assert pickle.load(f, encoding="bytes")[b"label_names"] == [n.encode() for n in CIFAR10_CLASSES]
    else:
        assert sorted(p.name for p in folder.iterdir()) == ["meta", "test", "train"]
        with open(folder / "train", "rb") as f:
            content = pickle.load(f, encoding="bytes")
        assert content[b"fine_labels"] == train[1].tolist()
        assert content[b"coarse_labels"] == (train[1] // 5).tolist()
        with open(folder / "meta", "rb") as f:
            meta = pickle.load(f, encoding="bytes")
        assert len(meta[b"fine_label_names"]) == 100 and len(meta[b"coarse_label_names"]) == 20


# A pickle as Python 2 wrote the official files: py2 str opcodes (bytes under encoding="bytes") and
# numpy.core.multiarray globals.
def _py2_str(value: bytes) -> bytes:
    if len(value) < 256:
        return b"U" + bytes([len(value)]) + value  # SHORT_BINSTRING
    return b"T" + struct.pack("<i", len(value)) + value  # BINSTRING


def _py2_int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)  # BININT


def python2_cifar_pickle(rows: np.ndarray, labels: list[int], label_key: bytes) -> bytes:
    dtype = (b"cnumpy\ndtype\n" + _py2_str(b"u1") + _py2_int(0) + _py2_int(1) + b"\x87R"
             + b"(" + _py2_int(3) + _py2_str(b"|") + b"NNN" + _py2_int(-1) + _py2_int(-1) + _py2_int(0) + b"tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + _py2_int(0) + b"\x85"
             + _py2_str(b"b") + b"\x87R"
             + b"(" + _py2_int(1) + _py2_int(rows.shape[0]) + _py2_int(rows.shape[1]) + b"\x86" + dtype
             + b"\x89" + _py2_str(rows.tobytes()) + b"tb")
    label_list = b"](" + b"".join(_py2_int(label) for label in labels) + b"e"
    return (b"\x80\x02}(" + _py2_str(b"batch_label") + _py2_str(b"training batch 1 of 1")
            + _py2_str(label_key) + label_list + _py2_str(b"data") + array + b"u.")


def test_reads_python2_pickles_like_the_official_files(tmp_path):
    images, labels = random_arrays("cifar100", 7, seed=3)
    rows = images.transpose(0, 3, 1, 2).reshape(7, 3072)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "train").write_bytes(python2_cifar_pickle(rows, labels.tolist(), b"fine_labels"))
    read_images, read_labels = read_cifar(tmp_path, "cifar100")
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_labels, labels)


def test_accepts_str_keys(tmp_path):
    images, labels = random_arrays("cifar100", 5, seed=4)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    with open(folder / "test", "wb") as f:
        pickle.dump({"data": images.transpose(0, 3, 1, 2).reshape(5, 3072), "fine_labels": labels.tolist()}, f,
                    protocol=2)
    np.testing.assert_array_equal(read_cifar(folder, "cifar100", train=False)[0], images)


def test_missing_folder_or_file_names_the_expected_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        read_cifar(tmp_path, "cifar10")
    folder = write_cifar(tmp_path, "cifar10", *random_arrays("cifar10", 10, 5), *random_arrays("cifar10", 2, 6))
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        read_cifar(tmp_path, "cifar10")
    read_cifar(tmp_path, "cifar10", train=False)  # the test file is still there


@pytest.mark.parametrize("damage", ["truncated", "garbage", "not a dict", "wrong row size", "label count"])
def test_malformed_file_raises_value_error_naming_it(tmp_path, damage):
    folder = write_cifar(tmp_path, "cifar10", *random_arrays("cifar10", 10, 5), *random_arrays("cifar10", 4, 6))
    path = folder / "test_batch"
    rows = np.zeros((4, 3072), np.uint8)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:500])
    elif damage == "garbage":
        path.write_bytes(b"this is not a pickle")
    else:
        content = {"not a dict": [1, 2, 3],
                   "wrong row size": {b"data": np.zeros((4, 100), np.uint8), b"labels": [0, 1, 2, 3]},
                   "label count": {b"data": rows, b"labels": [0, 1, 2]}}[damage]
        path.write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(ValueError, match="test_batch"):
        read_cifar(tmp_path, "cifar10", train=False)


class _RunsShellCommand:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _Rot13:
    def __reduce__(self):
        import codecs
        return codecs.encode, ("data", "rot13")


def test_disallowed_globals_are_refused_and_never_run(tmp_path):
    folder = write_cifar(tmp_path, "cifar10", *random_arrays("cifar10", 10, 5), *random_arrays("cifar10", 4, 6))
    marker = tmp_path / "was_executed"
    for payload in (_RunsShellCommand(f"touch {marker}"), _Rot13()):
        (folder / "test_batch").write_bytes(pickle.dumps({b"data": payload, b"labels": []}, protocol=2))
        with pytest.raises(ValueError, match="disallowed"):
            read_cifar(tmp_path, "cifar10", train=False)
    assert not marker.exists()


def test_write_cifar_rejects_bad_input(tmp_path):
    images, labels = random_arrays("cifar10", 10, 7)
    with pytest.raises(ValueError, match="images"):
        write_cifar(tmp_path, "cifar10", images[:, :16], labels, images, labels)
    with pytest.raises(ValueError, match="labels"):
        write_cifar(tmp_path, "cifar10", images, labels + 10, images, labels)
    with pytest.raises(ValueError, match="unknown dataset"):
        write_cifar(tmp_path, "svhn", images, labels, images, labels)
    write_cifar(tmp_path, "cifar10", images, labels, images, labels)
    with pytest.raises(FileExistsError):
        write_cifar(tmp_path, "cifar10", images, labels, images, labels)


@pytest.mark.skipif(not (SHARED / "cifar10-salvage.npz").exists(), reason="real CIFAR salvage data not present")
def test_real_images_round_trip_and_class_names(tmp_path):
    cifar10 = np.load(SHARED / "cifar10-salvage.npz", allow_pickle=False)
    cifar100 = np.load(SHARED / "cifar100-salvage.npz", allow_pickle=False)
    assert tuple(cifar10["class_names"]) == CIFAR10_CLASSES
    assert tuple(cifar100["class_names"]) == CIFAR100_CLASSES
    assert tuple(cifar100["coarse_class_names"]) == CIFAR100_SUPERCLASSES
    images, labels = cifar10["train_x"][:50], cifar10["train_y"][:50]
    write_cifar(tmp_path, "cifar10", images, labels, cifar10["test_x"][:10], cifar10["test_y"][:10])
    read_images, read_labels = read_cifar(tmp_path, "cifar10")
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_labels, labels)
