#!/usr/bin/env python3
"""The launchers' entry point: ``cmds/launch.py LAUNCHER DATASET SCRIPT [flags]``, what every
cmds/shell_scrips/*.sh runs (LAUNCHER: per_dataset, add_data, inference or sampling; DATASET: its registry
name; SCRIPT: the script's path, for the usage line). See launcher/cli.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from launcher.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
