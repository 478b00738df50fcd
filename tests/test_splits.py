"""The COLT long-tailed split protocol (data/lt_splits.py) and its CLI (splits/make_splits.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data.cifar import write_cifar
from data.lt_splits import (PROTOCOLS, describe_split, long_tail_counts, make_cifar_splits, split_names)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
PUBLISHED = SHARED / "original-splits"
SALVAGE = {"cifar10": SHARED / "cifar10-salvage.npz", "cifar100": SHARED / "cifar100-salvage.npz"}
PREFIX = {"cifar10": "", "cifar100": "cifar100_"}
CIFAR10_COUNTS = [4500, 2697, 1617, 969, 581, 348, 208, 125, 75, 45]
CIFAR10_SEED0_PROBE_HEAD = [19844, 2382, 27670, 23952, 24322]  # before the CIFAR-100 probe rule was added


def official_shaped_labels(dataset: str) -> np.ndarray:
    """Labels with the official per-class counts (5000 x 10 or 500 x 100) in a fixed shuffled order."""
    num_classes = PROTOCOLS[dataset].num_classes
    return np.random.default_rng(123).permutation(np.repeat(np.arange(num_classes), 50000 // num_classes))


@pytest.fixture(scope="module", params=["cifar10", "cifar100"])
def made(request):
    dataset = request.param
    labels = official_shaped_labels(dataset)
    return dataset, labels, make_cifar_splits(labels, dataset, seed=0)


def class_rank_order(counts: np.ndarray) -> tuple[int, ...]:
    """Classes from head to tail (ties, as in D_b, keep class order)."""
    return tuple(np.argsort(-counts, kind="stable"))


def test_long_tail_counts_match_the_papers():
    assert long_tail_counts(4500, 10) == CIFAR10_COUNTS
    assert sum(CIFAR10_COUNTS) == 11165
    cifar100 = long_tail_counts(450, 100)
    assert (sum(cifar100), cifar100[0], cifar100[-1]) == (9754, 450, 4)
    assert cifar100 == sorted(cifar100, reverse=True)
    with pytest.raises(ValueError):
        long_tail_counts(4500, 1)


def test_protocol_table():
    cifar10, cifar100 = PROTOCOLS["cifar10"], PROTOCOLS["cifar100"]
    assert (cifar10.num_classes, cifar10.val_per_class, cifar10.pool_per_class, cifar10.balanced_per_class,
            cifar10.fewshot_per_class) == (10, 500, 4500, 1116, 45)
    assert (cifar100.num_classes, cifar100.val_per_class, cifar100.pool_per_class, cifar100.balanced_per_class,
            cifar100.fewshot_per_class) == (100, 50, 450, 97, 4)
    assert (cifar10.probe_per_class, cifar100.probe_per_class) == (4500, 400)
    for protocol in PROTOCOLS.values():
        assert protocol.balanced_per_class == sum(protocol.imbalanced_counts) // protocol.num_classes
        assert protocol.fewshot_per_class == protocol.pool_per_class // 100


def test_names_and_dtypes(made):
    dataset, _, arrays = made
    prefix = PREFIX[dataset]
    assert list(arrays) == split_names(dataset)
    assert set(arrays) == {f"{prefix}trainIdxList", f"{prefix}valIdxList"} | {
        f"{prefix}split{k}_{s}" for k in range(1, 6) for s in ("D_i", "D_b", "S_b")}
    for indices in arrays.values():
        assert indices.dtype == np.int64 and indices.ndim == 1
        assert len(np.unique(indices)) == len(indices)
        assert indices.min() >= 0 and indices.max() < 50000


def test_probe_list_and_validation(made):
    """CIFAR-10: probe list + validation = all 50,000. CIFAR-100: 400 + 50 per class, 5,000 images in neither."""
    dataset, labels, arrays = made
    protocol, prefix = PROTOCOLS[dataset], PREFIX[dataset]
    probe, val = arrays[f"{prefix}trainIdxList"], arrays[f"{prefix}valIdxList"]
    assert (len(probe), len(val)) == ((45000, 5000) if dataset == "cifar10" else (40000, 5000))
    assert not np.isin(probe, val).any()
    assert set(describe_split(probe, labels, protocol.num_classes)) == {protocol.probe_per_class}
    assert set(describe_split(val, labels, protocol.num_classes)) == {protocol.val_per_class}
    rest = np.setdiff1d(np.arange(50000), np.concatenate([probe, val]))
    assert len(rest) == (0 if dataset == "cifar10" else 5000)
    if len(rest):
        assert set(describe_split(rest, labels, protocol.num_classes)) == {50}
    assert np.any(np.diff(probe) < 0) and np.any(np.diff(val) < 0)  # shuffled, not sorted


def test_cifar10_arrays_do_not_depend_on_the_probe_rule():
    """The CIFAR-10 probe list is the whole pool, drawn without extra random draws: its arrays are unchanged."""
    arrays = make_cifar_splits(official_shaped_labels("cifar10"), "cifar10", seed=0)
    assert arrays["trainIdxList"][:5].tolist() == CIFAR10_SEED0_PROBE_HEAD


def test_subset_sizes_and_nesting(made):
    dataset, labels, arrays = made
    protocol, prefix = PROTOCOLS[dataset], PREFIX[dataset]
    val = arrays[f"{prefix}valIdxList"]
    pool = np.setdiff1d(np.arange(50000), val)  # D_i, D_b, S_b are drawn from all non-validation images
    expected_d_i = CIFAR10_COUNTS if dataset == "cifar10" else long_tail_counts(450, 100)
    orders = set()
    for k in range(1, 6):
        d_i, d_b, s_b = (arrays[f"{prefix}split{k}_{s}"] for s in ("D_i", "D_b", "S_b"))
        d_i_counts = describe_split(d_i, labels, protocol.num_classes)
        assert sorted(d_i_counts, reverse=True) == expected_d_i
        assert set(describe_split(d_b, labels, protocol.num_classes)) == {protocol.balanced_per_class}
        assert set(describe_split(s_b, labels, protocol.num_classes)) == {protocol.fewshot_per_class}
        assert (len(d_b), len(s_b)) == ((11160, 450) if dataset == "cifar10" else (9700, 400))
        assert np.isin(s_b, d_i).all() and np.isin(s_b, d_b).all()
        # D_i and D_b are prefixes of the same shuffled pool of each class, so they overlap by min(n_c, balanced).
        overlap = np.minimum(d_i_counts, protocol.balanced_per_class).sum()
        assert len(np.intersect1d(d_i, d_b)) == overlap
        for subset in (d_i, d_b, s_b):
            assert np.isin(subset, pool).all() and not np.isin(subset, val).any()
        assert np.any(np.diff(labels[d_i]) < 0)  # not grouped by class
        orders.add(class_rank_order(d_i_counts))
    assert len(orders) == 5


def test_seed_determines_everything():
    labels = official_shaped_labels("cifar10")
    first = make_cifar_splits(labels, "cifar10", seed=0)
    again = make_cifar_splits(labels, "cifar10", seed=0)
    other = make_cifar_splits(labels, "cifar10", seed=1)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
        assert not np.array_equal(first[name], other[name])
    assert len(make_cifar_splits(labels, "cifar10", num_splits=2)) == 2 + 2 * 3


def test_rejects_labels_without_the_official_counts():
    labels = official_shaped_labels("cifar10")
    with pytest.raises(ValueError, match="expected per-class counts"):
        make_cifar_splits(labels[:-1], "cifar10")
    with pytest.raises(ValueError, match="expected per-class counts"):
        make_cifar_splits(labels, "cifar100")
    with pytest.raises(ValueError, match="unknown dataset"):
        make_cifar_splits(labels, "svhn")


def test_describe_split():
    labels = np.array([0, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(describe_split(np.array([1, 3, 4]), labels, 4), [0, 1, 2, 0])
    with pytest.raises(ValueError, match="num_classes"):
        describe_split(np.arange(6), labels, 2)


# --- CLI -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cifar10_root(tmp_path_factory):
    """A CIFAR-10 folder of the official size (50,000 blank images, official-shaped labels); written once."""
    root = tmp_path_factory.mktemp("cifar10_full")
    blank = np.zeros((50000, 32, 32, 3), np.uint8)
    write_cifar(root, "cifar10", blank, official_shaped_labels("cifar10"), blank[:10], np.arange(10))
    return root


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "splits/make_splits.py", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def snapshot(folder: Path) -> dict[str, bytes]:
    """The split files (not the hidden file that marks the folder as one of splits)."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if not path.name.startswith(".")}


