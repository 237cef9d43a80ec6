"""The layering rules of DESIGN.md §1, checked on every import statement (AST, not grep)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"protocol", "drivers", "edge", "cloud", "provisioning", "firmware_sim", "webui", "mchub", "tests", "bench"}
ALLOWED = {
    "protocol": set(),
    "drivers": {"protocol"},
    "edge": {"protocol", "drivers", "edge", "provisioning", "webui"},  # provisioning: enrollment messages
    "cloud": {"protocol", "cloud", "provisioning", "webui"},
    "provisioning": {"protocol", "provisioning"},
    "firmware_sim": {"protocol", "firmware_sim"},  # never a driver's decoder
    "webui": {"protocol", "webui"},
}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_may(package: str) -> None:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in imports(path) - ALLOWED[package] - {package}:
            bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "layering rule broken (DESIGN.md §1):\n" + "\n".join(bad)
