"""The cut of docs/architecture.md, held by the imports themselves."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import gonogo
from gonogo.errors import GonogoError

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


# What each package downstream of the checks may import of gonogo, besides the base modules: the
# flow is one-way (plan → system → checks → evidence → verdict → reports), so the store knows no
# check kind, and the verdict and the reports read records only.
BASE_MODULES = {"gonogo", "gonogo.errors", "gonogo.units", "gonogo.threshold"}
MAY_IMPORT = {
    "evidence": {"gonogo.evidence"},
    "verdict": {"gonogo.verdict", "gonogo.evidence", "gonogo.plan"},
    "report": {"gonogo.report", "gonogo.verdict", "gonogo.evidence"},
}


def _gonogo_package(module: str) -> str | None:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "gonogo" else None


def test_downstream_packages_import_nothing_upstream() -> None:
    crossings = []
    for package, allowed in MAY_IMPORT.items():
        for path in sorted((SOURCE / package).rglob("*.py")):
            for module in _imported_modules(path):
                home = _gonogo_package(module)
                if home is not None and home not in allowed | BASE_MODULES:
                    crossings.append(f"{path.relative_to(SOURCE)} imports {module}")
    assert crossings == []


def test_the_system_uses_only_the_fault_records() -> None:
    """The faults drive the system (`faults.targets.ServiceControl`); the system knows of them
    only the record its verified kill/pause/resume hands back, which imports nothing of gonogo."""
    crossings = []
    for path in sorted((SOURCE / "system").rglob("*.py")):
        for module in _imported_modules(path):
            if _gonogo_package(module) == "gonogo.faults" and module != "gonogo.faults.records":
                crossings.append(f"{path.relative_to(SOURCE)} imports {module}")
    crossings += [
        f"faults/records.py imports {m}"
        for m in _imported_modules(SOURCE / "faults" / "records.py")
        if _gonogo_package(m) is not None
    ]
    assert crossings == []


def test_every_public_exception_is_a_gonogo_error() -> None:
    """`except GonogoError` catches everything gonogo raises on purpose. The only other public
    exceptions are interruptions (Ctrl-C, SIGTERM, carrying what was measured until then): they
    derive from KeyboardInterrupt so that no `except Exception` swallows them. Private
    control flow (`_StopFuzzing(BaseException)`) is the module's own business."""
    strays = []
    for info in pkgutil.walk_packages(gonogo.__path__, "gonogo."):
        if info.name.rsplit(".", 1)[-1] == "__main__":  # running it is all it does
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == info.name
                and not name.startswith("_")
                and not issubclass(value, GonogoError | KeyboardInterrupt)
            ):
                strays.append(f"{info.name}.{name}({', '.join(base.__name__ for base in value.__bases__)})")
    assert strays == []
