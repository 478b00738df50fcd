"""COLT inside the training script: distributed agreement, exact resume across rounds, outputs, errors."""
import json

import numpy as np
import pytest
import torch

import train_simclr
from data.datasets import ArrayImageDataset
from data.synthetic import load_synthetic, train_class_counts
from models import build_simclr
from methods import Batch, SimCLR
from sampling.colt import COLT, COLTConfig, select_by_clusters
from tests.multiprocess import run_processes
from utils.picks import item_relations, picks_summary
from tests.test_train import final_weights, run_cli, synthetic_root, tiny_args  # noqa: F401 (fixture)


def _scores_and_selection(rank, world_size, views, index, is_ood, id_images, pool_images):
    torch.manual_seed(0)
    model = build_simclr("res18", width=4, output_ch=8).eval()  # eval: BN must not depend on the shard
    args = train_simclr.parse_args(["--COLT", "--k_largest_logits", "3", "--sup_weight", "0.2", "--warmup", "0",
                                    "--sample_interval", "1"])
    colt = COLT(len(id_images), COLTConfig.from_args(args, len(pool_images)))
    b = views.shape[0] // world_size
    part = slice(rank * b, (rank + 1) * b)
    out = SimCLR(model, args.temperature).step(Batch(views[part], index[part], is_ood[part]))
    loss = out.loss + colt.extra_loss(out)
    loss.backward()  # NT-Xent + distribution-level loss through the gathered embeddings
    colt.step_end(out, epoch=1)
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    from utils.embed import embed_dataset
    id_emb = embed_dataset(model, ArrayImageDataset(id_images), torch.device("cpu"), batch_size=5)
    pool_emb = embed_dataset(model, ArrayImageDataset(pool_images), torch.device("cpu"), batch_size=7)
    result = select_by_clusters(id_emb, pool_emb, colt.tracker.scores.numpy(), budget=9, num_clusters=3,
                                temperature=1.0, seed=0)
    return loss.item(), colt.tracker.scores, id_emb, result.ood_indices, grads


def test_two_gloo_processes_give_the_scores_and_selection_of_one():
    g = torch.Generator().manual_seed(0)
    id_images = torch.randint(0, 256, (12, 32, 32, 3), dtype=torch.uint8, generator=g).numpy()
    pool_images = torch.randint(0, 256, (30, 32, 32, 3), dtype=torch.uint8, generator=g).numpy()
    # a global batch of 8 images: 6 ID (dataset positions below) and 2 OOD, interleaved across the ranks
    index = torch.tensor([3, 0, 17, 7, 11, 5, 2, 9])
    is_ood = torch.tensor([False, False, True, False, False, False, True, False])
    views = torch.randint(0, 256, (8, 2, 3, 32, 32), dtype=torch.uint8, generator=g)
    single = _scores_and_selection(0, 1, views, index, is_ood, id_images, pool_images)
    assert (~torch.isnan(single[1])).sum() == 6 and torch.isnan(single[1][[1, 4, 6, 8, 10]]).all()
    ranks = run_processes(_scores_and_selection, 2, views, index, is_ood, id_images, pool_images)
    for loss, scores, id_emb, picks, _ in ranks:
        assert loss == pytest.approx(single[0], rel=1e-5)
        torch.testing.assert_close(scores, single[1], equal_nan=True)
        torch.testing.assert_close(id_emb, single[2])
        assert np.array_equal(picks, single[3])
    # each rank holds world_size x its shard's gradient; DDP's average over ranks is one process's gradient
    assert single[4].keys() == ranks[0][4].keys() and len(single[4]) > 0
    for name, grad in single[4].items():
        torch.testing.assert_close((ranks[0][4][name] + ranks[1][4][name]) / 2, grad, rtol=1e-4, atol=1e-6)


def colt_args(root, save_dir, *extra):
    return tiny_args(root, save_dir, "--COLT", "--warmup", "1", "--budget", "48", "--k_means_clusters", "3",
                     "--k_largest_logits", "5", "--embed_batch_size", "1024", *extra)


@pytest.mark.parametrize("interval,crash_epoch", [(1, 2), (2, 3)],
                         ids=["crash-in-the-epoch-that-sampled", "crash-right-after-a-round"])
