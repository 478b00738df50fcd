"""The launchers' plans, in process: the SDCLR README's commands word for word, the method flags and labels, split
checks, dry-run warnings, SLURM, and names that agree with the scripts that write them."""
import os
import re
import shlex

import numpy as np
import pytest

from data import registry
from launcher import cli
from launcher.options import UsageError
from launcher.plans import Env, LaunchError
from tests.conftest import REPO_ROOT
from utils import names

SCRIPTS = REPO_ROOT / "cmds" / "shell_scrips"


def wiring(script: str) -> tuple[str, str]:
    """(launcher, dataset) that a shell script hands its arguments to."""
    text = (SCRIPTS / script).read_text()
    (match,) = re.findall(r'launch\.py" (\S+) (\S+) "\$0" "\$@"$', text, re.M)
    return match


def build(script: str, *args: str, cwd=None, environ=None, first_host=None):
    launcher, dataset = wiring(script)
    env = Env(str(cwd or REPO_ROOT), {"HOME": os.path.expanduser("~"), **(environ or {})}, first_host)
    plan, _ = cli.build(launcher, dataset, script, list(args), env)
    return plan


def commands(script: str, *args: str, **kwargs) -> list[list[str]]:
    return build(script, *args, **kwargs).commands()


def flag(command, name):
    return command[command.index(name) + 1]


def after(command, script):
    return command[command.index(script) + 1]


def from_readme(line: str, cwd) -> list[list[str]]:
    """A README line as bash splits it (``\\path\\to\\imagenet`` is ``pathtoimagenet``)."""
    script, *args = shlex.split(line)
    assert script.startswith("./cmds/shell_scrips/")
    return commands(script.rsplit("/", 1)[1], *args, cwd=cwd)


# The SDCLR README's launcher commands, its loops over split_num written out
SDCLR_README = [
    *[f"./cmds/shell_scrips/cifar-10-LT.sh -g 1 -w 8 --split split{k}_D_b" for k in range(1, 6)],
    *[f"./cmds/shell_scrips/cifar-10-LT.sh -g 1 -w 8 --split split{k}_D_b  --only_finetuning True  --test_only True"
      for k in range(1, 6)],
    *[f"./cmds/shell_scrips/cifar-10-LT.sh -g 1 -w 8 --split split{k}_D_i" for k in range(1, 6)],
    *[f"./cmds/shell_scrips/cifar-10-LT.sh -g 1 -w 8 --split split{k}_D_i --only_finetuning True --test_only True"
      for k in range(1, 6)],
    *[f"./cmds/shell_scrips/cifar-10-LT.sh -g 1 -w 8 --split split{k}_D_i --prune True --prune_percent 0.9 "
      f"--prune_dual_bn True" for k in range(1, 6)],
    *[f"./cmds/shell_scrips/cifar-10-LT.sh -g 1 -w 8 --split split{k}_D_i --prune True --prune_percent 0.9 "
      f"--prune_dual_bn True --only_finetuning True --test_only True" for k in range(1, 6)],
    *[f"./cmds/shell_scrips/cifar-100-LT.sh -g 1 -p 4867 -w 8 --split cifar100_split{k}_D_b" for k in range(1, 6)],
    *[f"./cmds/shell_scrips/cifar-100-LT.sh -g 1 -p 4867 -w 8 --split cifar100_split{k}_D_b --only_finetuning True "
      f"--test_only True" for k in range(1, 6)],
    *[f"./cmds/shell_scrips/cifar-100-LT.sh -g 1 -p 4867 -w 8 --split cifar100_split{k}_D_i" for k in range(1, 6)],
    *[f"./cmds/shell_scrips/cifar-100-LT.sh -g 1 -p 4867 -w 8 --split cifar100_split{k}_D_i --only_finetuning True "
      f"--test_only True" for k in range(1, 6)],
    *[f"./cmds/shell_scrips/cifar-100-LT.sh -g 1 -p 4867 -w 8 --split cifar100_split{k}_D_i --prune True "
      f"--prune_percent 0.9 --prune_dual_bn True" for k in range(1, 6)],
    *[f"./cmds/shell_scrips/cifar-100-LT.sh -g 1 -p 4867 -w 8 --split cifar100_split{k}_D_i --prune True "
      f"--prune_percent 0.9 --prune_dual_bn True --only_finetuning True --test_only True" for k in range(1, 6)],
    r"./cmds/shell_scrips/imagenet-100-res50-LT.sh --data \path\to\imagenet -g 2 -p 4867 -w 10 --split imageNet_100_BL_train",
    r"./cmds/shell_scrips/imagenet-100-res50-LT.sh --data \path\to\imagenet -g 2 -p 4867 -w 10 --split imageNet_100_BL_train "
    r"--only_finetuning True --test_only True",
    r"./cmds/shell_scrips/imagenet-100-res50-LT.sh --data \path\to\imagenet -g 2 -p 4867 -w 10 --split imageNet_100_LT_train",
    r"./cmds/shell_scrips/imagenet-100-res50-LT.sh --data \path\to\imagenet -g 2 -p 4860 -w 10 --split imageNet_100_LT_train "
    r"--only_finetuning True --test_only True",
    r"./cmds/shell_scrips/imagenet-100-res50-LT.sh --data \path\to\imagenet -g 2 -p 4867 -w 10 --split imageNet_100_LT_train "
    r"--prune True --prune_percent 0.3 --prune_dual_bn True --temp 0.3",
    r"./cmds/shell_scrips/imagenet-100-res50-LT.sh --data \path\to\imagenet -g 2 -p 4860 -w 10 --split imageNet_100_LT_train "
    r"--prune True --prune_percent 0.3 --prune_dual_bn True --temp 0.3 --only_finetuning True --test_only True",
]


