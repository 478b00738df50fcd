"""The MAK launchers: the MAK README's commands word for word (--dry_run), names that agree between the steps,
CIFAR commands, bad flags, shellcheck, and one end-to-end CIFAR-10 run on the CPU."""
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from tests.test_launchers import SCRIPTS, dry_run, launch
NEW_SCRIPTS = ("imagenet-100-add-data.sh", "imagenet-100-inference.sh", "cifar-10-LT-inference.sh",
               "cifar-100-LT-inference.sh", "sampling.sh")
RUN = "imageNet_100_LT_train_res50_scheduling_sgd_lr0.5_temp0.2_epoch1000_batch256_s10"
SPLIT = "optimize_0.5lossR10_nearK10_coreR1.5_num10000_s10"
# The MAK README's commands (cmds/execute_hist/cmds_add_data.sh of the release), word for word
README = {
    "pretrain": "imagenet-100-add-data.sh -g 2 -p 4866 -w 10 --seed 10 --additional_dataset None",
    "pool": "imagenet-100-inference.sh -p 5555 --workers 10 --pretrain_seed 10 --epochs 1000 --batch_size 256 "
            "--inference_dataset imagenet-900 --inference_dataset_split ImageNet_900_train --inference_repeat_time 1 "
            "--inference_noAug True",
    "train": "imagenet-100-inference.sh -p 5555 --workers 10 --pretrain_seed 10 --epochs 1000 --batch_size 256 "
             "--inference_dataset imagenet-100 --inference_dataset_split imageNet_100_LT_train "
             "--inference_repeat_time 1 --inference_noAug True",
    "aug": "imagenet-100-inference.sh -p 5555 --workers 10 --pretrain_seed 10 --epochs 1000 --batch_size 256 "
           "--inference_dataset imagenet-900 --inference_dataset_split ImageNet_900_train --inference_repeat_time 10",
    "sampling": "sampling.sh --pretrain_seed 10",
    "retrain": f"imagenet-100-add-data.sh -g 2 -p 4866 -w 10 --seed 10 --additional_dataset imagenet-900 "
               f"--additional_split MAK/{SPLIT} --additional_split_name {SPLIT}",
}


def readme(key, *extra, **kwargs):
    script, *args = README[key].split()
    return dry_run(script, *args, *extra, **kwargs)


def flag(command, name):
    return command[command.index(name) + 1]


def after(command, script):
    """The positional argument (run or output name) after the Python script."""
    return command[command.index(script) + 1]


