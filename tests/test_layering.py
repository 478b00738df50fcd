"""The packages' layering: the building blocks never import the data layer or an entry point."""
import ast

import pytest

from tests.conftest import REPO_ROOT

LOWER = ("utils", "losses", "models", "sampling", "methods")
FORBIDDEN = ["data"] + [p.stem for p in REPO_ROOT.glob("*.py") if p.stem not in ("setup", "conftest")]


def imported(path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module or "")
    return names


@pytest.mark.parametrize("package", LOWER)
def test_building_blocks_import_neither_data_nor_an_entry_point(package):
    files = sorted((REPO_ROOT / package).glob("*.py"))
    assert files, package
    for path in files:
        for name in imported(path):
            top = name.split(".")[0]
            assert top not in FORBIDDEN, f"{path.relative_to(REPO_ROOT)} imports {name}"