def test_cli_writes_refuses_and_overwrites(cifar10_root, tmp_path):
    out = tmp_path / "splits"
    result = run_cli("--dataset", "cifar10", "--data", cifar10_root, "--out", out)
    assert result.returncode == 0, result.stderr
    assert sorted(snapshot(out)) == sorted(f"{name}.npy" for name in split_names("cifar10"))
    assert (out / ".ltssl-output.json").is_file()  # marks it as a folder of splits
    expected = make_cifar_splits(official_shaped_labels("cifar10"), "cifar10", seed=0)
    for name, indices in expected.items():
        written = np.load(out / f"{name}.npy", allow_pickle=False)
        assert written.dtype == np.int64
        np.testing.assert_array_equal(written, indices)
        assert f"{name}.npy: {len(indices)} indices" in result.stdout
    assert "split1_D_i.npy: 11165 indices, per class min 45 max 4500" in result.stdout

    before = snapshot(out)
    refused = run_cli("--dataset", "cifar10", "--data", cifar10_root, "--out", out, "--seed", "1")
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("error: ")
    assert "exists (use --overwrite)" in refused.stderr
    assert snapshot(out) == before

    replaced = run_cli("--dataset", "cifar10", "--data", cifar10_root, "--out", out, "--seed", "1", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    after = snapshot(out)
    assert after.keys() == before.keys() and all(after[name] != before[name] for name in before)


def test_cli_writes_nothing_if_any_target_exists(tmp_path):
    out = tmp_path / "splits"
    out.mkdir()
    (out / "split3_S_b.npy").write_bytes(b"keep me")
    result = run_cli("--dataset", "cifar10", "--data", tmp_path / "no_data", "--out", out)
    assert result.returncode == 2 and "split3_S_b.npy exists (use --overwrite)" in result.stderr
    assert snapshot(out) == {"split3_S_b.npy": b"keep me"}


def test_cli_reports_missing_data_in_one_line(tmp_path):
    result = run_cli("--dataset", "cifar100", "--data", tmp_path / "no_data", "--out", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "cifar-100-python" in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_help_documents_every_flag():
    result = run_cli("--help")
    assert result.returncode == 0
    for flag in ("--dataset", "--data", "--out", "--seed", "--num_splits", "--overwrite"):
        assert flag in result.stdout


# --- Real label order and the published files (skipped when ../shared is absent) --------------------------------

def real_labels(dataset: str) -> np.ndarray:
    return np.load(SALVAGE[dataset], allow_pickle=False)["all_train_labels"]


def published(relative: str) -> np.ndarray:
    return np.load(PUBLISHED / relative, allow_pickle=False)


def published_subsets(dataset: str, k: int) -> tuple[np.ndarray, ...]:
    folder = f"{dataset}_imbSub_with_subsets/{PREFIX[dataset]}split{k}"
    return tuple(published(f"{folder}_{subset}.npy") for subset in ("D_i", "D_b", "S_b"))


@pytest.mark.skipif(not SALVAGE["cifar100"].exists() or not SALVAGE["cifar10"].exists(),
                    reason="real CIFAR label lists (shared/data/*-salvage.npz) not present")
@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_protocol_on_the_real_label_order(dataset):
    labels = real_labels(dataset)
    protocol, prefix = PROTOCOLS[dataset], PREFIX[dataset]
    arrays = make_cifar_splits(labels, dataset)
    orders = set()
    for k in range(1, 6):
        counts = describe_split(arrays[f"{prefix}split{k}_D_i"], labels, protocol.num_classes)
        assert sorted(counts, reverse=True) == protocol.imbalanced_counts
        assert set(describe_split(arrays[f"{prefix}split{k}_D_b"], labels, protocol.num_classes)) == {
            protocol.balanced_per_class}
        assert set(describe_split(arrays[f"{prefix}split{k}_S_b"], labels, protocol.num_classes)) == {
            protocol.fewshot_per_class}
        orders.add(class_rank_order(counts))
    assert len(orders) == 5


@pytest.mark.skipif(not PUBLISHED.exists() or not SALVAGE["cifar10"].exists(),
                    reason="published COLT split files (shared/data/original-splits) not present")
@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_protocol_matches_the_published_files(dataset):
    labels = real_labels(dataset)
    protocol, prefix = PROTOCOLS[dataset], PREFIX[dataset]
    ours = make_cifar_splits(labels, dataset)
    val = published(f"{dataset}/{prefix}valIdxList.npy")
    train = published(f"{dataset}/{prefix}trainIdxList.npy")
    assert set(describe_split(val, labels, protocol.num_classes)) == {protocol.val_per_class}
    assert not np.isin(train, val).any()
    ours_train, ours_val = ours[f"{prefix}trainIdxList"], ours[f"{prefix}valIdxList"]
    for probe, validation in ((train, val), (ours_train, ours_val)):  # the same counts and membership rules
        assert set(describe_split(probe, labels, protocol.num_classes)) == {protocol.probe_per_class}
        assert set(describe_split(validation, labels, protocol.num_classes)) == {protocol.val_per_class}
        assert len(probe) == (45000 if dataset == "cifar10" else 40000) and len(validation) == 5000
    # D_i reaches beyond the CIFAR-100 probe list (into the 5,000 images in neither list), in both.
    outside = [np.isin(d_i, probe).all() for d_i, probe in (
        (published_subsets(dataset, 1)[0], train), (ours[f"{prefix}split1_D_i"], ours_train))]
    assert outside == ([True, True] if dataset == "cifar10" else [False, False])
    for k in range(1, 6):
        d_i, d_b, s_b = published_subsets(dataset, k)
        assert np.isin(s_b, d_i).all() and np.isin(s_b, d_b).all()
        for subset, theirs in zip(("D_i", "D_b", "S_b"), (d_i, d_b, s_b)):
            assert theirs.dtype == np.int64 and not np.isin(theirs, val).any()
            ours_counts = describe_split(ours[f"{prefix}split{k}_{subset}"], labels, protocol.num_classes)
            assert sorted(describe_split(theirs, labels, protocol.num_classes)) == sorted(ours_counts)
        d_i_counts = describe_split(d_i, labels, protocol.num_classes)
        assert len(np.intersect1d(d_i, d_b)) == np.minimum(d_i_counts, protocol.balanced_per_class).sum()


def test_one_percent_list_for_image_list_datasets(tmp_path):
    from data.lt_splits import balanced_fraction
    labels = np.repeat(np.arange(4), [1300, 1250, 1300, 1280])
    chosen = balanced_fraction(labels, 0.01, seed=0)
    assert np.bincount(labels[chosen]).tolist() == [12, 12, 12, 12] and len(np.unique(chosen)) == 48
    lines = [f"train/n{c:03d}/img_{i}.JPEG {c}" for i, c in enumerate(labels)]
    (tmp_path / "imageNet_100_train.txt").write_text("\n".join(lines) + "\n")
    script = [sys.executable, "splits/make_splits.py", "--dataset", "imagenet100", "--train_list",
              str(tmp_path / "imageNet_100_train.txt"), "--out", str(tmp_path / "out")]
    result = subprocess.run(script, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    written = (tmp_path / "out" / "imageNet_100_train_1pct.txt").read_text().splitlines()
    assert len(written) == 48 and set(written) <= set(lines)
    again = subprocess.run(script, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "exists" in again.stderr