def test_the_readme_commands_agree_with_each_other():
    pretrain, full, few = readme("pretrain")
    assert pretrain[1:3] == ["-m", "torch.distributed.run"]
    assert {"--nproc_per_node=2", "--master_port=4866"} <= set(pretrain)
    assert after(pretrain, "train_simclr.py") == RUN and "--additional_dataset" not in pretrain
    for name, value in [("--model", "res50"), ("--epochs", "1000"), ("--batch_size", "256"), ("--lr", "0.5"),
                        ("--temperature", "0.2"), ("--seed", "10"), ("--num_workers", "10"),
                        ("--dataset", "imagenet100"), ("--output_ch", "128"), ("--optimizer", "sgd")]:
        assert flag(pretrain, name) == value, name
    runs = flag(pretrain, "--save-dir")
    assert runs == str(REPO_ROOT / "checkpoints" / "imagenet100")
    assert flag(pretrain, "--trainSplit") == str(REPO_ROOT / "splits/imagenet100/imageNet_100_LT_train.txt")
    checkpoint = f"{runs}/{RUN}/model.pt"
    assert flag(full, "--checkpoint") == checkpoint == flag(few, "--checkpoint")
    assert full[1] == "train_linear.py" and few[1] == "train_fewshot.py" and flag(full, "--method") == "SimCLR"
    assert flag(few, "--trainSplit").endswith("imageNet_100_train_1pct.txt")

    outputs = {}
    for key in ("pool", "train", "aug"):
        (command,) = readme(key)
        assert {"--nproc_per_node=2", "--master_port=5555"} <= set(command)  # the release's 2 GPUs
        assert flag(command, "--checkpoint") == checkpoint and flag(command, "--save-dir") == runs
        assert flag(command, "--num_workers") == "10" and flag(command, "--seed") == "10"
        outputs[key] = after(command, "infer_features.py")
        if key == "aug":
            assert flag(command, "--inference_repeat_time") == "10" and "--inference_noAug" not in command
        else:
            assert "--inference_noAug" in command and "--inference_repeat_time" not in command
        if key == "train":
            assert flag(command, "--inference_dataset_split") == flag(pretrain, "--trainSplit")
        else:
            assert flag(command, "--inference_dataset_split") == str(
                REPO_ROOT / "splits/imagenet900/ImageNet_900_train.txt")
    assert outputs == {"pool": f"Infer_imagenet-900_ImageNet_900_train_noAug__{RUN}",
                       "train": f"Infer_imagenet-100_imageNet_100_LT_train_noAug__{RUN}",
                       "aug": f"Infer_imagenet-900_ImageNet_900_train__{RUN}"}

    (sampling,) = readme("sampling")
    assert sampling[1] == "sample_mak.py" and "torch.distributed.run" not in sampling  # one process
    assert flag(sampling, "--inference_root") == runs
    assert flag(sampling, "--no_aug_sampling_dataset_inference_exp") == outputs["pool"]
    assert flag(sampling, "--no_aug_training_dataset_inference_exp") == outputs["train"]
    assert flag(sampling, "--aug_sampling_dataset_inference_exp") == outputs["aug"]
    for name, value in [("--sampling_num", "10000"), ("--loss_weight", "0.5"), ("--core_sample_ratio", "1.5"),
                        ("--K_means_num", "10"), ("--loss_repeat_time", "10"), ("--seed", "0"),
                        ("--sampling_method", "mak"), ("--loss_txt_name", SPLIT)]:  # seed: the release's k-means 0
        assert flag(sampling, name) == value, name
    written = f"{flag(sampling, '--split_save_dir')}/{flag(sampling, '--loss_txt_name')}.txt"

    pretrain, full, few = readme("retrain")
    assert flag(pretrain, "--additional_dataset") == "imagenet-900"
    assert flag(pretrain, "--additional_split") == written  # what sampling.sh writes is what add-data reads
    assert after(pretrain, "train_simclr.py") == f"{RUN}_addImagenet900{SPLIT}"
    assert flag(full, "--checkpoint") == f"{runs}/{RUN}_addImagenet900{SPLIT}/model.pt"
    assert flag(full, "--method") == flag(few, "--method") == SPLIT[:-len("_s10")]


def test_relative_paths_and_other_folders(tmp_path):
    """Paths are relative to where the script was started; sampling writes where add-data looks."""
    common = ["--runs_dir", "runs", "--pool_split_dir", "pool", "--data", "images"]
    (sampling,) = dry_run("sampling.sh", "--pretrain_seed", "20", "--sampling_num", "20000", *common, cwd=tmp_path)
    assert flag(sampling, "--split_save_dir") == str(tmp_path / "pool" / "MAK")
    assert flag(sampling, "--inference_root") == str(tmp_path / "runs")
    name = flag(sampling, "--loss_txt_name")
    assert name == "optimize_0.5lossR10_nearK10_coreR1.5_num20000_s20"
    pretrain = dry_run("imagenet-100-add-data.sh", "--seed", "20", "--additional_dataset", "imagenet-900",
                       "--additional_split", f"MAK/{name}", *common, cwd=tmp_path)[0]
    assert flag(pretrain, "--additional_split") == str(tmp_path / "pool" / "MAK" / f"{name}.txt")
    assert after(pretrain, "train_simclr.py").endswith(f"_s20_addImagenet900{name}")  # split name from the file
    assert flag(pretrain, "--data") == str(tmp_path / "images") and flag(pretrain, "--save-dir") == str(tmp_path / "runs")
    (pool,) = dry_run("imagenet-100-inference.sh", "-g", "1", "--inference_dataset", "imagenet-900", "--inference_noAug",
                      "True", *common, cwd=tmp_path)
    assert pool[1] == "infer_features.py"  # one process: no torchrun
    assert flag(pool, "--inference_dataset_split") == str(tmp_path / "pool" / "ImageNet_900_train.txt")


