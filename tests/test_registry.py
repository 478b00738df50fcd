"""The dataset and pool registry: lookups, the papers' defaults per method, split lookups, and a new dataset
added through the registry alone (reader, sets, defaults, launcher plan, a tiny pre-training and probe)."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from data import registry
from data.readers import ArrayReader


def test_names_and_aliases():
    assert [registry.canonical_dataset(n) for n in ("CIFAR", "cifar-100", "imagenet-100", "Places365", "synthetic")] == \
        ["cifar10", "cifar100", "imagenet100", "places", "synthetic"]
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; choose one of synthetic, cifar10"):
        registry.dataset("MNIST")
    assert registry.pool("imagenet-900").name == "imagenet900" and registry.pool("TI_300K").layout == "array"
    assert registry.canonical_sample_set("imagelist") == "image_list"
    assert registry.find_pool("synthetic") is None and registry.canonical_sample_set("synthetic") == "synthetic"
    assert {d.name: registry.default_sample_set(d.name) for d in registry.datasets()} == {
        "synthetic": "synthetic", "cifar10": "300K_random_images", "cifar100": "300K_random_images",
        "imagenet100": "image_list", "places": "image_list"}


@pytest.mark.parametrize("dataset,method,expected", [
    ("cifar10", "simclr", dict(epochs=2000, batch_size=512, lr=0.5, model="res18", budget=10000, sup_weight=0.2,
                               temperature=0.2)),
    ("cifar100", "sdclr", dict(epochs=2000, batch_size=512, lr=0.5, model="res18", budget=10000, sup_weight=0.2,
                               temperature=0.2, prune_percent=0.9)),
    ("imagenet100", "simclr", dict(epochs=500, batch_size=256, lr=0.5, model="res50", budget=10000, sup_weight=0.01,
                                   temperature=0.2)),
    ("imagenet100", "sdclr", dict(epochs=500, batch_size=256, lr=0.5, model="res50", budget=10000, sup_weight=0.01,
                                  temperature=0.3, prune_percent=0.3)),
    ("places", "sdclr", dict(epochs=500, batch_size=256, lr=0.5, model="res50", budget=10000, sup_weight=0.01,
                             temperature=0.3, prune_percent=0.3)),
    ("synthetic", "simclr", dict(epochs=100, batch_size=256, lr=0.5, model="res18", budget=1000, sup_weight=0.2,
                                 temperature=0.2)),
    ("synthetic", "sdclr", dict(epochs=100, batch_size=256, lr=0.5, model="res18", budget=1000, sup_weight=0.2,
                                temperature=0.2, prune_percent=0.9))])
def test_paper_defaults(dataset, method, expected):
    assert registry.paper_defaults(dataset, method) == expected
    with pytest.raises(ValueError, match="unknown method 'bcl'"):
        registry.paper_defaults(dataset, "bcl")


def test_pre_training_flags_left_unset_take_the_registry_defaults():
    import train_simclr
    for dataset in ("cifar10", "imagenet-100", "synthetic"):
        args = train_simclr.parse_args(["--dataset", dataset])
        defaults = registry.paper_defaults(dataset)
        assert {k: getattr(args, k) for k in defaults} == defaults
        assert args.sample_set == registry.default_sample_set(dataset)
    args = train_simclr.parse_args(["--dataset", "cifar10", "--temperature", "0.5", "--epochs", "3"])
    assert (args.temperature, args.epochs) == (0.5, 3)


def test_few_shot_splits_and_balance():
    assert registry.few_shot_split("cifar10", "split3_D_i") == "split3_S_b"
    assert registry.few_shot_split("cifar100", "cifar100_split2_D_b") == "cifar100_split2_S_b"
    assert registry.few_shot_split("cifar10", "split3_Di") is None
    assert registry.few_shot_split("imagenet100", "imageNet_100_BL_train") == "imageNet_100_train_1pct"
    assert registry.split_balance("cifar10", "split1_D_i") == "long-tailed"
    assert registry.split_balance("imagenet100", "imageNet_100_BL_train") == "balanced"
    assert registry.split_balance("places", "Places_train") is None


def test_the_published_layout_is_searched(tmp_path):
    (tmp_path / "cifar10_imbSub_with_subsets").mkdir()
    np.save(tmp_path / "cifar10_imbSub_with_subsets" / "split1_D_i.npy", np.arange(3))
    assert registry.find_split(tmp_path, "split1_D_i", "cifar10") == tmp_path / "cifar10_imbSub_with_subsets" / \
        "split1_D_i.npy"
    assert registry.find_split(tmp_path, "split1_D_i", "cifar100") is None


def test_every_entry_resolves():
    for entry in registry.datasets():
        reader = registry.reader(entry.name)
        assert hasattr(reader, "train_set") and hasattr(reader, "eval_sets")
        assert entry.group_rule in ("thirds", "thresholds")
        registry.class_names(entry.name)
    for pool in registry.pools():
        assert callable(registry.resolve(pool.reader)) and pool.layout in ("array", "folder", "list", "embedded")


def test_names_are_not_taken_twice():
    with pytest.raises(ValueError, match="taken"):
        registry.register_dataset(registry.DatasetEntry(
            "cifar-ten", ("cifar",), "cifar", "data.readers:CIFAR10", ".npy", registry.dataset("cifar10").splits,
            "300K_random_images", "thirds", {"simclr": registry.paper_defaults("cifar10")}))


# ------------------------------------------------------------------------- a new dataset through the registry
def load_toy(root, train):
    """The toy dataset's reader: one .npz of uint8 images and labels."""
    with np.load(Path(root) / "toy.npz") as arrays:
        return (arrays["train_x"], arrays["train_y"]) if train else (arrays["test_x"], arrays["test_y"])