def test_the_sdclr_release_names_are_the_same_launchers():
    for release, ours in [("cifar-10-LT.sh", "cifar-10-LT_extra.sh"), ("cifar-100-LT.sh", "cifar-100-LT_extra.sh"),
                          ("imagenet-100-res50-LT.sh", "imagenet-100-res50-LT_extra.sh")]:
        assert (SCRIPTS / release).resolve() == (SCRIPTS / ours).resolve()


@pytest.mark.parametrize("line", SDCLR_README)
def test_the_sdclr_readme_commands(line, tmp_path):
    words = shlex.split(line)
    split = flag(words, "--split")
    dataset = "cifar100" if "cifar-100" in words[0] else "cifar10" if "cifar-10" in words[0] else "imagenet100"
    prune, test_only = "--prune" in words, "--test_only" in words
    steps = from_readme(line, tmp_path)
    label = "SDCLR" if prune else "SimCLR"
    run = f"{label}_{split}"
    runs = REPO_ROOT / "checkpoints" / dataset
    *pretraining, full, few = steps
    if test_only:
        assert pretraining == [] and "--test_only" in full and "--test_only" in few
    elif dataset == "imagenet100":  # -g 2: every input checked in one process, then torchrun
        check, pretrain = pretraining
        assert check[-1] == "--check_only" and "--nproc_per_node=2" in pretrain
        assert f"--master_port={flag(words, '-p')}" in pretrain
    else:
        (pretrain,) = pretraining
        assert pretrain[1] == "train_simclr.py"  # -g 1: no torchrun
    if not test_only:
        assert after(pretrain, "train_simclr.py") == run and flag(pretrain, "--dataset") == dataset
        assert flag(pretrain, "--num_workers") == flag(words, "-w")
        assert flag(pretrain, "--temperature") == ("0.3" if "--temp" in words else "0.2")
        assert ("--prune" in pretrain) == prune and ("--prune_dual_bn" in pretrain) == prune
        if prune:
            assert flag(pretrain, "--prune_percent") == flag(words, "--prune_percent")
        if dataset == "imagenet100":
            assert flag(pretrain, "--data") == str(tmp_path / "pathtoimagenet")  # bash drops the backslashes
            assert flag(pretrain, "--model") == "res50" and flag(pretrain, "--epochs") == "500"
        else:
            assert flag(pretrain, "--model") == "res18" and flag(pretrain, "--epochs") == "2000"
    for probe in (full, few):
        assert flag(probe, "--checkpoint") == f"{runs}/{run}/model.pt" and flag(probe, "--method") == label
        assert flag(probe, "--save-dir") == f"{runs}/probes"
    assert full[1] == "train_linear.py" and few[1] == "train_fewshot.py"
    expected_few = "imageNet_100_train_1pct" if dataset == "imagenet100" else re.sub("_D_[ib]", "_S_b", split)
    assert os.path.basename(flag(few, "--trainSplit")) == registry.split_file_name(expected_few, dataset)