@pytest.mark.parametrize("method,args,needs", [
    ("mak", ["--core_sample_ratio", "1.0", "--loss_weight", "0.0"], {"pool", "train"}),  # proximity alone
    ("mak", ["--core_sample_ratio", "1.0", "--loss_weight", "0.5"], {"pool", "train", "aug"}),
    ("random", ["--sampling_method", "random"], {"pool"}),
    ("kcenter", ["--sampling_method", "kcenter"], {"pool", "train"}),
])
def test_sampling_ablations(method, args, needs):
    (command,) = dry_run("sampling.sh", "--pretrain_seed", "10", *args)
    present = {key for key, name in [("pool", "--no_aug_sampling_dataset_inference_exp"),
                                     ("train", "--no_aug_training_dataset_inference_exp"),
                                     ("aug", "--aug_sampling_dataset_inference_exp")] if name in command}
    assert present == needs and flag(command, "--sampling_method") == method
    if method == "mak":
        expected = f"optimize_{flag(args, '--loss_weight')}lossR10_nearK10_coreR1.0_num10000_s10"
    else:
        expected = f"{method}_num10000_s10"
    assert flag(command, "--loss_txt_name") == expected


@pytest.mark.parametrize("dataset,script,split,extra", [
    ("cifar10", "cifar-10-LT-inference.sh", "split1_D_i", "cifar-10-LT_extra.sh"),
    ("cifar100", "cifar-100-LT-inference.sh", "cifar100_split1_D_i", "cifar-100-LT_extra.sh"),
])
def test_cifar_steps_agree(tmp_path, dataset, script, split, extra):
    common = ["--data", str(tmp_path), "-s", split]
    pretrain = dry_run(extra, "--save_dir", "SimCLR", "--split", split, "--data", str(tmp_path))[0]
    run = after(pretrain, "train_simclr.py")
    assert run == f"SimCLR_{split}" and flag(pretrain, "--model") == "res18" and flag(pretrain, "--epochs") == "2000"
    runs = flag(pretrain, "--save-dir")
    pool_file = str(tmp_path / "300K_random_images.npy")
    outputs = {}
    for key, args in [("pool", ["--inference_dataset", "300K_random_images", "--inference_noAug", "True"]),
                      ("train", ["--inference_dataset", dataset, "--inference_noAug", "True"]),
                      ("aug", ["--inference_dataset", "300K_random_images", "--inference_dataset_split", pool_file])]:
        (command,) = dry_run(script, *common, *args)
        assert command[1] == "infer_features.py" and flag(command, "--checkpoint") == f"{runs}/{run}/model.pt"
        assert flag(command, "--save-dir") == runs
        outputs[key] = after(command, "infer_features.py")
        assert flag(command, "--inference_dataset_split") == (
            flag(pretrain, "--trainSplit") if key == "train" else pool_file)
    (sampling,) = dry_run("sampling.sh", "--pretrain_dataset", dataset, *common)
    assert flag(sampling, "--no_aug_sampling_dataset_inference_exp") == outputs["pool"] == \
        f"Infer_300K_random_images_300K_random_images_noAug__{run}"
    assert flag(sampling, "--no_aug_training_dataset_inference_exp") == outputs["train"]
    assert flag(sampling, "--aug_sampling_dataset_inference_exp") == outputs["aug"]
    assert flag(sampling, "--inference_root") == runs
    # one folder per long-tailed split, where train_simclr.py resolves --additional_split MAK/<split>/<name>
    assert flag(sampling, "--split_save_dir") == str(REPO_ROOT / "splits" / "300K_random_images" / "MAK" / split)


def test_cifar_rows_on_one_pool_and_budget(tmp_path):
    """SimCLR, SimCLR+random (online), SimCLR+MAK and SimCLR+COLT: one pool, one budget, one probes folder."""
    base = ["--split", "split1_D_i", "--data", str(tmp_path), "--budget", "5000"]
    split = tmp_path / "chosen.npy"
    np.save(split, np.arange(5))
    rows = {"SimCLR": [], "Random": ["--COLT", "True", "--ood_scorer", "random"], "COLT": ["--COLT", "True"],
            "MAK": ["--additional_dataset", "300K_random_images", "--additional_split", "chosen.npy"]}
    probes = set()
    for method, args in rows.items():
        pretrain, full, few = dry_run("cifar-10-LT_extra.sh", *base, "--save_dir", method, *args, cwd=tmp_path)
        assert flag(full, "--method") == method and flag(few, "--method") == method
        probes |= {flag(full, "--save-dir"), flag(few, "--save-dir")}
        if method in ("Random", "COLT"):
            assert flag(pretrain, "--ood_data") == str(tmp_path / "300K_random_images.npy")
            assert flag(pretrain, "--budget") == "5000"
            assert ("--ood_scorer" in pretrain) == (method == "Random")
        if method == "Random":
            assert flag(pretrain, "--ood_scorer") == "random"
        if method == "MAK":
            assert "--COLT" not in pretrain
            assert flag(pretrain, "--additional_split") == str(split)  # relative to where it was started
            assert flag(pretrain, "--additional_data") == str(tmp_path / "300K_random_images.npy")  # COLT's pool
    assert len(probes) == 1


