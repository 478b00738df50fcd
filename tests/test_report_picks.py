"""report_picks.py and data/relations.py: the picks of COLT rounds and offline selections found from the probes'
results.json, against picks_summary of the same indices; pools without relation metadata give no rows."""
from __future__ import annotations

import json

import pytest

import numpy as np

import report
from data.relations import colt_pool_near_class, named_pool_near_class, selection_picks
from data.synthetic import load_synthetic
from report_picks import run_selections
from tests.test_train import synthetic_root  # noqa: F401 (fixture)
from utils.picks import item_relations, mak_terms, picks_summary


def test_relation_metadata_only_for_the_synthetic_pool(synthetic_root):
    near = load_synthetic(synthetic_root)["ood_near_class"]
    assert np.array_equal(colt_pool_near_class(None, "synthetic", str(synthetic_root)), near)
    assert np.array_equal(colt_pool_near_class("synthetic", "synthetic", str(synthetic_root)), near)
    assert colt_pool_near_class("300K_random_images", "cifar10", "/data") is None
    assert np.array_equal(named_pool_near_class("synthetic_pool", str(synthetic_root)), near)
    assert named_pool_near_class("300K_random_images", str(synthetic_root)) is None
    assert named_pool_near_class(None, None) is None


def test_selection_picks_of_an_inference_output(synthetic_root):
    arrays = load_synthetic(synthetic_root)
    pool = {"dataset": "synthetic_pool", "source": str(synthetic_root), "num_items": len(arrays["ood_x"])}
    train = {"dataset": "synthetic", "split": None, "source": str(synthetic_root)}
    chosen = np.flatnonzero(arrays["ood_near_class"] == 9)[:30]  # near the tail class only
    picks = selection_picks(pool, train, chosen)
    assert picks["relations"]["near tail"]["share"] == 1.0 and picks["chosen"] == 30
    assert picks["class_counts"] == np.bincount(arrays["train_y"]).tolist()
    assert selection_picks(pool, None, chosen)["relations"] == picks["relations"]  # the whole training set
    assert selection_picks({**pool, "dataset": "300K_random_images"}, train, chosen) is None


def _colt_run(root, run_dir, rounds):
    run_dir.mkdir(parents=True)
    (run_dir / "args.json").write_text(json.dumps({"COLT": True, "sample_set": "synthetic", "dataset": "synthetic",
                                                   "data": str(root), "ood_scorer": "clusters"}))
    for r, (chosen, rho) in enumerate(rounds, start=1):
        np.save(run_dir / f"ood_round{r}.npy", np.asarray(chosen, np.int64))
        (run_dir / f"ood_round{r}.json").write_text(json.dumps({"round": r, "epoch": 3 * r + 1,
                                                                 "tailness_count_spearman": rho}))
    (run_dir / "model.pt").write_bytes(b"")


def _probe(folder, method, checkpoint, counts):
    folder.mkdir(parents=True)
    result = {"method": method, "shot": "full", "all": 50.0, "many": 60.0, "medium": 50.0, "few": 40.0, "std": 8.2,
              "per_class": [50.0] * len(counts), "class_counts": counts, "checkpoint": str(checkpoint)}
    (folder / "results.json").write_text(json.dumps(result))