@pytest.mark.parametrize("dataset,script,percent,temperature", [
    ("cifar10", "cifar-10-LT.sh", "0.9", "0.2"), ("cifar100", "cifar-100-LT.sh", "0.9", "0.2"),
    ("imagenet100", "imagenet-100-res50-LT.sh", "0.3", "0.3"), ("places", "places365-LT_extra.sh", "0.3", "0.3")])
def test_sdclr_defaults_come_from_the_registry(dataset, script, percent, temperature):
    pretrain = commands(script, "-g", "1", "--prune", "True")[0]
    assert flag(pretrain, "--prune_percent") == percent == str(registry.paper_defaults(dataset, "sdclr")["prune_percent"])
    assert flag(pretrain, "--temperature") == temperature
    assert "--prune_dual_bn" not in pretrain and "--prune_percent" not in commands(script, "-g", "1")[0]


@pytest.mark.parametrize("args,label", [
    ([], "SimCLR"), (["--COLT", "True"], "SimCLR+COLT"), (["--prune", "True"], "SDCLR"),
    (["--prune", "True", "--COLT", "True"], "SDCLR+COLT"), (["--bcl", "True"], "BCL-I"),
    (["--bcl", "True", "--COLT", "True"], "BCL-I+COLT"), (["--bcl", "True", "--prune", "True"], "BCL-D"),
    (["--bcl", "True", "--prune", "True", "--COLT", "true"], "BCL-D+COLT")])
def test_the_method_label_follows_the_method(args, label):
    pretrain, full, few = commands("cifar-10-LT_extra.sh", *args)
    assert after(pretrain, "train_simclr.py") == f"{label}_split1_D_i"
    assert flag(full, "--method") == flag(few, "--method") == label
    assert ("--bcl" in pretrain) == ("BCL" in label) and ("--COLT" in pretrain) == ("COLT" in label)
    assert flag(commands("cifar-10-LT_extra.sh", *args, "--save_dir", "Mine")[1], "--method") == "Mine"


def test_bcl_settings_are_passed_only_when_given():
    pretrain = commands("cifar-10-LT_extra.sh", "--bcl", "True", "--rand_k", "2", "--rand_strength", "10",
                        "--momentum_loss_beta", "0.97")[0]
    assert flag(pretrain, "--rand_k") == "2" and flag(pretrain, "--rand_strength") == "10"
    assert flag(pretrain, "--momentum_loss_beta") == "0.97"
    assert "--rand_k" not in commands("cifar-10-LT_extra.sh", "--bcl", "True")[0]


@pytest.mark.parametrize("args,message", [
    (["--rand_k", "2"], "--rand_k is a BCL setting: add --bcl True"),
    (["--prune_percent", "0.5"], "--prune_percent sets SDCLR's pruned branch: add --prune True"),
    (["--prune_dual_bn", "True"], "--prune_dual_bn sets SDCLR's pruned branch"),
    (["--prune", "maybe"], "--prune takes True or False, got 'maybe'"),
    (["--bogus"], "unknown option '--bogus'"),  # unknown before "needs a value"
    (["--split", "split1_Di"], "its few-shot split cannot be derived"),
    (["-g", "0"], "-g takes a positive number of processes"),
    (["--epochs", "ten"], "--epochs takes a positive whole number, got 'ten'")])
