"""The pre-training script end to end on tiny settings: a step, crash-and-resume, errors, two processes."""
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import train_simclr
from data.synthetic import load_synthetic
from methods import Batch, SimCLR
from sampling.colt import COLT, COLTConfig
from models import build_simclr
from tests.conftest import REPO_ROOT
from tests.multiprocess import run_processes


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    load_synthetic(root)  # generate once for the whole session
    return root


def tiny_args(synthetic_root, save_dir, *extra):
    return ["run", "--dataset", "synthetic", "--data", str(synthetic_root), "--save-dir", str(save_dir),
            "--width", "4", "--batch_size", "16", "--epochs", "2", "--max_steps_per_epoch", "2",
            "--lr_warmup_epochs", "1", "--num_workers", "0", "--device", "cpu", "--print_freq", "1", *extra]


def final_weights(run_dir):
    return torch.load(run_dir / "model.pt", weights_only=True)["state_dict"]


def test_one_step_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = build_simclr("res18", width=4, output_ch=16)
    views = torch.randint(0, 256, (16, 2, 3, 32, 32), dtype=torch.uint8)
    batch = Batch(views, torch.arange(16), torch.zeros(16, dtype=torch.bool))
    method = SimCLR(model, temperature=0.2)
    # lr 0.05: normalised inputs are about 4x larger than levels / 255, and 0.1 overshoots on noise
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    before = method.step(batch).loss
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    after = method.step(batch).loss
    assert after.item() < before.item()


@pytest.mark.parametrize("aug_device", ["cpu", "gpu"])  # per-image workers / batched (on the CPU here)
def test_outputs_and_bitwise_repeatability(synthetic_root, tmp_path, aug_device):
    a = train_simclr.main(tiny_args(synthetic_root, tmp_path / "a", "--aug_device", aug_device))
    b = train_simclr.main(tiny_args(synthetic_root, tmp_path / "b", "--aug_device", aug_device))
    for name in ("args.json", "log.txt", "model.pt", "model_2.pt"):
        assert (a / name).is_file(), name
    assert list((a / "tensorboard").glob("events.out.tfevents.*"))
    state = torch.load(a / "model.pt", weights_only=True)
    assert state["epoch"] == 2 and {"optimizer", "scheduler", "rng", "args"} <= state.keys()
    wa, wb = final_weights(a), final_weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("aug_device", ["cpu", "gpu"])
def test_resume_after_a_crash_equals_an_uninterrupted_run(synthetic_root, tmp_path, monkeypatch, aug_device):
    straight = train_simclr.main(tiny_args(synthetic_root, tmp_path / "straight", "--epochs", "3",
                                           "--aug_device", aug_device))
    original = train_simclr.train_one_epoch

    def crash_in_epoch_3(*args, **kwargs):
        if args[6] == 3:  # the epoch argument
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(train_simclr, "train_one_epoch", crash_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_simclr.main(tiny_args(synthetic_root, tmp_path / "resumed", "--epochs", "3", "--aug_device", aug_device))
    monkeypatch.setattr(train_simclr, "train_one_epoch", original)
    assert torch.load(tmp_path / "resumed/run/model.pt", weights_only=True)["epoch"] == 2
    resumed = train_simclr.main(tiny_args(synthetic_root, tmp_path / "resumed", "--epochs", "3", "--resume",
                                          "--aug_device", aug_device))
    ws, wr = final_weights(straight), final_weights(resumed)
    assert all(torch.equal(ws[k], wr[k]) for k in ws)
    assert "resumed from" in (resumed / "log.txt").read_text()


def test_an_existing_run_is_never_overwritten(synthetic_root, tmp_path):
    run_dir = train_simclr.main(tiny_args(synthetic_root, tmp_path, "--epochs", "1"))
    before = (run_dir / "model.pt").read_bytes()
    with pytest.raises(SystemExit, match="already holds a run"):
        train_simclr.main(tiny_args(synthetic_root, tmp_path, "--epochs", "1"))
    assert (run_dir / "model.pt").read_bytes() == before
    train_simclr.main(tiny_args(synthetic_root, tmp_path, "--epochs", "1", "--overwrite", "--seed", "5"))
    assert (run_dir / "model.pt").read_bytes() != before


def run_cli(*argv):
    return subprocess.run([sys.executable, str(REPO_ROOT / "train_simclr.py"), *argv], capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=120)


@pytest.mark.parametrize("make_args,message", [
    (lambda tmp, root: ["--dataset", "cifar10", "--data", str(tmp / "nowhere")], "not found"),
    (lambda tmp, root: ["--dataset", "synthetic", "--data", str(root), "--trainSplit", str(tmp / "bad.npy")],
     "out of range"),
    (lambda tmp, root: ["--dataset", "synthetic", "--data", str(root), "--trainSplit", "no_such_split"],
     "not found"),
    (lambda tmp, root: ["--dataset", "mnist"], "unknown dataset"),
])
def test_bad_input_gives_one_error_line_and_writes_nothing(tmp_path, synthetic_root, make_args, message):
    np.save(tmp_path / "bad.npy", np.array([0, 5, 10**6], dtype=np.int64))
    result = run_cli(*make_args(tmp_path, synthetic_root), "--save-dir", str(tmp_path / "runs"),
                     "--device", "cpu", "--num_workers", "0")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert message in lines[-1] and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "runs").exists()


def _train_in_process(rank, world_size, argv):
    return str(train_simclr.main(argv))


def test_two_gloo_processes_train_and_save_once(synthetic_root, tmp_path):
    argv = tiny_args(synthetic_root, tmp_path, "--epochs", "1")
    dirs = run_processes(_train_in_process, 2, argv)
    assert dirs[0] == dirs[1]
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "2 process(es)" in log and log.count("epoch 1/1 loss") == 1
    assert torch.load(tmp_path / "run" / "model.pt", weights_only=True)["epoch"] == 1