@pytest.mark.parametrize("script,args,message", [
    ("sampling.sh", ["--bogus", "1"], "unknown option '--bogus'"),
    ("sampling.sh", ["--sampling_method", "best"], "--sampling_method takes mak, random or kcenter"),
    ("sampling.sh", ["--pretrain_dataset", "mnist"], "unknown --pretrain_dataset 'mnist'"),
    ("sampling.sh", ["--overwrite", "maybe"], "--overwrite takes True or False"),
    ("imagenet-100-inference.sh", ["--inference_noAug", "maybe"], "--inference_noAug takes True or False"),
    ("imagenet-100-inference.sh", ["--inference_dataset", "image_list"], "needs --inference_dataset_split"),
    ("imagenet-100-inference.sh", ["--inference_dataset", "mnist", "--inference_dataset_split", "x"],
     "unknown pool 'mnist'"),
    ("cifar-10-LT-inference.sh", ["-g", "0"], "-g takes a positive number"),
    ("imagenet-100-add-data.sh", ["--additional_dataset", "imagenet-900"], "needs --additional_split"),
    ("imagenet-100-add-data.sh", ["--additional_dataset", "300K_random_images", "--additional_split", "x"],
     "takes None or an image-list pool"),
    ("imagenet-100-add-data.sh", ["--seed"], "--seed needs a value"),
    ("imagenet-100-add-data.sh", ["--aug_strength", "0.5"], "unknown option '--aug_strength'"),
])
def test_bad_flags_print_usage_and_fail(script, args, message):
    result = launch(script, *args, "--dry_run")
    assert result.returncode == 2 and message in result.stderr and "usage:" in result.stderr, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("script", NEW_SCRIPTS)
def test_help(script):
    result = launch(script, "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage:") and "--dry_run" in result.stdout


def test_a_missing_inference_output_names_the_command_that_makes_it(tmp_path):
    result = launch("sampling.sh", "--pretrain_seed", "10", "--runs_dir", str(tmp_path))
    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: no inference output {tmp_path}/Infer_imagenet-900_ImageNet_900_train_noAug__")
    hint = shlex.split(line.split("make it with: ", 1)[1])
    assert hint[0] == "cmds/shell_scrips/imagenet-100-inference.sh"
    (command,) = dry_run(hint[0].rsplit("/", 1)[1], *hint[1:])  # the hint is a working command ...
    assert after(command, "infer_features.py") == f"Infer_imagenet-900_ImageNet_900_train_noAug__{RUN}"
    assert flag(command, "--save-dir") == str(tmp_path)  # ... that writes what sampling looks for
    (tmp_path / after(command, "infer_features.py")).mkdir()
    (tmp_path / after(command, "infer_features.py") / "meta.json").write_text("{}")
    result = launch("sampling.sh", "--pretrain_seed", "10", "--runs_dir", str(tmp_path))
    assert result.returncode == 1 and "Infer_imagenet-100_imageNet_100_LT_train_noAug__" in result.stderr
    assert "--inference_dataset imagenet-100 --inference_dataset_split imageNet_100_LT_train" in result.stderr


