"""The papers' shell launchers: generated commands (--dry_run), safety, and one end-to-end CPU run."""
import os
import shlex
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import REPO_ROOT

SCRIPTS = REPO_ROOT / "cmds" / "shell_scrips"


def launch(script, *args, env=None, cwd=REPO_ROOT, timeout=60):
    environment = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    for name in ("SLURM_NNODES", "SLURM_NODEID", "SLURM_JOB_NODELIST", "DATA", "OOD_DATA"):
        if env is None or name not in env:
            environment.pop(name, None)
    return subprocess.run(["bash", str(SCRIPTS / script), *args], capture_output=True, text=True, cwd=cwd,
                          env=environment, timeout=timeout)


def dry_run(script, *args, **kwargs):
    """The commands a launcher would run, each split into words."""
    result = launch(script, *args, "--dry_run", **kwargs)
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.strip().splitlines()]


def flag(command, name):
    return command[command.index(name) + 1]


def test_cifar10_simclr_defaults(tmp_path):
    pretrain, full, few = dry_run("cifar-10-LT_extra.sh", "-g", "1", "-p", "4867", "-w", "8", "--split",
                                  "split1_D_i", "--data", str(tmp_path))
    assert pretrain[1] == "train_simclr.py" and "--COLT" not in pretrain  # one process: no torchrun
    for name, value in [("--dataset", "cifar10"), ("--model", "res18"), ("--epochs", "2000"), ("--batch_size", "512"),
                        ("--lr", "0.5"), ("--temperature", "0.2"), ("--num_workers", "8"), ("--data", str(tmp_path))]:
        assert flag(pretrain, name) == value, name
    assert flag(pretrain, "--trainSplit") == str(REPO_ROOT / "splits/cifar10/split1_D_i.npy")
    assert pretrain[pretrain.index("train_simclr.py") + 1] == "SimCLR_split1_D_i"
    assert full[1] == "train_linear.py" and flag(full, "--trainSplit").endswith("splits/cifar10/trainIdxList.npy")
    assert flag(full, "--epochs") == "30" and flag(full, "--checkpoint").endswith(
        "checkpoints/cifar10/SimCLR_split1_D_i/model.pt")
    assert few[1] == "train_fewshot.py" and flag(few, "--trainSplit").endswith("splits/cifar10/split1_S_b.npy")
    assert flag(few, "--epochs") == "100" and flag(few, "--valSplit").endswith("valIdxList.npy")


@pytest.mark.parametrize("script,args,expected", [
    ("cifar-10-LT_extra.sh", ["-g", "1", "-p", "4867", "-w", "8", "--split", "split1_D_i", "--save_dir", "COLT",
                              "--COLT", "True"],
     {"--sup_weight": "0.2", "--sample_set": "300K_random_images", "--model": "res18", "--epochs": "2000"}),
    ("cifar-100-LT_extra.sh", ["-g", "1", "-p", "4867", "-w", "8", "--split", "cifar100_split1_D_i", "--save_dir",
                               "COLT", "--COLT", "True"],
     {"--dataset": "cifar100", "--sup_weight": "0.2", "--batch_size": "512"}),
    ("imagenet-100-res50-LT_extra.sh", ["--data", "/path/to/imagenet", "-g", "2", "-p", "4867", "-w", "10",
                                        "--split", "imageNet_100_LT_train", "--save_dir", "COLT", "--COLT", "True"],
     {"--dataset": "imagenet100", "--model": "res50", "--epochs": "500", "--batch_size": "256",
      "--sup_weight": "0.01", "--sample_set": "image_list"}),
    ("places365-LT_extra.sh", ["--data", "/path/to/places", "-g", "2", "-p", "4867", "-w", "10", "--split",
                               "Places_LT_train", "--save_dir", "COLT", "--COLT", "True"],
     {"--dataset": "places", "--model": "res50", "--epochs": "500", "--sup_weight": "0.01"}),
])
def test_the_papers_colt_commands(script, args, expected):
    commands = dry_run(script, *args)
    pretrain, full, few = commands[-3:]
    common = {"--COLT": None, "--warmup": "100", "--sample_interval": "25", "--budget": "10000",
              "--k_largest_logits": "10", "--k_means_clusters": "10"}
    for name, value in {**common, **expected}.items():
        assert name in pretrain, name
        if value is not None:
            assert flag(pretrain, name) == value, name
    gpus = "2" if "imagenet" in script or "places" in script else "1"
    if gpus == "1":
        assert len(commands) == 3 and pretrain[1] == "train_simclr.py"
    else:  # several processes: a plain check of every input first, then torchrun
        assert len(commands) == 4 and f"--nproc_per_node={gpus}" in pretrain and "--master_port=4867" in pretrain
        check = commands[0]
        assert check[-1] == "--check_only" and check[1:-1] == pretrain[pretrain.index("train_simclr.py"):]
    name = pretrain[pretrain.index("train_simclr.py") + 1]
    assert name.startswith("COLT_") and flag(full, "--method") == "COLT" == flag(few, "--method")
    if "--data" in args:
        assert flag(pretrain, "--data") == args[args.index("--data") + 1]
    if gpus == "2":
        assert flag(full, "--testSplit").endswith("_test.txt") and flag(few, "--trainSplit").endswith("_1pct.txt")


