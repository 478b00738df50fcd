"""Linear and few-shot probing end to end on the synthetic data, and checkpoint conversion."""
import json

import pytest
import torch

import train_linear
import train_simclr
from models import build_simclr
from tests.test_train import run_cli, synthetic_root, tiny_args  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def pretrained(synthetic_root, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("pretrain")
    # 40 steps: enough for BatchNorm's running statistics (momentum 0.1) to settle, which eval-mode
    # probing relies on
    return train_simclr.main(tiny_args(synthetic_root, save_dir, "--epochs", "4", "--width", "8",
                                       "--max_steps_per_epoch", "10", "--batch_size", "64", "--knn_every", "4",
                                       "--knn_k", "20")) / "model.pt"


def test_knn_monitor_is_logged(pretrained):
    log = (pretrained.parent / "log.txt").read_text()
    accuracy = float(log.split("k-NN top-1 ")[1].split("%")[0])
    assert 0 <= accuracy <= 100 and log.count("k-NN top-1") == 1


def probe_args(checkpoint, save_dir, synthetic_root, name, *extra):
    return [name, "--checkpoint", str(checkpoint), "--data", str(synthetic_root), "--save-dir", str(save_dir),
            "--epochs", "4", "--decreasing_lr", "3", "--lr", "1.0", "--num_workers", "0", "--device", "cpu",
            "--batch_size", "64", *extra]


@pytest.mark.parametrize("wrap", ["ddp", "original"])
def test_checkpoints_convert(tmp_path, wrap):
    torch.manual_seed(0)
    net = build_simclr("res18", width=4)
    weights = {f"module.{k}": v for k, v in net.state_dict().items()}
    state = {"state_dict": weights, "epoch": 7}
    if wrap == "ddp":
        state.update(optimizer={}, args={"dataset": "synthetic"})
    torch.save(state, tmp_path / "model.pt")
    encoder, pretrain_args = train_linear.load_encoder(tmp_path / "model.pt", torch.device("cpu"))
    expected = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    assert encoder.state_dict().keys() == expected.keys()
    assert all(torch.equal(encoder.state_dict()[k], v) for k, v in expected.items())
    assert pretrain_args == ({"dataset": "synthetic"} if wrap == "ddp" else {})


def test_cached_and_uncached_probes_agree_without_augmentation(pretrained, synthetic_root, tmp_path):
    plain = train_linear.main(probe_args(pretrained, tmp_path, synthetic_root, "plain", "--no_aug"))
    cached = train_linear.main(probe_args(pretrained, tmp_path, synthetic_root, "cached", "--cached_features"))
    a = json.loads((plain / "results.json").read_text())
    b = json.loads((cached / "results.json").read_text())
    assert a["per_class"] == b["per_class"] and a["all"] == b["all"] and a["best_epoch"] == b["best_epoch"]


def test_probe_learns_and_writes_results(pretrained, synthetic_root, tmp_path):
    run_dir = train_linear.main(probe_args(pretrained, tmp_path, synthetic_root, "full", "--cached_features",
                                           "--epochs", "30", "--decreasing_lr", "20", "--lr", "0.005"))
    results = json.loads((run_dir / "results.json").read_text())
    assert {"all", "many", "medium", "few", "std", "per_class", "class_counts"} <= results.keys()
    assert results["all"] > 14  # chance is 10% (1000 balanced test images); 40 pre-training steps only
    assert results["class_counts"] == [500, 358, 256, 184, 132, 94, 67, 48, 34, 25]
    losses = [float(line.split(" loss ")[1].split()[0]) for line in (run_dir / "log.txt").read_text().splitlines()
              if "probe epoch" in line]
    assert losses[-1] < losses[0]
    for name in ("probe.pt", "args.json", "log.txt"):
        assert (run_dir / name).is_file()


def test_few_shot_defaults_and_refusal_to_overwrite(pretrained, synthetic_root, tmp_path):
    args = probe_args(pretrained, tmp_path, synthetic_root, "run_few_shot", "--cached_features")
    run_dir = train_linear.main(args, few_shot=True)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["shot"] == "few" and run_dir.name.endswith("few_shot")
    assert json.loads((run_dir / "args.json").read_text())["trainSplit"] == "few"
    with pytest.raises(SystemExit, match="already holds results"):
        train_linear.main(args, few_shot=True)


def test_test_only_reevaluates_the_saved_probe_and_writes_nothing(pretrained, synthetic_root, tmp_path, capsys):
    args = probe_args(pretrained, tmp_path, synthetic_root, "again", "--cached_features")
    run_dir = train_linear.main(args)
    saved = json.loads((run_dir / "results.json").read_text())
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    capsys.readouterr()
    train_linear.main(args + ["--test_only"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["per_class"] == saved["per_class"] and printed["all"] == saved["all"]
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before
