#!/usr/bin/env bash
# Install the project and its test dependencies into .venv, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q -r requirements.txt -r requirements-test.txt -e .
.venv/bin/python -m pytest -q -rs tests "$@"  # -rs: say why each skipped test was skipped