TOY = registry.DatasetEntry(
    "toy", ("toy-lt",), "cifar", ArrayReader(load_toy), ".npy",
    registry.SplitNames(train="toy_split1_D_i", full="toy_train", val="toy_val", test=None, few=None,
                        few_from=(("_D_i", "_S_b"),)),
    default_pool="300K_random_images", group_rule="thirds", default_pool_file="300K_random_images.npy",
    defaults={"simclr": dict(epochs=1, batch_size=16, lr=0.1, model="res18", budget=8, sup_weight=0.2, temperature=0.2),
              "sdclr": dict(prune_percent=0.5)})


@pytest.fixture
def toy(tmp_path):
    rng = np.random.default_rng(0)
    train_y, test_y = np.repeat(np.arange(6), 20), np.repeat(np.arange(6), 5)
    np.savez(tmp_path / "toy.npz", train_x=rng.integers(0, 256, (len(train_y), 32, 32, 3), dtype=np.uint8),
             train_y=train_y, test_x=rng.integers(0, 256, (len(test_y), 32, 32, 3), dtype=np.uint8), test_y=test_y)
    members = [np.flatnonzero(train_y == c) for c in range(6)]
    splits = tmp_path / "splits"
    splits.mkdir()
    for name, parts in {"toy_split1_D_i": [m[:n] for m, n in zip(members, [17, 12, 8, 5, 3, 2])],
                        "toy_split1_S_b": [m[:2] for m in members], "toy_train": [m[:17] for m in members],
                        "toy_val": [m[17:] for m in members]}.items():
        np.save(splits / f"{name}.npy", np.concatenate(parts))
    registry.register_dataset(TOY)
    yield tmp_path
    registry.unregister_dataset("toy")


def test_a_new_dataset_builds_its_sets(toy):
    from data.build import build_eval_sets, build_train_set
    train = build_train_set("toy-lt", toy, str(toy / "splits" / "toy_split1_D_i"))
    assert len(train) == 47 and np.bincount(train.labels).tolist() == [17, 12, 8, 5, 3, 2]
    full, val, test = build_eval_sets("toy", toy, str(toy / "splits" / "toy_train"), str(toy / "splits" / "toy_val"))
    assert (len(full), len(val), len(test)) == (102, 18, 30)
    assert registry.paper_defaults("toy", "sdclr")["prune_percent"] == 0.5


def test_a_new_dataset_has_a_launcher_plan(toy):
    from launcher import cli
    from launcher.plans import Env
    env = Env(str(toy), {"HOME": os.path.expanduser("~")})
    plan, _ = cli.build("per_dataset", "toy", "toy-LT.sh", ["--data", ".", "--split_dir", "splits", "--COLT", "True",
                                                            "--prune", "True"], env)
    pretrain, full, few = plan.commands()
    assert pretrain[pretrain.index("train_simclr.py") + 1] == "SDCLR+COLT_toy_split1_D_i"
    for name, value in [("--dataset", "toy"), ("--epochs", "1"), ("--batch_size", "16"), ("--lr", "0.1"),
                        ("--prune_percent", "0.5"), ("--budget", "8"), ("--ood_data", str(toy / "300K_random_images.npy")),
                        ("--trainSplit", str(toy / "splits" / "toy_split1_D_i.npy"))]:
        assert pretrain[pretrain.index(name) + 1] == value, name
    assert full[full.index("--trainSplit") + 1] == str(toy / "splits" / "toy_train.npy")
    assert few[few.index("--trainSplit") + 1] == str(toy / "splits" / "toy_split1_S_b.npy")
    assert cli.refusal(plan) is None  # every split file is there


def test_a_new_dataset_pre_trains_and_probes(toy, tmp_path):
    import train_linear
    import train_simclr
    splits = toy / "splits"
    run = train_simclr.main(["toy_run", "--dataset", "toy", "--data", str(toy), "--trainSplit",
                             str(splits / "toy_split1_D_i"), "--save-dir", str(tmp_path / "runs"), "--width", "4",
                             "--max_steps_per_epoch", "1", "--lr_warmup_epochs", "0", "--num_workers", "0",
                             "--device", "cpu"])
    assert json.loads((run / "args.json").read_text())["batch_size"] == 16  # the registry's default
    probe = train_linear.main(["probe", "--checkpoint", str(run / "model.pt"), "--trainSplit", str(splits / "toy_train"),
                               "--valSplit", str(splits / "toy_val"), "--save-dir", str(tmp_path / "probes"),
                               "--epochs", "1", "--cached_features", "--num_workers", "0", "--device", "cpu"])
    results = json.loads((probe / "results.json").read_text())
    assert results["group_rule"] == "thirds" and results["class_counts"] == [17, 12, 8, 5, 3, 2]
    assert results["groups"] == {"few": [4, 5], "medium": [2, 3], "many": [0, 1]}