def test_cifar10_ood_pool_defaults_to_the_data_folder(tmp_path):
    pretrain = dry_run("cifar-10-LT_extra.sh", "--COLT", "True", "--data", str(tmp_path))[0]
    assert flag(pretrain, "--ood_data") == str(tmp_path / "300K_random_images.npy")
    pretrain = dry_run("cifar-10-LT_extra.sh", "--COLT", "True", "--ood_data", "pool.npy", cwd=tmp_path)[0]
    assert flag(pretrain, "--ood_data") == str(tmp_path / "pool.npy")  # relative to where it was started


def test_multi_node_flags_and_slurm():
    pretrain = dry_run("imagenet-100-res50-LT_extra.sh", "-g", "8", "--nnodes", "2", "--node_rank", "1",
                       "--master_addr", "node0")[1]
    assert {"--nnodes=2", "--node_rank=1", "--master_addr=node0", "--nproc_per_node=8"} <= set(pretrain)
    pretrain = dry_run("cifar-10-LT_extra.sh", env={"SLURM_NNODES": "4", "SLURM_NODEID": "3"})[1]
    assert {"--nnodes=4", "--node_rank=3"} <= set(pretrain)


def test_stage_selection_flags():
    assert len(dry_run("cifar-10-LT_extra.sh", "--only_finetuning", "True")) == 2
    only_few = dry_run("cifar-10-LT_extra.sh", "--few_shot_only", "True")
    assert len(only_few) == 1 and only_few[0][1] == "train_fewshot.py"
    test_only = dry_run("cifar-10-LT_extra.sh", "--test_only", "True")
    assert len(test_only) == 2 and all("--test_only" in c for c in test_only)
    assert "--resume" in dry_run("cifar-10-LT_extra.sh", "--resume", "True")[0]


@pytest.mark.parametrize("args,message", [(["--bogus", "1"], "unknown option '--bogus'"),
                                          (["--COLT", "maybe"], "--COLT takes True or False"),
                                          (["--split"], "--split needs a value")])
def test_bad_flags_print_usage_and_fail(args, message):
    result = launch("cifar-10-LT_extra.sh", *args)
    assert result.returncode == 2 and message in result.stderr and "usage:" in result.stderr
    assert result.stdout == ""