def test_bad_flags(args, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        build("cifar-10-LT_extra.sh", *args)


def test_the_sdclr_release_flags_map_to_the_probes_and_pre_training():
    pretrain, full, few = commands("cifar-10-LT.sh", "--few_shot_lr", "0.01", "--few_shot_epochs", "200",
                                   "--pretrain_batch_size", "256")
    assert flag(few, "--lr") == "0.01" and flag(few, "--epochs") == "200" and "--lr" not in full
    assert flag(pretrain, "--batch_size") == "256"
    assert "--lr" not in commands("cifar-10-LT.sh")[2]  # the probe's own default (30) unless given


def test_a_split_without_a_derivable_few_shot_split_takes_one_by_name(tmp_path):
    few = commands("cifar-10-LT_extra.sh", "--split", "my_split", "--few_shot_split", "my_few", "--split_dir",
                   str(tmp_path))[-1]
    assert flag(few, "--trainSplit") == str(tmp_path / "my_few.npy")
    few = commands("cifar-10-LT_extra.sh", "--split", str(tmp_path / "split2_D_b.npy"), "--split_dir", str(tmp_path))[-1]
    assert flag(few, "--trainSplit") == str(tmp_path / "split2_S_b.npy")  # from the file's name, one suffix


def test_the_five_split_loop_fills_one_probes_folder():
    labels, folders = set(), set()
    for k in range(1, 6):
        for colt in ("False", "True"):
            for method in ([], ["--prune", "True"], ["--bcl", "True"]):
                pretrain, full, few = commands("cifar-10-LT_extra.sh", "-g", "1", "-p", "4867", "-w", "8", "--split",
                                               f"split{k}_D_i", "--COLT", colt, *method)
                labels.add(flag(full, "--method"))
                folders |= {flag(full, "--save-dir"), flag(few, "--save-dir")}
    assert labels == {"SimCLR", "SimCLR+COLT", "SDCLR", "SDCLR+COLT", "BCL-I", "BCL-I+COLT"} and len(folders) == 1


def test_slurm_and_several_nodes():
    environ = {"SLURM_NNODES": "2", "SLURM_NODEID": "1", "SLURM_JOB_NODELIST": "node[7-8]"}
    pretrain = commands("cifar-10-LT_extra.sh", "-g", "4", environ=environ, first_host="node7")[1]
    assert {"--nnodes=2", "--node_rank=1", "--master_addr=node7", "--nproc_per_node=4"} <= set(pretrain)
    assert {"--nnodes=3", "--node_rank=0", "--master_addr=host"} <= set(commands(
        "cifar-10-LT_extra.sh", "--nnodes", "3", "--node_rank", "0", "--master_addr", "host", environ=environ)[1])
    with pytest.raises(UsageError, match="--nnodes takes a positive number"):
        build("cifar-10-LT_extra.sh", environ={"SLURM_NNODES": "none"})


def test_a_dry_run_warns_about_every_missing_path_and_still_prints_the_plan(tmp_path, capsys):
    plan = build("cifar-10-LT_extra.sh", "--data", str(tmp_path), "--split_dir", str(tmp_path / "splits"),
                 "--COLT", "True")
    assert cli.execute(plan, dry_run=True) == 0
    out, err = capsys.readouterr()
    assert [shlex.split(line) for line in out.splitlines()] == plan.commands()
    warned = {line.split()[2] for line in err.splitlines()}
    splits = tmp_path / "splits"
    assert warned == {str(tmp_path / "300K_random_images.npy"), *(str(splits / f"{n}.npy") for n in
                                                                   ("split1_D_i", "valIdxList", "trainIdxList",
                                                                    "split1_S_b"))}
    assert all(line.startswith("warning: ") and line.endswith(" does not exist") for line in err.splitlines())
    # the checkpoint the pre-training writes is not missing; without pre-training it is
    assert cli.execute(build("cifar-10-LT_extra.sh", "--only_finetuning", "True", "--runs_dir", str(tmp_path)), True) == 0
    assert f"--checkpoint {tmp_path}/SimCLR_split1_D_i/model.pt does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("script,dataset,hint", [
    ("cifar-10-LT_extra.sh", "cifar10", "make the splits with: python splits/make_splits.py --dataset cifar10 --data {data} "
                                        "--out {splits}"),
    ("imagenet-100-res50-LT_extra.sh", "imagenet100",
     "make it with: python splits/make_splits.py --dataset imagenet100 --train_list {splits}/imageNet_100_train.txt "
     "--out {splits}")])