def test_published_split_files_load_unchanged(shared_data, monkeypatch, tmp_path):
    splits = shared_data / "original-splits"
    if not splits.is_dir():
        pytest.skip("no published split files")
    import data.cifar
    from data.build import build_train_set
    labels = np.load(shared_data / "cifar10-salvage.npz")["all_train_labels"]
    images = np.zeros((50000, 32, 32, 3), dtype=np.uint8)
    monkeypatch.setattr(data.cifar, "read_cifar", lambda root, dataset, train=True: (images, labels))
    expected = {"D_i": [4500, 2697, 1617, 969, 581, 348, 208, 125, 75, 45], "D_b": [1116] * 10, "S_b": [45] * 10}
    for k in range(1, 6):
        for kind, counts in expected.items():
            path = splits / "cifar10_imbSub_with_subsets" / f"split{k}_{kind}.npy"
            ds = build_train_set("cifar", tmp_path, str(path))
            assert sorted(np.bincount(ds.labels, minlength=10), reverse=True) == counts
    for name in ("cifar10/trainIdxList.npy", "cifar10/valIdxList.npy"):
        assert len(build_train_set("cifar10", tmp_path, str(splits / name))) in (45000, 5000)


def test_two_steps_on_real_cifar_images(shared_data, tmp_path):
    """Real CIFAR-10 images in the official pickle format, a long-tailed index file, two training steps."""
    from data.cifar import write_cifar
    real = np.load(shared_data / "cifar10-salvage.npz")
    write_cifar(tmp_path / "data", "cifar10", real["train_x"], real["train_y"], real["test_x"], real["test_y"])
    labels = real["train_y"]
    counts = [200, 120, 70, 40, 25, 15, 10, 6, 4, 2]  # a small long tail
    split = np.concatenate([np.flatnonzero(labels == c)[:n] for c, n in enumerate(counts)])
    np.save(tmp_path / "lt.npy", split)
    run_dir = train_simclr.main(["real", "--dataset", "cifar10", "--data", str(tmp_path / "data"),
                                 "--trainSplit", str(tmp_path / "lt.npy"), "--save-dir", str(tmp_path / "runs"),
                                 "--width", "4", "--batch_size", "32", "--epochs", "1",
                                 "--max_steps_per_epoch", "2", "--num_workers", "0", "--device", "cpu"])
    log = (run_dir / "log.txt").read_text()
    assert f"cifar10: {len(split)} training images" in log and "epoch 1/1 loss" in log
    assert torch.isfinite(torch.load(run_dir / "model.pt", weights_only=True)["state_dict"]["fc.fc2.weight"]).all()


def _colt_step(device, precision, views, index, is_ood):
    """Loss, parameter gradients and tailness scores of one SimCLR+COLT step of a fixed model."""
    torch.manual_seed(0)
    model = build_simclr("res18", width=16, output_ch=32).to(device)  # BN in train mode: batch statistics
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    args = train_simclr.parse_args(["--COLT", "--sup_weight", "0.2", "--k_largest_logits", "10",
                                    "--precision", precision, "--warmup", "0", "--sample_interval", "1"])
    colt = COLT(64, COLTConfig.from_args(args, pool_size=64), device)
    out = SimCLR(model, args.temperature, args.precision).step(Batch(views, index, is_ood))
    loss = out.loss + colt.extra_loss(out)
    loss.backward()
    colt.step_end(out, epoch=1)
    grads = torch.cat([p.grad.flatten().cpu() for p in model.parameters()])
    return loss.item(), grads, colt.tracker.scores.cpu()


def _cosine(a, b):
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0).item()


@pytest.mark.cuda
def test_training_loss_and_gradients_on_the_accelerator_equal_the_cpu(accelerator, monkeypatch):
    """One SimCLR+COLT step (NT-Xent + distribution loss + tailness) of a width-16 ResNet-18 on 48 ID and
    16 OOD images. fp32 with TF32 off (cuDNN's TF32 convolutions are PyTorch's default; off here so that
    only reduction order differs): loss within 1e-4 relative, gradient cosine >= 0.9999, tailness within
    1e-4. bf16 autocast against fp32 on the accelerator: loss within 2e-2 relative, gradient cosine
    >= 0.97, tailness within 2e-2 (bf16 keeps 8 mantissa bits; the losses and scores stay float32)."""
    g = torch.Generator().manual_seed(1)
    views = torch.randint(0, 256, (64, 2, 3, 32, 32), dtype=torch.uint8, generator=g)
    index = torch.arange(64)
    is_ood = torch.arange(64) >= 48
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    cpu = _colt_step(torch.device("cpu"), "fp32", views, index, is_ood)
    fp32 = _colt_step(accelerator, "fp32", views, index, is_ood)
    assert math.isclose(fp32[0], cpu[0], rel_tol=1e-4)
    assert _cosine(fp32[1], cpu[1]) >= 0.9999
    torch.testing.assert_close(fp32[2], cpu[2], rtol=0, atol=1e-4, equal_nan=True)
    assert (~torch.isnan(cpu[2])).sum() == 48
    monkeypatch.undo()
    bf16 = _colt_step(accelerator, "bf16", views, index, is_ood)
    fp32 = _colt_step(accelerator, "fp32", views, index, is_ood)
    assert math.isclose(bf16[0], fp32[0], rel_tol=2e-2)
    assert _cosine(bf16[1], fp32[1]) >= 0.97
    torch.testing.assert_close(bf16[2], fp32[2], rtol=0, atol=2e-2, equal_nan=True)