def test_correct_spelling_is_the_same_scripts():
    link = REPO_ROOT / "cmds" / "shell_scripts"
    assert link.is_symlink() and link.resolve() == SCRIPTS.resolve()


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_is_clean():
    scripts = sorted(str(p) for p in (REPO_ROOT / "cmds").rglob("*.sh") if "shell_scripts" not in p.parts)
    result = subprocess.run(["shellcheck", "-x", *scripts], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_cifar10(tmp_path):
    """A CIFAR-10-format folder (60 images a class, a 300-image pool) and the split files the launcher reads."""
    from data.cifar import write_cifar
    rng = np.random.default_rng(0)
    per_class, test_per_class = 60, 20
    train_y = np.repeat(np.arange(10), per_class)
    test_y = np.repeat(np.arange(10), test_per_class)
    write_cifar(tmp_path / "data", "cifar10", rng.integers(0, 256, (len(train_y), 32, 32, 3), dtype=np.uint8),
                train_y, rng.integers(0, 256, (len(test_y), 32, 32, 3), dtype=np.uint8), test_y)
    np.save(tmp_path / "data" / "300K_random_images.npy", rng.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8))
    splits = tmp_path / "splits"
    splits.mkdir()
    members = [np.flatnonzero(train_y == c) for c in range(10)]
    lt_counts = [50, 40, 32, 25, 20, 16, 12, 10, 8, 6]
    np.save(splits / "valIdxList.npy", np.concatenate([m[:10] for m in members]))
    np.save(splits / "trainIdxList.npy", np.concatenate([m[10:] for m in members]))
    np.save(splits / "split1_D_i.npy", np.concatenate([m[10:10 + n] for m, n in zip(members, lt_counts)]))
    np.save(splits / "split1_S_b.npy", np.concatenate([m[10:14] for m in members]))
    return tmp_path / "data", splits


