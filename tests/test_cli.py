"""Command lines: the precision flag, --help texts, log lines beside progress bars, install policy, picture labels."""
import io
import json
import subprocess
import sys

import pytest
import torch
from tqdm import tqdm

from tests.conftest import REPO_ROOT
from utils.logger import RunLogger, progress_disabled, write_args
from utils.precision import DEFAULT_PRECISION, PRECISIONS, autocast


def test_precision_is_float32_on_the_cpu_with_either_value():
    layer = torch.nn.Linear(4, 3)
    for precision in PRECISIONS:
        with autocast(torch.device("cpu"), precision):
            assert layer(torch.randn(2, 4)).dtype == torch.float32
    with pytest.raises(ValueError, match="unknown precision"):
        autocast(torch.device("cpu"), "fp16")


@pytest.mark.cuda
def test_precision_on_the_accelerator(accelerator):
    """bf16 autocast on CUDA only (the CPU, standing in, always computes in float32)."""
    layer, x = torch.nn.Linear(4, 3).to(accelerator), torch.randn(2, 4, device=accelerator)
    with autocast(accelerator, "bf16"):
        assert layer(x).dtype == (torch.bfloat16 if accelerator.type == "cuda" else torch.float32)
    with autocast(accelerator, "fp32"):
        assert layer(x).dtype == torch.float32


def test_precision_is_an_argument_recorded_in_args_json(tmp_path):
    import train_linear
    import train_simclr
    assert DEFAULT_PRECISION == "bf16"
    args = train_simclr.parse_args(["run", "--precision", "fp32", "--save-dir", str(tmp_path)])
    write_args(args, tmp_path / "args.json")
    assert json.loads((tmp_path / "args.json").read_text())["precision"] == "fp32"
    assert train_simclr.parse_args(["run", "--save-dir", str(tmp_path)]).precision == DEFAULT_PRECISION
    assert train_linear.parse_args(["p", "--checkpoint", "x.pt", "--precision", "fp32"]).precision == "fp32"


def help_text(script):
    result = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, cwd=REPO_ROOT,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def option_help(text, flag):
    """The help of one option: its line and the indented lines after it, joined."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(flag + " "))
    block = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith(" " * 10) or line.strip().startswith("-"):
            break
        block.append(line)
    return " ".join(part.strip() for part in block)


def test_fewshot_help_is_its_own_and_every_option_shows_its_default():
    text = help_text("train_fewshot.py")
    assert "Few-shot linear probing" in text and "Linear probing of a pre-trained encoder" not in text
    assert "python train_fewshot.py PROBE_NAME" in text
    assert "--data ~/data \\\n        --trainSplit" in text  # the example's line continuation is printed as written
    for flag in ("--epochs", "--lr", "--seed", "--save-dir", "--num_workers", "--precision", "--test_freq"):
        assert "default" in option_help(text, flag), flag


def test_pretraining_help_shows_the_defaults_the_issue_listed():
    text = help_text("train_simclr.py")
    assert "--data ~/data \\\n        --trainSplit split1_D_i" in text
    for flag, default in [("--temperature", "0.2"), ("--warmup", "100"), ("--sample_interval", "25"),
                          ("--beta", "0.97"), ("--momentum", "0.9"), ("--precision", "bf16")]:
        assert f"(default: {default})" in option_help(text, flag), flag
    assert "default" in option_help(text, "--save-dir")


def test_log_lines_never_share_a_line_with_a_progress_bar(tmp_path, monkeypatch, capsys):
    logger = RunLogger(tmp_path, tensorboard=False)
    bar_stream = io.StringIO()
    bar = tqdm(total=3, desc="epoch 1/1", file=bar_stream, leave=False)
    bar.update(1)
    logger.info("epoch 1/1 loss 1.2346")
    bar.close()
    logger.close()
    out = capsys.readouterr().out
    assert any(line.endswith("epoch 1/1 loss 1.2346") for line in out.splitlines())
    assert (tmp_path / "log.txt").read_text().strip().endswith("epoch 1/1 loss 1.2346")
    assert progress_disabled(True) is None and progress_disabled(False) is True  # None: bars only on a terminal


def run_setup(*args, cwd):
    return subprocess.run([sys.executable, str(REPO_ROOT / "setup.py"), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_a_regular_install_is_refused_with_one_clear_line(tmp_path):
    for command in ("bdist_wheel", "install"):
        result = run_setup(command, cwd=tmp_path)
        assert result.returncode != 0 and "only an editable install" in result.stderr, result.stderr
        assert "pip install -e ." in result.stderr


def test_editable_metadata_lists_every_module_and_command(tmp_path):
    result = run_setup("egg_info", "--egg-base", str(tmp_path), cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    info = tmp_path / "ltssl.egg-info"
    top_level = set((info / "top_level.txt").read_text().split())
    assert {"data", "utils", "models", "losses", "sampling", "train_simclr", "train_linear", "train_fewshot",
            "report", "ltssl_commands"} <= top_level
    entry_points = (info / "entry_points.txt").read_text()
    import ltssl_commands
    for command, function in ltssl_commands.COMMANDS.items():
        assert f"{command} = ltssl_commands:{function}" in entry_points
        assert callable(getattr(ltssl_commands, function))
    assert {"ltssl-pretrain", "ltssl-linear", "ltssl-fewshot", "ltssl-report"} <= set(ltssl_commands.COMMANDS)


def test_picture_labels():
    """The COLT round rows carry size, tailness and budget; the report's groups and colours are consistent."""
    from types import SimpleNamespace

    import numpy as np

    import report
    from data.build import class_names
    from sampling.colt import cluster_row_title
    result = SimpleNamespace(cluster_sizes=np.array([211, 14]), cluster_scores=np.array([0.15041, 0.1899]),
                             budgets=np.array([68, 4]))
    assert cluster_row_title(result, 1) == "cluster 1\nsize 14\ntailness 0.1899\nbudget 4"
    assert cluster_row_title(result, -1) == "chosen"
    assert class_names("synthetic")[0] == "hstripes" and class_names("cifar10")[0] == "airplane"
    assert class_names("cifar100") is None
    spans = report.group_spans({"class_counts": [5, 50, 20, 10, 40, 30],
                                "groups": {"many": [1, 4], "medium": [5, 2], "few": [3, 0]}})
    assert spans == [("many", 0, 1), ("medium", 2, 3), ("few", 4, 5)]
    colours = report.method_colours(["COLT", "SimCLR"])
    assert colours["COLT"] != colours["SimCLR"] and report.method_colours(["COLT", "SimCLR"]) == colours
    assert report.splits_phrase(1) == "one split" and report.splits_phrase(5) == "mean over 5 splits"
