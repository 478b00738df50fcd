"""The published COLT split/ folder, used as it is (subfolders cifar10/, cifar10_imbSub_with_subsets/, cifar100/,
cifar100_imbSub_with_subsets/): by the Python split lookup and by the launchers. Skipped without ../shared."""
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest

from data.build import resolve_split
from tests.conftest import REPO_ROOT, SHARED_DATA

PUBLISHED = (SHARED_DATA / "original-splits").resolve()  # launchers print resolved paths
needs_published = pytest.mark.skipif(not PUBLISHED.is_dir(),
                                     reason=f"published COLT split files not present at {PUBLISHED}")


@needs_published
@pytest.mark.parametrize("dataset,name,subfolder", [
    ("cifar10", "split1_D_i", "cifar10_imbSub_with_subsets"), ("cifar10", "split3_S_b", "cifar10_imbSub_with_subsets"),
    ("cifar10", "trainIdxList", "cifar10"), ("cifar10", "valIdxList", "cifar10"),
    ("cifar100", "cifar100_split2_D_i", "cifar100_imbSub_with_subsets"),
    ("cifar100", "cifar100_trainIdxList", "cifar100"), ("cifar100", "cifar100_valIdxList.npy", "cifar100")])
def test_a_name_under_the_split_root_finds_the_published_file(dataset, name, subfolder):
    expected = PUBLISHED / subfolder / (name if name.endswith(".npy") else name + ".npy")
    assert resolve_split(str(PUBLISHED / name), dataset) == expected
    assert resolve_split(str(expected), dataset) == expected  # the file itself still works
    assert len(np.load(expected, allow_pickle=False)) > 0


@needs_published
def test_a_missing_name_says_where_it_looked():
    with pytest.raises(FileNotFoundError, match="cifar10_imbSub_with_subsets"):
        resolve_split(str(PUBLISHED / "split9_D_i"), "cifar10")
    with pytest.raises(FileNotFoundError, match="not found"):  # the other dataset's files are not searched
        resolve_split(str(PUBLISHED / "trainIdxList"), "cifar100")


def launcher_commands(script, *args):
    environment = {k: v for k, v in os.environ.items() if k not in ("DATA", "OOD_DATA")}
    environment["PYTHON"] = sys.executable
    result = subprocess.run(["bash", str(REPO_ROOT / "cmds" / "shell_scrips" / script), *args, "--dry_run"],
                            capture_output=True, text=True, cwd=REPO_ROOT, env=environment, timeout=60)
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.strip().splitlines()]


def flag(command, name):
    return command[command.index(name) + 1]


@needs_published
@pytest.mark.parametrize("script,split,prefix,subfolder", [
    ("cifar-10-LT_extra.sh", "split1_D_i", "", "cifar10"),
    ("cifar-100-LT_extra.sh", "cifar100_split1_D_i", "cifar100_", "cifar100")])
def test_launchers_take_the_published_split_folder(script, split, prefix, subfolder, tmp_path):
    pretrain, full, few = launcher_commands(script, "--split_dir", str(PUBLISHED), "--split", split,
                                            "--data", str(tmp_path))
    subsets = PUBLISHED / f"{subfolder}_imbSub_with_subsets"
    assert flag(pretrain, "--trainSplit") == str(subsets / f"{split}.npy")
    assert flag(few, "--trainSplit") == str(subsets / f"{split.replace('_D_i', '_S_b')}.npy")
    assert flag(full, "--trainSplit") == str(PUBLISHED / subfolder / f"{prefix}trainIdxList.npy")
    for probe in (full, few):
        assert flag(probe, "--valSplit") == str(PUBLISHED / subfolder / f"{prefix}valIdxList.npy")
    for command in (pretrain, full, few):
        for name in ("--trainSplit", "--valSplit"):
            if name in command:
                assert os.path.isfile(flag(command, name)), flag(command, name)


def test_launchers_default_data_folder_is_not_the_checkout(tmp_path):
    """Without --data or $DATA the launchers read ~/data, never ./data (the project's own data/ package)."""
    pretrain = launcher_commands("cifar-10-LT_extra.sh")[0]
    assert flag(pretrain, "--data") == os.path.expanduser("~/data")
    assert flag(pretrain, "--data") != str(REPO_ROOT / "data")