def test_cifar10_script_end_to_end_on_a_tiny_fixture(tmp_path):
    """Pre-training with COLT, both probes and the report on a CIFAR-format fixture, on the CPU."""
    data, splits = tiny_cifar10(tmp_path)
    runs = tmp_path / "runs"
    result = launch("cifar-10-LT_extra.sh", "-g", "1", "-p", str(_free_port()), "-w", "0", "--split", "split1_D_i",
                    "--save_dir", "COLT", "--COLT", "True", "--data", str(data), "--split_dir",
                    str(splits), "--runs_dir", str(runs), "-e", "2", "--warmup", "1", "--sample_interval", "1",
                    "--budget", "32", "--batch_size", "32", "--width", "4", "--k_means_clusters", "3",
                    "--k_largest_logits", "5", "--cached_features", "True", "--probe_epochs", "2",
                    "--fewshot_epochs", "2", timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    run_dir = runs / "COLT_split1_D_i"
    assert (run_dir / "model.pt").is_file() and (run_dir / "ood_round1.npy").is_file()
    assert (run_dir / "bash_log.txt").read_text().count("\n") == 3
    for probe in ("COLT_split1_D_i_full", "COLT_split1_D_i_few"):
        assert (runs / "probes" / probe / "results.json").is_file()
    report = subprocess.run([sys.executable, "report.py", str(runs / "probes"), "--out", str(tmp_path / "table")],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert report.returncode == 0 and "| COLT |" in report.stdout and (tmp_path / "table" / "table.md").is_file()


def test_the_first_failing_step_stops_the_script(tmp_path):
    """Fine-tuning without a checkpoint fails at the full-shot probe; the few-shot probe never runs."""
    for name in ("trainIdxList", "valIdxList", "split1_S_b"):  # split files exist: the checkpoint is what is missing
        np.save(tmp_path / f"{name}.npy", np.arange(3))
    result = launch("cifar-10-LT_extra.sh", "--only_finetuning", "True", "--runs_dir", str(tmp_path),
                    "--data", str(tmp_path), "--split_dir", str(tmp_path), timeout=120)
    assert result.returncode != 0
    log = (tmp_path / "SimCLR_split1_D_i" / "bash_log.txt").read_text()
    assert "train_linear.py" in log and "train_fewshot.py" not in log


TINY = ("-e", "2", "--batch_size", "32", "--width", "4", "--cached_features", "True", "--probe_epochs", "2",
        "--fewshot_epochs", "2")


def test_the_sdclr_and_bcl_readme_commands_run_on_a_tiny_fixture(tmp_path):
    """The SDCLR release's commands word for word (then the tiny sizes), BCL-D + COLT, test-only probing and
    the release's summary command, for real on the CPU."""
    data, splits = tiny_cifar10(tmp_path)
    runs = tmp_path / "runs"
    where = ("--data", str(data), "--split_dir", str(splits), "--runs_dir", str(runs), "-p", str(_free_port()))
    sdclr = ("-g", "1", "-w", "8", "--split", "split1_D_i", "--prune", "True", "--prune_percent", "0.9",
             "--prune_dual_bn", "True")
    result = launch("cifar-10-LT.sh", *sdclr, *where, *TINY, "-w", "0", timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    state = torch.load(runs / "SDCLR_split1_D_i" / "model.pt", weights_only=True)
    assert state["args"]["prune"] and state["args"]["prune_dual_bn"] and state["args"]["prune_percent"] == 0.9
    assert any(".pruned." in k for k in state["state_dict"])
    result = launch("cifar-10-LT.sh", *sdclr, "--only_finetuning", "True", "--test_only", "True", *where, *TINY,
                    "-w", "0", timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    result = launch("cifar-10-LT_extra.sh", "-g", "1", "--split", "split1_D_i", "--bcl", "True", "--rand_k", "2",
                    "--prune", "True", "--prune_dual_bn", "True", "--COLT", "True", "--warmup", "1",
                    "--sample_interval", "1", "--budget", "32", "--k_means_clusters", "3", "--k_largest_logits", "5",
                    *where, *TINY, "-w", "0", timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    state = torch.load(runs / "BCL-D+COLT_split1_D_i" / "model.pt", weights_only=True)
    assert {"bcl", "colt"} <= state.keys() and (state["bcl"]["strengths"] != 0).any()
    for probe in ("SDCLR_split1_D_i_full", "SDCLR_split1_D_i_few", "BCL-D+COLT_split1_D_i_few"):
        assert (runs / "probes" / probe / "results.json").is_file(), probe
    summary = subprocess.run([sys.executable, "exp_analyse.py", "--dataset", "cifar10", "--LT", "--prune",
                              "--runs_dir", str(runs)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert summary.returncode == 0 and "| SDCLR |" in summary.stdout, summary.stdout + summary.stderr


def test_the_bcl_readme_commands_as_mapped_run_on_a_tiny_fixture(tmp_path):
    """The BCL release's train.py / train_sdclr.py commands in the README's mapping to train_simclr.py, with the
    tiny sizes appended (later flags win)."""
    data, splits = tiny_cifar10(tmp_path)
    tiny = ("--save-dir", str(tmp_path / "runs"), "--epochs", "1", "--max_steps_per_epoch", "2", "--width", "4",
            "--batch_size", "16", "--num_workers", "0", "--device", "cpu")
    commands = {
        "BCL_I": "--bcl --rand_k 1 --lr 0.5 --epochs 2000 --temperature 0.2 --weight_decay 5e-4",
        "BCL_D": "--prune --prune_percent 0.9 --prune_dual_bn --bcl --rand_k 2 --lr 0.5 --epochs 2000 "
                 "--temperature 0.2 --weight_decay 1e-4",
    }
    for name, flags in commands.items():
        argv = [sys.executable, "train_simclr.py", name, "--dataset", "cifar10", "--data", str(data), *flags.split(),
                "--trainSplit", str(splits / "split1_D_i.npy"), *tiny]
        result = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        assert "bcl" in torch.load(tmp_path / "runs" / name / "model.pt", weights_only=True)
