"""The MAK pipeline end to end on tiny data: inference (1 vs 2 processes, interrupted and resumed), sampling
(outputs, caches, refusals), re-training on the chosen items, and COLT's random scorer."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import infer_features
import sample_mak
import train_simclr
from data.synthetic import load_synthetic
from tests.multiprocess import run_processes
from tests.test_train import REPO_ROOT, synthetic_root, tiny_args  # noqa: F401 (fixture)
from utils.device import to_device
from utils.feature_store import FeatureStore


@pytest.fixture(scope="module")
def setup(synthetic_root, tmp_path_factory):
    """A pre-trained checkpoint, a 120-image 300K-format pool and a 100-item long-tailed split."""
    base = tmp_path_factory.mktemp("mak")
    arrays = load_synthetic(synthetic_root)
    pool = base / "pool.npy"
    np.save(pool, arrays["ood_x"][::50][:120])
    split = base / "lt_split.npy"
    np.save(split, np.arange(0, 1600, 16, dtype=np.int64))
    run = train_simclr.main(tiny_args(synthetic_root, base / "runs", "--trainSplit", str(split),
                                      "--epochs", "1", "--batch_size", "32"))
    return {"root": synthetic_root, "base": base, "pool": pool, "split": split, "ckpt": run / "model.pt"}


def infer_argv(s, name, out, *extra):
    common = ["--checkpoint", str(s["ckpt"]), "--save-dir", str(out), "--num_workers", "0", "--device", "cpu",
              "--chunk_size", "25", "--batch_size", "16"]
    if name == "train":
        return ["train_noaug", "--inference_dataset", "synthetic", "--data", str(s["root"]),
                "--inference_dataset_split", str(s["split"]), "--inference_noAug", *common, *extra]
    pool = ["--inference_dataset", "300K_random_images", "--inference_dataset_split", str(s["pool"])]
    if name == "pool":
        return ["pool_noaug", *pool, "--inference_noAug", *common, *extra]
    return ["pool_aug", *pool, "--inference_repeat_time", "3", *common, *extra]


def store_arrays(folder):
    return {p.name: dict(np.load(p)) for p in sorted(folder.glob("r*_c*.npz"))}


def assert_same_store(a, b):
    first, second = store_arrays(a), store_arrays(b)
    assert first.keys() == second.keys() and first
    for name in first:
        for kind in first[name]:
            np.testing.assert_array_equal(first[name][kind], second[name][kind], err_msg=f"{name} {kind}")


@pytest.fixture(scope="module")
def inferred(setup):
    out = setup["base"] / "infer"
    for name in ("train", "pool", "aug"):
        infer_features.main(infer_argv(setup, name, out))
    return out


def test_inference_writes_every_item_in_dataset_order(setup, inferred):
    pool = FeatureStore(inferred / "pool_aug")
    meta = pool.meta()
    assert (meta["num_items"], meta["repeats"], meta["augmentation"], meta["kinds"]) == (120, 3, "train", ["proj"])
    passes = [pool.load("proj", r) for r in range(3)]
    assert all(p.shape == (120, 128) for p in passes) and not np.array_equal(passes[0], passes[1])
    noaug = FeatureStore(inferred / "pool_noaug")
    feats = noaug.load("feat")
    assert feats.shape == (120, 32) and noaug.meta()["augmentation"] == "none"
    rows = np.array([119, 3, 50, 26])
    np.testing.assert_array_equal(noaug.rows("feat", rows), feats[rows])
    # rows in dataset order: item i's features are the encoder's output for pool image i
    from models.pretrained import load_simclr
    net, _ = load_simclr(setup["ckpt"])
    images = to_device(torch.from_numpy(np.load(setup["pool"])[[0, 77]]).permute(0, 3, 1, 2), torch.device("cpu"))
    with torch.no_grad():
        expected = net.eval().features(images).numpy()
    np.testing.assert_allclose(feats[[0, 77]], expected, rtol=1e-4, atol=1e-5)


def _infer_in_process(rank, world_size, argv):
    infer_features.main(argv)


def test_two_gloo_processes_write_the_files_of_one(setup, inferred, tmp_path):
    for name in ("pool", "aug"):
        run_processes(_infer_in_process, 2, infer_argv(setup, name, tmp_path))
        folder = "pool_noaug" if name == "pool" else "pool_aug"
        assert_same_store(tmp_path / folder, inferred / folder)


def test_interrupted_inference_resumes_to_the_uninterrupted_output(setup, inferred, tmp_path, monkeypatch):
    original, written = FeatureStore.write_chunk, []

    def crash_after_two(self, *args, **kwargs):
        if len(written) == 2:
            raise KeyboardInterrupt("killed")
        written.append(args)
        original(self, *args, **kwargs)

    monkeypatch.setattr(FeatureStore, "write_chunk", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        infer_features.main(infer_argv(setup, "aug", tmp_path))
    monkeypatch.setattr(FeatureStore, "write_chunk", original)
    assert len(list((tmp_path / "pool_aug").glob("r*_c*.npz"))) == 2
    assert not list((tmp_path / "pool_aug").glob(".*tmp"))
    infer_features.main(infer_argv(setup, "aug", tmp_path))
    assert_same_store(tmp_path / "pool_aug", inferred / "pool_aug")


def test_inference_refuses_a_folder_made_with_other_settings(setup, inferred):
    with pytest.raises(SystemExit, match="other settings.*repeats: 3 -> 4"):
        infer_features.main(infer_argv(setup, "aug", inferred, "--inference_repeat_time", "4"))


def sample_argv(inferred, out, *extra):
    return ["--inference_root", str(inferred), "--no_aug_sampling_dataset_inference_exp", "pool_noaug",
            "--no_aug_training_dataset_inference_exp", "train_noaug", "--aug_sampling_dataset_inference_exp",
            "pool_aug", "--loss_repeat_time", "3", "--ecle_batch_size", "32", "--K_means_num", "3",
            "--sampling_num", "10", "--split_save_dir", str(out), "--loss_dist_save_dir", str(out / "cache"),
            "--device", "cpu", *extra]


def test_sampling_writes_split_summary_and_grid_and_reuses_its_caches(setup, inferred, tmp_path):
    from sampling import mak
    split = sample_mak.main(sample_argv(inferred, tmp_path))
    assert split.name == "optimize_0.5lossR3_nearK3_coreR1.5_num10_s0.npy"
    chosen = np.load(split)
    assert len(chosen) == 10 and len(np.unique(chosen)) == 10 and chosen.max() < 120
    summary = json.loads((tmp_path / "optimize_0.5lossR3_nearK3_coreR1.5_num10_s0.json").read_text())
    assert summary["chosen"] == 10 and {"ecle", "proximity", "selection"} <= summary["seconds"].keys()
    assert "picks" not in summary  # a 300K-format pool does not know how its items relate to the classes
    assert (tmp_path / "optimize_0.5lossR3_nearK3_coreR1.5_num10_s0.png").stat().st_size > 0
    # the same selection from the math module on the stores' arrays
    pool, train, aug = (FeatureStore(inferred / n) for n in ("pool_noaug", "train_noaug", "pool_aug"))
    ecle = mak.ecle([aug.load("proj", r) for r in range(3)], batch_size=32, seed=0)
    distance, _ = mak.proximity(train.load("feat"), pool.load("feat"), 3, seed=0)
    expected = mak.select(ecle, distance, pool.load("feat"), train.load("feat"), 10, "mak")
    np.testing.assert_array_equal(chosen, np.sort(expected))
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())  # one file each: values and their key
    assert [name.rsplit("_", 1)[0] for name in cached] == ["distance_K3", "ecle_R3"]
    assert all(name.endswith(".npz") and len(name.rsplit("_", 1)[1]) == len("0123456789abcdef.npz")
               for name in cached)
    # a second run reads the caches; other ECLE settings recompute into the same cache name
    again = sample_mak.main(sample_argv(inferred, tmp_path, "--overwrite"))
    np.testing.assert_array_equal(np.load(again), chosen)
    with pytest.raises(SystemExit, match="exists: pass --overwrite"):
        sample_mak.main(sample_argv(inferred, tmp_path))


@pytest.mark.parametrize("method,extra", [("random", []), ("kcenter", []),
                                          ("mak", ["--loss_weight", "0", "--core_sample_ratio", "1"])],
                         ids=["random", "kcenter", "proximity"])
def test_ablations_write_their_own_splits(inferred, tmp_path, method, extra):
    split = sample_mak.main(sample_argv(inferred, tmp_path, "--sampling_method", method, *extra))
    chosen = np.load(split)
    assert len(np.unique(chosen)) == 10
    if method == "mak":  # proximity alone: the 10 smallest distances
        [cache] = (tmp_path / "cache").glob("distance_K3_*.npz")
        distance = np.load(cache)["values"]
        np.testing.assert_array_equal(chosen, np.sort(np.argsort(distance, kind="stable")[:10]))
        assert not list((tmp_path / "cache").glob("ecle_R3_*"))  # a = 0 needs no ECLE


@pytest.mark.parametrize("change,message", [
    (lambda a: a.__setitem__(a.index("pool_noaug"), "no_such_output"), "no inference output.*infer_features.py"),
    (lambda a: a.__setitem__(a.index("--loss_repeat_time") + 1, "4"), "exceeds the 3 augmented passes"),
    (lambda a: a.__setitem__(a.index("--sampling_num") + 1, "121"), "exceeds the pool of 120"),
    (lambda a: a.__setitem__(a.index("--K_means_num") + 1, "101"), "exceeds the 100 training items"),
    (lambda a: a.__setitem__(a.index("pool_aug"), "train_noaug"), "made without augmentation"),
], ids=["missing-output", "repeats", "budget", "clusters", "wrong-kind"])
def test_sampling_refuses_bad_input_with_one_line(inferred, tmp_path, change, message):
    argv = sample_argv(inferred, tmp_path)
    change(argv)
    result = subprocess.run([sys.executable, str(REPO_ROOT / "sample_mak.py"), *argv], capture_output=True,
                            text=True, cwd=REPO_ROOT, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    import re
    assert re.search(message, result.stderr), result.stderr
    assert not list(tmp_path.glob("*.npy"))


def test_sampling_refuses_outputs_of_different_checkpoints(setup, inferred, tmp_path):
    import shutil
    other = tmp_path / "infer"
    shutil.copytree(inferred, other)
    state = torch.load(setup["ckpt"], weights_only=True)
    state["state_dict"]["fc.fc2.weight"] += 0.01  # another checkpoint
    torch.save(state, tmp_path / "other.pt")
    argv = infer_argv(setup, "train", other, "--overwrite")
    argv[argv.index("--checkpoint") + 1] = str(tmp_path / "other.pt")
    infer_features.main(argv)
    with pytest.raises(SystemExit, match="different checkpoints"):
        sample_mak.main(sample_argv(other, tmp_path))
    # a meta.json edited by hand no longer matches its chunks: they are refused as another store's
    meta = json.loads((other / "train_noaug" / "meta.json").read_text())
    meta["checkpoint_sha256"] = "0" * 64
    (other / "train_noaug" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(SystemExit, match="written for another checkpoint or other settings"):
        sample_mak.main(sample_argv(other, tmp_path))


def test_retraining_on_the_chosen_items(setup, inferred, tmp_path):
    split = sample_mak.main(sample_argv(inferred, tmp_path, "--sampling_method", "random"))
    run = train_simclr.main(tiny_args(setup["root"], tmp_path / "runs", "--trainSplit", str(setup["split"]),
                                      "--batch_size", "32", "--additional_dataset", "300K_random_images",
                                      "--additional_data", str(setup["pool"]), "--additional_split", str(split)))
    args = json.loads((run / "args.json").read_text())
    assert args["additional_items"] == 10 and args["additional_dataset"] == "300K_random_images"
    log = (run / "log.txt").read_text()
    assert "100 training images + 10 extra images (300K_random_images)" in log
    saved = torch.load(run / "model.pt", weights_only=True)["args"]
    assert saved["additional_split"] == str(split)


def test_random_colt_scorer_draws_budget_items_each_round_and_resumes(setup, tmp_path):
    from sampling.colt import select_random
    a, b = select_random(120, 10, seed=3), select_random(120, 10, seed=3)
    np.testing.assert_array_equal(a.ood_indices, b.ood_indices)
    assert len(np.unique(a.ood_indices)) == 10 and (a.ood_cluster == -1).all()
    assert not np.array_equal(a.ood_indices, select_random(120, 10, seed=4).ood_indices)
    argv = tiny_args(setup["root"], tmp_path, "--COLT", "--ood_scorer", "random", "--warmup", "1", "--budget", "8",
                     "--sample_interval", "1", "--epochs", "3")
    run = train_simclr.main(argv)
    rounds = [np.load(run / f"ood_round{r}.npy") for r in (1, 2)]
    assert all(len(np.unique(r)) == 8 for r in rounds) and not np.array_equal(*rounds)


def test_k_means_uses_random_state_0_whatever_the_seed_and_the_picture_says_what_it_shows(inferred, tmp_path,
                                                                                          monkeypatch):
    from sampling import mak
    import utils.plots
    seeds, titles = [], []
    fit, grid = mak.fit_centroids, utils.plots.save_image_grid
    monkeypatch.setattr(mak, "fit_centroids", lambda *a, **k: seeds.append(k.get("seed")) or fit(*a, **k))
    monkeypatch.setattr(utils.plots, "save_image_grid",
                        lambda *a, **k: titles.append(k.get("title")) or grid(*a, **k))
    sample_mak.main(sample_argv(inferred, tmp_path, "--seed", "10", "--loss_txt_name", "mak"))
    sample_mak.main(sample_argv(inferred, tmp_path / "b", "--seed", "10", "--K_means_seed", "3"))
    assert seeds == [0, 3]  # the release's random_state 0 unless asked otherwise
    assert titles[0].startswith("MAK (tailness + proximity, then K-center): 10 of 10 chosen")
    assert "mak (mak)" not in titles[0]
    assert titles[1].startswith("MAK (tailness + proximity, then K-center), optimize_0.5lossR3_nearK3_coreR1.5_num10_s10")
