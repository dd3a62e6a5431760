"""The cut of docs/architecture.md, held by the imports themselves."""

from __future__ import annotations

import ast
from pathlib import Path

import gonogo

SOURCE = Path(gonogo.__file__).parent
KINDS = sorted(
    path.name for path in (SOURCE / "checks").iterdir() if path.is_dir() and (path / "__init__.py").exists()
)


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_the_kinds_are_found() -> None:
    assert {"chaos", "journeys", "load", "security", "tests"} <= set(KINDS)


def test_no_check_kind_imports_another() -> None:
    crossings = []
    for kind in KINDS:
        for path in sorted((SOURCE / "checks" / kind).rglob("*.py")):
            for module in _imported_modules(path):
                parts = module.split(".")
                other = parts[2] if parts[:2] == ["gonogo", "checks"] and len(parts) > 2 else None
                if other in KINDS and other != kind:
                    crossings.append(f"{path.relative_to(SOURCE)} imports {module}")
    assert crossings == []


def test_shared_packages_import_no_check_kind() -> None:
    crossings = []
    for package in ("journey", "loadgen", "plan", "evidence", "verdict", "report", "system", "faults"):
        for path in sorted((SOURCE / package).rglob("*.py")):
            for module in _imported_modules(path):
                parts = module.split(".")
                if parts[:2] == ["gonogo", "checks"] and len(parts) > 2 and parts[2] in KINDS:
                    crossings.append(f"{path.relative_to(SOURCE)} imports {module}")
    assert crossings == []