def test_report_finds_each_runs_picks_and_spearman(synthetic_root, tmp_path):
    arrays = load_synthetic(synthetic_root)
    near, counts = arrays["ood_near_class"], np.bincount(arrays["train_y"]).tolist()
    relations = item_relations(near, counts)
    round1, round2 = np.arange(0, 600, 3), np.flatnonzero(near >= 7)[:200]
    _colt_run(synthetic_root, tmp_path / "runs" / "colt", [(round1, -0.1), (round2, 0.45)])
    # MAK: the extra images named in args.json, with sample_mak.py's summary beside the split
    split_dir = tmp_path / "split"
    split_dir.mkdir()
    mak_chosen = np.flatnonzero(near == 8)[:50]
    np.save(split_dir / "mak.npy", mak_chosen)
    terms = mak_terms(relations, np.where(near == 8, 2.0, -0.1), np.where(near == 8, -1.0, 0.1),
                      np.where(near == 8, 1.5, -0.1), candidates=np.flatnonzero(near >= 8)[:80])
    (split_dir / "mak.json").write_text(json.dumps({"settings": {"sampling_method": "mak"}, "mak_terms": terms}))
    mak_dir = tmp_path / "runs" / "mak"
    mak_dir.mkdir()
    (mak_dir / "args.json").write_text(json.dumps({"additional_dataset": "synthetic_pool", "data": str(synthetic_root),
                                                   "additional_split": str(split_dir / "mak.npy")}))
    # a run on a pool without relation metadata, and plain SimCLR: no rows
    other = tmp_path / "runs" / "cifar"
    other.mkdir()
    (other / "args.json").write_text(json.dumps({"COLT": True, "sample_set": "300K_random_images",
                                                 "dataset": "cifar10", "data": "/nowhere"}))
    np.save(other / "ood_round1.npy", np.arange(5))
    probes = tmp_path / "probes"
    _probe(probes / "colt_full", "SimCLR+COLT", tmp_path / "runs" / "colt" / "model.pt", counts)
    _probe(probes / "colt_few", "SimCLR+COLT", tmp_path / "runs" / "colt" / "model.pt", counts)  # same run: once
    _probe(probes / "mak_full", "SimCLR+MAK", mak_dir / "model.pt", counts)
    _probe(probes / "cifar_full", "CIFAR+COLT", other / "model.pt", counts)
    _probe(probes / "gone", "SimCLR", tmp_path / "nowhere" / "model.pt", counts)

    selections = run_selections(tmp_path / "runs" / "colt", counts)
    assert [s["selection"] for s in selections] == ["COLT round 1 (clusters)", "COLT round 2 (clusters)"]
    assert selections[1]["picks"] == picks_summary(relations, round2) and selections[1]["spearman"] == 0.45
    assert run_selections(other, counts)[0]["picks"] is None

    out = tmp_path / "report"
    assert report.main([str(probes), "--out", str(out)]) == 0
    text = (out / "picks.md").read_text()
    assert (out / "picks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tail2 = 100 * picks_summary(relations, round2)["relations"]["near tail"]["share"]
    assert f"| SimCLR+COLT: COLT round 2 (clusters) | 200 | {tail2:.1f}%" in text
    assert "| SimCLR+MAK: offline selection (mak) | 50 | 100.0% (x" in text
    assert "CIFAR+COLT" not in text.split("## Tailness")[0]
    near = text.split("## Which classes the near picks are near")[1].split("##")[0]
    assert "| SimCLR+MAK: offline selection (mak) | 100.0% (x" in near  # all near, all of them near tail
    assert near.split("| SimCLR+MAK: offline selection (mak) | ")[1].split(" | ")[1].startswith("100.0% (x")
    assert "## What drove MAK's choice" in text
    cand_tail = 100 * terms["candidates"]["relations"]["near tail"]["share"]
    assert (f"| SimCLR+MAK: offline selection (mak) | near tail | +{terms['zscore_ecle']['near tail']:.2f} | "
            f"{terms['zscore_distance']['near tail']:+.2f} | {terms['score']['near tail']:+.2f} | "
            f"{cand_tail:.1f}% (x") in text
    assert "| SimCLR+COLT | round 2 | 7 | 0.45 | 1 |" in text
    pool_tail = 100 * relations.tolist().count(0) / len(relations)
    assert f"| pool (= random, in expectation) | {len(relations)} | {pool_tail:.1f}%" in text


def test_report_takes_extra_selections_and_refuses_others(synthetic_root, tmp_path):
    counts = np.bincount(load_synthetic(synthetic_root)["train_y"]).tolist()
    probes = tmp_path / "probes"
    _probe(probes / "a", "SimCLR", tmp_path / "none" / "model.pt", counts)
    picks = picks_summary(np.array([0, 1, 2, 3]), [0, 3])
    (tmp_path / "random.json").write_text(json.dumps({"settings": {"sampling_method": "random"}, "picks": picks}))
    assert report.main([str(probes), "--out", str(tmp_path / "r"), "--selections", str(tmp_path / "random.json")]) == 0
    assert "| random (sample_mak.py --sampling_method random, no re-training) | 2 | 50.0% (x2.00)" in \
        (tmp_path / "r" / "picks.md").read_text()
    (tmp_path / "bad.json").write_text("{}")
    assert report.main([str(probes), "--out", str(tmp_path / "s"), "--selections", str(tmp_path / "bad.json")]) == 2
    assert not (tmp_path / "s").exists()  # refused before anything is written


def test_no_picks_section_without_metadata(tmp_path):
    probes = tmp_path / "probes"
    _probe(probes / "a", "SimCLR", tmp_path / "none" / "model.pt", [5, 3, 1])
    assert report.main([str(probes), "--out", str(tmp_path / "r")]) == 0
    assert not (tmp_path / "r" / "picks.md").exists() and not (tmp_path / "r" / "picks.png").exists()


# --- The samplers' direction on a tiny real run -----------------------------------------------------------
# ResNet-18 at width 8, batch 128, 6 epochs, COLT rounds at epochs 3 and 5 with a budget of 600 (--beta 0.5,
# as the quickstart), then MAK's selection of 600 from the COLT run's encoder (3 augmented passes).
TINY_BUDGET = 600
# The far share (pool: 0.667) measured on this run at seeds 1, 2, 3: COLT's rounds 0.460 / 0.472, 0.573 / 0.413,
# 0.570 / 0.295; MAK 0.788, 0.808, 0.818; random 0.667, 0.695, 0.648. The near-tail share was not consistent
# (COLT above random's in 4 of 6 rounds, MAK below it in 2 of 3), so it is not asserted. Margins: half the smallest
# effect seen for COLT and MAK; three binomial stds of 600 draws for random.
# What drove MAK's choice on the same runs ("mak_terms"): far items' mean z(ECLE) above the highest near group's
# by 0.273, 0.416, 0.449 (seeds 1, 2, 3); K-center raised the far share from the top-score candidates' by 0.068,
# 0.129, 0.082. Margins: half the smallest.
MARGINS = {"random": 0.06, "colt_far": 0.04, "mak_far": 0.06, "mak_far_ecle": 0.13, "kcenter_far": 0.03}


@pytest.fixture(scope="module")
def tiny_run(synthetic_root, tmp_path_factory):
    import infer_features
    import sample_mak
    import train_simclr
    out = tmp_path_factory.mktemp("tiny")
    run = train_simclr.main(["tiny", "--dataset", "synthetic", "--data", str(synthetic_root), "--save-dir", str(out),
                             "--width", "8", "--batch_size", "128", "--epochs", "6", "--lr_warmup_epochs", "1",
                             "--num_workers", "0", "--device", "cpu", "--aug_device", "gpu", "--print_freq", "50",
                             "--seed", "1", "--COLT", "--warmup", "2", "--sample_interval", "2",
                             "--budget", str(TINY_BUDGET), "--beta", "0.5", "--embed_batch_size", "1024"])
    common = ["--checkpoint", str(run / "model.pt"), "--save-dir", str(out / "infer"), "--num_workers", "0",
              "--device", "cpu", "--seed", "1", "--data", str(synthetic_root)]
    infer_features.main(["pool_noaug", "--inference_dataset", "synthetic_pool", "--inference_noAug", *common])
    infer_features.main(["train_noaug", "--inference_dataset", "synthetic", "--inference_noAug", *common])
    infer_features.main(["pool_aug", "--inference_dataset", "synthetic_pool", "--inference_repeat_time", "3", *common])
    sampling = ["--inference_root", str(out / "infer"), "--no_aug_sampling_dataset_inference_exp", "pool_noaug",
                "--sampling_num", str(TINY_BUDGET), "--split_save_dir", str(out / "split"), "--seed", "1",
                "--device", "cpu"]
    sample_mak.main([*sampling, "--no_aug_training_dataset_inference_exp", "train_noaug", "--loss_repeat_time", "3",
                     "--aug_sampling_dataset_inference_exp", "pool_aug", "--loss_txt_name", "mak"])
    sample_mak.main([*sampling, "--sampling_method", "random", "--loss_txt_name", "random"])
    return run, out / "split"


def _shares(summary) -> dict:
    return {name: cell["share"] for name, cell in summary["picks"]["relations"].items()}


def test_the_samplers_directions_on_a_tiny_run(tiny_run):
    """What the samplers prefer, on a tiny real run with a fixed seed (margins: see MARGINS)."""
    run, split = tiny_run
    colt_rounds = [_shares(json.loads((run / f"ood_round{r}.json").read_text())) for r in (1, 2)]
    mak, random = (_shares(json.loads((split / f"{n}.json").read_text())) for n in ("mak", "random"))
    pool_far = json.loads((split / "random.json").read_text())["picks"]["relations"]["far"]["pool_share"]
    assert abs(random["far"] - pool_far) < MARGINS["random"]
    for shares in colt_rounds:  # COLT draws near the ID classes: fewer far items than the pool holds
        assert shares["far"] < pool_far - MARGINS["colt_far"]
    assert mak["far"] > pool_far + MARGINS["mak_far"]  # MAK's ECLE and K-center draw far, diverse items
    terms = json.loads((split / "mak.json").read_text())["mak_terms"]
    ecle = terms["zscore_ecle"]  # far items are the hardest under augmentation: the most "tail-like" to ECLE
    assert ecle["far"] > max(ecle[name] for name in ("near tail", "near medium", "near head")) + MARGINS["mak_far_ecle"]
    # farthest-first from the ID set: K-center keeps more far items than the candidates hold
    assert mak["far"] > terms["candidates"]["relations"]["far"]["share"] + MARGINS["kcenter_far"]


def test_mak_terms_of_the_tiny_run_from_its_cache(tiny_run, synthetic_root):
    """sample_mak.py's "mak_terms": the score's terms per relation and the top-score candidates, recomputed from
    the ECLE and distances it cached and the pool's metadata."""
    from utils.picks import relation_means
    run, split = tiny_run
    summary = json.loads((split / "mak.json").read_text())
    cache = split.parent / "infer" / "pool_noaug" / "mak_cache"
    ecle = np.load(next(cache.glob("ecle_R3_*.npz")))["values"]
    distance = np.load(next(cache.glob("distance_K10_*.npz")))["values"]
    relations = item_relations(load_synthetic(synthetic_root)["ood_near_class"], summary["picks"]["class_counts"])
    terms = summary["mak_terms"]
    z_ecle, z_dist = (ecle - ecle.mean()) / ecle.std(), (distance - distance.mean()) / distance.std()
    for name, value in relation_means(relations, z_ecle).items():
        assert terms["zscore_ecle"][name] == pytest.approx(value, abs=1e-9)
    for name, value in relation_means(relations, 0.5 * z_ecle - 0.5 * z_dist).items():
        assert terms["score"][name] == pytest.approx(value, abs=1e-9)
    top = np.argsort(0.5 * z_ecle - 0.5 * z_dist)[-int(1.5 * TINY_BUDGET):]
    assert terms["candidates"] == picks_summary(relations, top)
    chosen = np.load(split / "mak.npy")
    assert np.isin(chosen, top).all()  # K-center chose among the candidates
