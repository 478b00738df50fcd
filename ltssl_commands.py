"""The console commands of an (editable) install: each runs one script's ``main`` and exits 0 on success.

    ltssl-pretrain  = train_simclr.py      ltssl-linear = train_linear.py
    ltssl-fewshot   = train_fewshot.py     ltssl-report = report.py
    ltssl-infer     = infer_features.py    ltssl-mak    = sample_mak.py

The scripts' ``main`` functions return the run directory, which ``sys.exit`` would print as an error: these
wrappers return an exit status instead. New commands: add a function here and a line to ``COMMANDS``.
"""
from __future__ import annotations


def pretrain() -> int:
    import train_simclr
    train_simclr.main()
    return 0


def linear() -> int:
    import train_linear
    train_linear.main()
    return 0


def fewshot() -> int:
    import train_fewshot
    train_fewshot.main()
    return 0


def report() -> int:
    import report as report_script
    return report_script.main()


def infer() -> int:
    import infer_features
    infer_features.main()
    return 0


def mak() -> int:
    import sample_mak
    sample_mak.main()
    return 0


# console command -> function of this module; setup.py builds its entry points from this table.
COMMANDS = {
    "ltssl-pretrain": "pretrain",
    "ltssl-linear": "linear",
    "ltssl-fewshot": "fewshot",
    "ltssl-report": "report",
    "ltssl-infer": "infer",
    "ltssl-mak": "mak",
}
