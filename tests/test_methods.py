"""Methods and plug-ins through the training script: COLT's tailness on SDCLR by hand, exact resume of every
method with and without COLT, BCL's strengths reaching the views."""
import numpy as np
import pytest
import torch

import train_simclr
from methods import SDCLR, Batch
from models.sdclr import build_sdclr
from sampling.colt import COLT, COLTConfig
from tests.test_tailness import brute_force_tailness
from tests.test_train import final_weights, synthetic_root, tiny_args  # noqa: F401 (fixture)


def test_colt_tailness_on_sdclr_equals_a_hand_computation_from_dense_and_pruned_embeddings():
    torch.manual_seed(0)
    network = build_sdclr("res18", width=4, output_ch=8, dual_bn=True)
    method = SDCLR(network, temperature=0.2, precision="fp32", prune_percent=0.5)
    method.epoch_start(1)
    g = torch.Generator().manual_seed(1)
    views = torch.randint(0, 256, (6, 2, 3, 32, 32), dtype=torch.uint8, generator=g)
    index = torch.tensor([4, 0, 2, 5, 1, 3])
    args = train_simclr.parse_args(["--COLT", "--k_largest_logits", "3", "--warmup", "0", "--sample_interval", "1"])
    colt = COLT(6, COLTConfig.from_args(args, pool_size=10))
    out = method.step(Batch(views, index, torch.zeros(6, dtype=torch.bool)))
    colt.step_end(out, epoch=1)
    from utils.device import to_device
    with torch.no_grad():  # train mode as in the step: the same batch statistics
        dense = network.forward_branch(to_device(views[:, 0], torch.device("cpu")), pruned=False)
        pruned = network.forward_branch(to_device(views[:, 1], torch.device("cpu")), pruned=True)
    expected = brute_force_tailness(dense, pruned, 0.2, 3)
    torch.testing.assert_close(colt.tracker.scores[index].double(), expected, rtol=1e-4, atol=1e-6)


METHOD_FLAGS = {"sdclr": ("--prune", "--prune_percent", "0.5", "--prune_dual_bn"),
                "bcl_i": ("--bcl", "--rand_k", "1"),
                "bcl_d": ("--bcl", "--rand_k", "2", "--prune", "--prune_percent", "0.5", "--prune_dual_bn")}
COLT_FLAGS = ("--COLT", "--warmup", "1", "--sample_interval", "1", "--budget", "48", "--k_means_clusters", "3",
              "--k_largest_logits", "5", "--embed_batch_size", "1024")


@pytest.mark.parametrize("colt", [False, True], ids=["plain", "colt"])
@pytest.mark.parametrize("method", list(METHOD_FLAGS))
def test_resume_after_a_crash_equals_an_uninterrupted_run(synthetic_root, tmp_path, monkeypatch, method, colt):
    extra = (*METHOD_FLAGS[method], *(COLT_FLAGS if colt else ()), "--epochs", "3", "--aug_device", "gpu")
    straight = train_simclr.main(tiny_args(synthetic_root, tmp_path / "straight", *extra))
    original = train_simclr.train_one_epoch

    def crash_in_epoch_3(*args, **kwargs):
        if args[6] == 3:  # the epoch argument
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(train_simclr, "train_one_epoch", crash_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_simclr.main(tiny_args(synthetic_root, tmp_path / "resumed", *extra))
    monkeypatch.setattr(train_simclr, "train_one_epoch", original)
    resumed = train_simclr.main(tiny_args(synthetic_root, tmp_path / "resumed", *extra, "--resume"))
    ws, wr = final_weights(straight), final_weights(resumed)
    assert ws.keys() == wr.keys() and all(torch.equal(ws[k], wr[k]) for k in ws)
    a = torch.load(straight / "model.pt", weights_only=True)
    b = torch.load(resumed / "model.pt", weights_only=True)
    for key in ("bcl", "colt"):
        assert (key in a) == (key in b)
    if "bcl" in a:
        assert torch.equal(a["bcl"]["strengths"], b["bcl"]["strengths"])
        assert (a["bcl"]["strengths"] != 0).any()
        torch.testing.assert_close(a["bcl"]["momentum"]["scores"], b["bcl"]["momentum"]["scores"], rtol=0, atol=0,
                                   equal_nan=True)
    if "colt" in a:
        assert torch.equal(a["colt"]["ood_indices"], b["colt"]["ood_indices"])


def test_each_method_names_itself_in_the_log_and_args(synthetic_root, tmp_path):
    import json
    run_dir = train_simclr.main(tiny_args(synthetic_root, tmp_path, "--epochs", "1", *METHOD_FLAGS["bcl_d"]))
    record = json.loads((run_dir / "args.json").read_text())["run"]
    assert record["method"] == "BCL-D" and record["arithmetic"] == "fp32" and "commit" in record
    assert "sdclr + bcl" in (run_dir / "log.txt").read_text()