def test_a_missing_checkpoint_or_split_stops_before_python(tmp_path):
    result = launch("imagenet-100-inference.sh", "--runs_dir", str(tmp_path))
    assert result.returncode == 1 and "no pre-training checkpoint at" in result.stderr and result.stdout == ""
    result = launch("imagenet-100-add-data.sh", "--additional_dataset", "imagenet-900", "--additional_split",
                    "MAK/nothing", "--pool_split_dir", str(tmp_path), "--runs_dir", str(tmp_path))
    assert result.returncode == 1 and "no chosen items at" in result.stderr and "sampling.sh" in result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_is_clean():
    result = subprocess.run(["shellcheck", "-x", *(str(SCRIPTS / s) for s in NEW_SCRIPTS)],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cifar10_mak_end_to_end_on_a_tiny_fixture(tmp_path):
    """Pre-train -> 3 inferences -> sampling -> re-train with the chosen items -> probes -> report, through
    the launchers, on a CIFAR-format fixture and a 300-image 300K-format pool, on the CPU."""
    from data.cifar import write_cifar
    rng = np.random.default_rng(0)
    train_y, test_y = np.repeat(np.arange(10), 60), np.repeat(np.arange(10), 20)
    data = tmp_path / "data"
    write_cifar(data, "cifar10", rng.integers(0, 256, (len(train_y), 32, 32, 3), dtype=np.uint8), train_y,
                rng.integers(0, 256, (len(test_y), 32, 32, 3), dtype=np.uint8), test_y)
    np.save(data / "300K_random_images.npy", rng.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8))
    splits = tmp_path / "splits"
    splits.mkdir()
    members = [np.flatnonzero(train_y == c) for c in range(10)]
    np.save(splits / "valIdxList.npy", np.concatenate([m[:10] for m in members]))
    np.save(splits / "trainIdxList.npy", np.concatenate([m[10:] for m in members]))
    np.save(splits / "split1_D_i.npy", np.concatenate([m[10:10 + n] for m, n in
                                                       zip(members, [50, 40, 32, 25, 20, 16, 12, 10, 8, 6])]))
    np.save(splits / "split1_S_b.npy", np.concatenate([m[10:14] for m in members]))
    # relative paths, from the fixture folder
    where = ["--data", "data", "--split_dir", "splits", "--runs_dir", "runs"]
    small = ["-w", "0", "-e", "1", "--batch_size", "32", "--width", "4", "--cached_features", "True",
             "--probe_epochs", "1", "--fewshot_epochs", "1"]

    def step(script, *args):
        result = launch(script, *args, cwd=tmp_path, timeout=600)
        assert result.returncode == 0, f"{script}: " + result.stdout[-2000:] + result.stderr[-3000:]
        return result

    step("cifar-10-LT_extra.sh", "-p", str(_free_port()), "--save_dir", "SimCLR", *where, *small)
    pool = ["--inference_dataset", "300K_random_images", "--inference_dataset_split", "data/300K_random_images.npy"]
    infer = [*where, "-w", "0", "--batch_size", "64", "--chunk_size", "128"]
    step("cifar-10-LT-inference.sh", *infer, *pool, "--inference_repeat_time", "1", "--inference_noAug", "True")
    step("cifar-10-LT-inference.sh", *infer, "--inference_dataset", "cifar10", "--inference_dataset_split",
         "split1_D_i", "--inference_repeat_time", "1", "--inference_noAug", "True")
    step("cifar-10-LT-inference.sh", *infer, *pool, "--inference_repeat_time", "2")
    result = step("sampling.sh", "--pretrain_dataset", "cifar10", *where, "--pool_split_dir", "pool",
                  "--sampling_num", "24", "--loss_repeat_time", "2", "--K_means_num", "3")
    chosen = tmp_path / "pool" / "MAK" / "split1_D_i" / "optimize_0.5lossR2_nearK3_coreR1.5_num24_s10.npy"
    assert str(chosen) in result.stdout
    picked = np.load(chosen)
    assert len(picked) == len(set(picked.tolist())) == 24 and 0 <= picked.min() and picked.max() < 300
    assert json.loads(chosen.with_name(chosen.stem + ".json").read_text())["chosen"] == 24
    step("cifar-10-LT_extra.sh", "-p", str(_free_port()), "--save_dir", "MAK", *where, *small,
         "--additional_dataset", "300K_random_images", "--additional_split", str(chosen.relative_to(tmp_path)))

    runs = tmp_path / "runs"
    args = json.loads((runs / "MAK_split1_D_i" / "args.json").read_text())
    assert args["additional_items"] == 24 and args["additional_split"] == str(chosen)
    assert args["additional_data"] == str(data / "300K_random_images.npy")
    log = (runs / "SimCLR_split1_D_i" / "bash_log.txt").read_text().splitlines()
    assert [next(w for w in ("train_simclr", "train_linear", "train_fewshot", "infer_features", "sample_mak")
                 if w in line) for line in log] == ["train_simclr", "train_linear", "train_fewshot", "infer_features",
                                                    "infer_features", "infer_features", "sample_mak"]
    report = subprocess.run([sys.executable, "report.py", str(runs / "probes"), "--out", str(tmp_path / "table")],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert report.returncode == 0 and "| MAK |" in report.stdout and "| SimCLR |" in report.stdout, report.stderr


@pytest.mark.skipif(os.environ.get("LTSSL_SLOW_TESTS") != "1", reason="about 2 CPU-minutes; set LTSSL_SLOW_TESTS=1")
def test_imagenet_readme_commands_end_to_end_on_a_tiny_fixture(tmp_path):
    """The README's six commands on tiny JPEG lists (ResNet-50 of width 4, one step an epoch), with the flags
    that point them at the fixture and shrink them appended; the first two keep the release's 2 processes."""
    from PIL import Image
    rng = np.random.default_rng(0)

    def image(rel):
        path = tmp_path / "images" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(path)
        return rel

    def write(folder, name, rows):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_text("".join(f"{p} {c}\n" for p, c in rows))

    train = {c: [image(f"train/n{c}/{i}.JPEG") for i in range(8)] for c in range(4)}
    write("splits", "imageNet_100_LT_train.txt", [(p, c) for c, n in enumerate([6, 4, 2, 1]) for p in train[c][:n]])
    write("splits", "imageNet_100_train.txt", [(p, c) for c in train for p in train[c]])
    write("splits", "imageNet_100_train_1pct.txt", [(train[c][0], c) for c in train])
    for part in ("val", "test"):
        write("splits", f"imageNet_100_{part}.txt", [(image(f"{part}/n{c}/{i}.JPEG"), c) for c in range(4) for i in range(3)])
    write("pool", "ImageNet_900_train.txt", [(image(f"pool/{i}.JPEG"), i % 5) for i in range(30)])
    where = ["--data", "images", "--split_dir", "splits", "--pool_split_dir", "pool", "--runs_dir", "runs"]
    small = ["-w", "0", "-e", "1", "--batch_size", "8", "--width", "4", "--max_steps_per_epoch", "1",
             "--cached_features", "True", "--probe_epochs", "1", "--fewshot_epochs", "1"]
    run_name = ["--workers", "0", "--epochs", "1", "--batch_size", "8"]
    name = "optimize_0.5lossR2_nearK2_coreR1.5_num6_s10"
    steps = [("pretrain", [*small, "-p", str(_free_port())]), ("pool", [*run_name, "-p", str(_free_port())]),
             ("train", [*run_name, "-g", "1"]), ("aug", [*run_name, "-g", "1", "--inference_repeat_time", "2"]),
             ("sampling", ["--epochs", "1", "--batch_size", "8", "--sampling_num", "6", "--loss_repeat_time", "2",
                           "--K_means_num", "2"]),
             ("retrain", [*small, "-g", "1", "--additional_split", f"MAK/{name}", "--additional_split_name", name])]
    for key, extra in steps:
        script, *args = README[key].split()
        if key == "retrain":  # the README's split name is for the 10000 budget
            args = args[:args.index("--additional_split")]
        result = launch(script, *args, *where, *extra, cwd=tmp_path, timeout=600)
        assert result.returncode == 0, f"{key}: " + result.stdout[-2000:] + result.stderr[-3000:]
    chosen = (tmp_path / "pool" / "MAK" / f"{name}.txt").read_text().splitlines()
    assert len(chosen) == len(set(chosen)) == 6 and all(line.startswith("pool/") for line in chosen)
    run = tmp_path / "runs" / f"{RUN.replace('epoch1000_batch256', 'epoch1_batch8')}_addImagenet900{name}"
    assert json.loads((run / "args.json").read_text())["additional_items"] == 6
    report = subprocess.run([sys.executable, "report.py", str(tmp_path / "runs" / "probes"), "--out",
                             str(tmp_path / "table")], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert report.returncode == 0 and "| SimCLR |" in report.stdout and f"| {name[:-4]} |" in report.stdout