@pytest.mark.parametrize("aug_device", ["cpu", "gpu"])
def test_resume_across_a_sampling_round_equals_an_uninterrupted_run(synthetic_root, tmp_path, monkeypatch,
                                                                     interval, crash_epoch, aug_device):
    extra = ("--epochs", "4", "--sample_interval", str(interval), "--aug_device", aug_device)
    straight = train_simclr.main(colt_args(synthetic_root, tmp_path / "straight", *extra))
    original = train_simclr.train_one_epoch

    def crash(*args, **kwargs):
        if args[6] == crash_epoch:  # the epoch argument
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(train_simclr, "train_one_epoch", crash)
    with pytest.raises(KeyboardInterrupt):
        train_simclr.main(colt_args(synthetic_root, tmp_path / "resumed", *extra))
    monkeypatch.setattr(train_simclr, "train_one_epoch", original)
    resumed = train_simclr.main(colt_args(synthetic_root, tmp_path / "resumed", *extra, "--resume"))
    a = torch.load(straight / "model.pt", weights_only=True)
    b = torch.load(resumed / "model.pt", weights_only=True)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert torch.equal(a["colt"]["ood_indices"], b["colt"]["ood_indices"])
    assert a["colt"]["rounds_done"] == b["colt"]["rounds_done"] == (3 if interval == 1 else 2)
    torch.testing.assert_close(a["colt"]["tracker"]["scores"], b["colt"]["tracker"]["scores"], equal_nan=True,
                               rtol=0, atol=0)
    for r in range(1, a["colt"]["rounds_done"] + 1):
        assert np.array_equal(np.load(straight / f"ood_round{r}.npy"), np.load(resumed / f"ood_round{r}.npy"))


def test_a_colt_run_writes_its_rounds(synthetic_root, tmp_path):
    run_dir = train_simclr.main(colt_args(synthetic_root, tmp_path, "--epochs", "2", "--sample_interval", "1"))
    picks = np.load(run_dir / "ood_round1.npy")
    assert picks.dtype == np.int64 and len(picks) == 48 == len(np.unique(picks)) and picks.max() < 6000
    for name in ("ood_round1.png", "tailness_round1.png"):
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    log = (run_dir / "log.txt").read_text()
    assert "COLT round 1 (epoch 2): cluster sizes" in log and "budgets" in log
    # the round's record: tailness ordering and, the synthetic pool knowing its relations, the picks
    record = json.loads((run_dir / "ood_round1.json").read_text())
    assert record["round"] == 1 and record["epoch"] == 2 and record["chosen"] == 48
    assert record["class_counts"] == train_class_counts() and len(record["class_mean_tailness"]) == 10
    assert -1 <= record["tailness_count_spearman"] <= 1
    near = load_synthetic(synthetic_root)["ood_near_class"]
    assert record["picks"] == picks_summary(item_relations(near, train_class_counts()), picks)
    assert "COLT round 1: 48 picks by relation to the ID classes: near tail" in log
    state = torch.load(run_dir / "model.pt", weights_only=True)["colt"]
    assert np.array_equal(state["ood_indices"].numpy(), picks)
    assert (~torch.isnan(state["tracker"]["scores"])).sum() > 0


def test_plain_simclr_keeps_no_colt_state(synthetic_root, tmp_path):
    run_dir = train_simclr.main(tiny_args(synthetic_root, tmp_path, "--epochs", "1"))
    assert "colt" not in torch.load(run_dir / "model.pt", weights_only=True)


def test_impossible_budget_and_missing_pool_are_one_line_errors(synthetic_root, tmp_path):
    common = ["--dataset", "synthetic", "--data", str(synthetic_root), "--save-dir", str(tmp_path / "runs"),
              "--device", "cpu", "--num_workers", "0", "--COLT"]
    result = run_cli(*common, "--budget", "20000")
    assert result.returncode != 0 and "exceeds the OOD pool of 6000" in result.stderr.strip().splitlines()[-1]
    result = run_cli(*common, "--sample_set", "300K_random_images")
    assert result.returncode != 0 and "--ood_data is required" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "runs").exists()


def test_schedule_counts_the_larger_epochs_after_the_warm_up():
    args = train_simclr.parse_args(["--COLT", "--epochs", "10", "--warmup", "4", "--batch_size", "100",
                                    "--budget", "250", "--lr_warmup_epochs", "2"])
    assert train_simclr.schedule_steps(args, 1030) == (4 * 10 + 6 * 12, 2 * 10)
    plain = train_simclr.parse_args(["--epochs", "10", "--batch_size", "100"])
    assert train_simclr.schedule_steps(plain, 1030)[0] == 100


def _train(rank, world_size, argv):
    return str(train_simclr.main(argv))


def test_two_gloo_processes_run_colt_rounds(synthetic_root, tmp_path):
    argv = colt_args(synthetic_root, tmp_path, "--epochs", "2", "--sample_interval", "1")
    assert len(set(run_processes(_train, 2, argv))) == 1
    run_dir = tmp_path / "run"
    picks = np.load(run_dir / "ood_round1.npy")
    assert len(np.unique(picks)) == 48
    state = torch.load(run_dir / "model.pt", weights_only=True)["colt"]
    assert np.array_equal(state["ood_indices"].numpy(), picks) and state["rounds_done"] == 1
    assert (run_dir / "log.txt").read_text().count("COLT round 1 (epoch") == 1
