"""Install policy: only the checkout is supported, as an editable install (``pip install -e .``).

The project's top-level packages are named ``data``, ``utils``, ``models``, ``losses`` and ``sampling``, and
its scripts are top-level modules. A regular (non-editable) install would copy those generic
names into site-packages, where they collide with other projects' modules of the same names; moving them into
one namespace package is a larger change. So a non-editable build (``pip install .``, ``pip wheel .``,
``python setup.py bdist_wheel`` / ``install``) stops with a clear message, and an editable install, which
leaves the code in the checkout, provides the console commands listed in ``ltssl_commands.py``.
"""
import ast
import sys
from pathlib import Path

from setuptools import find_packages, setup

NON_EDITABLE_COMMANDS = {"bdist_wheel", "bdist_egg", "bdist", "install", "bdist_rpm", "bdist_dumb"}
REFUSAL = ("error: only an editable install of the checkout is supported: run `pip install -e .` in the "
           "repository (a regular `pip install .` would put top-level packages named data, utils, models, "
           "losses and sampling into site-packages, where they collide with other projects)")


def console_scripts() -> list[str]:
    """``ltssl-*`` commands from the COMMANDS table of ltssl_commands.py (read without importing it)."""
    tree = ast.parse((Path(__file__).resolve().parent / "ltssl_commands.py").read_text())
    table = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                 and any(getattr(t, "id", None) == "COMMANDS" for t in node.targets))
    return [f"{name}=ltssl_commands:{function}" for name, function in ast.literal_eval(table).items()]


if NON_EDITABLE_COMMANDS & set(sys.argv[1:]):
    sys.exit(REFUSAL)

setup(
    name="ltssl",
    version="0.1.0",
    description="Self-supervised pre-training on long-tailed image data with extra out-of-distribution data "
                "(SimCLR, COLT, MAK), with linear and few-shot probing",
    python_requires=">=3.10",
    packages=find_packages(include=["models", "models.*", "losses", "losses.*", "data", "data.*",
                                    "utils", "utils.*", "sampling", "sampling.*", "splits", "splits.*",
                                    "methods", "methods.*", "launcher", "launcher.*"]),
    py_modules=["train_simclr", "train_linear", "train_fewshot", "report", "report_picks", "infer_features",
                "sample_mak", "exp_analyse", "ltssl_commands"],
    install_requires=[  # torch / torchvision: the range tested (2.9.1 / 0.24.1 to 2.14.1 / 0.29.1)
        "torch>=2.9.1,<2.15",
        "torchvision>=0.24.1,<0.30",
        "numpy>=1.24",
        "scikit-learn>=1.3",
        "matplotlib>=3.7",
        "opencv-python-headless>=4.8",
        "pillow>=10",
        "tqdm>=4.60",
        "tensorboard>=2.14",
    ],
    extras_require={"test": ["pytest>=7"]},
    entry_points={"console_scripts": console_scripts()},
)