def test_a_real_run_without_split_files_names_their_command_and_writes_nothing(tmp_path, script, dataset, hint):
    splits, runs = tmp_path / "splits", tmp_path / "runs"
    splits.mkdir()
    for name in ("imageNet_100_LT_train.txt", "imageNet_100_train.txt", "imageNet_100_val.txt", "imageNet_100_test.txt"):
        (splits / name).write_text("a.JPEG 0\n")
    plan = build(script, "-g", "1", "--data", str(tmp_path), "--split_dir", str(splits), "--runs_dir", str(runs))
    with pytest.raises(LaunchError) as error:
        cli.execute(plan, dry_run=False)
    (line,) = str(error.value).splitlines()
    assert line.startswith("split file ") and hint.format(data=tmp_path, splits=splits) in line
    assert not runs.exists()


def test_the_mak_kmeans_seed_is_the_releases_unless_given():
    (sampling,) = commands("sampling.sh", "--pretrain_seed", "20")
    assert flag(sampling, "--seed") == "0" and flag(sampling, "--loss_txt_name").endswith("_s20")
    assert flag(commands("sampling.sh", "--seed", "5")[0], "--seed") == "5"


def test_mak_names_are_the_scripts_own(tmp_path):
    """The split name the launcher gives is sample_mak.py's for the same settings (seed: the pre-training's), and
    the inference output name is infer_features.py's plus the run."""
    import infer_features
    import sample_mak
    (sampling,) = commands("sampling.sh", "--pretrain_seed", "20", "--loss_weight", "1", "--core_sample_ratio", "2")
    args = sample_mak.parse_args(sampling[2:])
    args.seed = 20
    assert sample_mak.default_name(args) == flag(sampling, "--loss_txt_name") == \
        "optimize_1.0lossR10_nearK10_coreR2.0_num10000_s20"
    (infer,) = commands("cifar-10-LT-inference.sh", "--inference_dataset", "300K_random_images",
                        "--inference_dataset_split", str(tmp_path / "pool.npy"), "--inference_noAug", "True", "-g", "1")
    command = infer[infer.index("infer_features.py") + 2:]
    default = infer_features.parse_args(command).experiment
    assert after(infer, "infer_features.py") == f"{default}__SimCLR_split1_D_i" == names.inference_name(
        "300K_random_images", "pool", True, names.launcher_run_name("SimCLR", "split1_D_i"))


def test_an_unknown_dataset_or_pool_uses_the_registry_names():
    with pytest.raises(UsageError, match="unknown --pretrain_dataset 'places'.*cifar10, cifar100, imagenet-100"):
        build("sampling.sh", "--pretrain_dataset", "places")
    with pytest.raises(UsageError, match="unknown pool 'mnist'.*300K_random_images"):
        build("imagenet-100-inference.sh", "--inference_dataset", "mnist", "--inference_dataset_split", "x")
    pool = commands("cifar-10-LT-inference.sh", "--inference_dataset", "ti_300k", "--inference_dataset_split", "p.npy")
    assert flag(pool[0], "--inference_dataset") == "ti_300k"  # the registry's aliases work here too


def test_usage_names_the_script_and_every_flag():
    with pytest.raises(cli.HelpRequested) as help_text:
        build("cifar-10-LT.sh", "--help")
    text = str(help_text.value)
    assert text.startswith("usage: cifar-10-LT.sh [options]")
    for name in ("--prune", "--prune_percent", "--prune_dual_bn", "--bcl", "--rand_k", "--rand_strength",
                 "--momentum_loss_beta", "--few_shot_lr", "--few_shot_epochs", "--pretrain_batch_size", "--dry_run"):
        assert re.search(rf"(^  |, ){re.escape(name)}\b", text, re.M), name


def test_every_split_file_of_a_real_run_is_checked_before_anything_runs(tmp_path):
    """With every split present, the plan passes its checks (the data and the checkpoint are the steps' own)."""
    for name in ("split1_D_i", "valIdxList", "trainIdxList", "split1_S_b"):
        np.save(tmp_path / f"{name}.npy", np.arange(3))
    assert cli.refusal(build("cifar-10-LT_extra.sh", "--split_dir", str(tmp_path))) is None


def test_the_launchers_read_no_fact_twice():
    """The shell launchers only hand their arguments on: no dataset fact is left in them."""
    for script in SCRIPTS.glob("*.sh"):
        code = [line for line in script.read_text().splitlines() if not line.startswith("#")]
        assert len(code) == 1 and code[0].startswith('exec "${PYTHON:-python}"'), script
