"""Every plan in the README and the docs validates: a reader who copies one gets no error.

A block whose keys are the plan's own is a whole plan; one whose keys are check names is a
`checks:` section. Chaos Toolkit experiments (docs/chaostoolkit.md) are not plans, and a block
that elides parts with `...` cannot validate by design.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import yaml

from gonogo.errors import PlanError
from gonogo.plan import parse_plan

REPO = Path(__file__).resolve().parents[2]
PLAN_KEYS = {"name", "system", "checks", "gates", "score", "signoff", "baseline", "history"}


def yaml_blocks() -> list[tuple[str, str]]:
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = path.read_text()
        for match in re.finditer(r"```yaml\n(.*?)```", text, re.S):
            line = text[: match.start()].count("\n") + 2
            found.append((f"{path.relative_to(REPO)}:{line}", match.group(1)))
    return found


def as_plan(block: str) -> str | None:
    data = yaml.safe_load(block)
    if not isinstance(data, dict) or "title" in data or "..." in block:
        return None  # a Chaos Toolkit experiment, or an excerpt
    return block if set(data) <= PLAN_KEYS else "checks:\n" + textwrap.indent(block, "  ")


BLOCKS = yaml_blocks()


def test_the_docs_have_plans_to_check() -> None:
    assert sum(as_plan(block) is not None for _, block in BLOCKS) >= 10


@pytest.mark.parametrize(("where", "block"), BLOCKS, ids=[where for where, _ in BLOCKS])
def test_a_plan_in_the_docs_validates(where: str, block: str, tmp_path: Path) -> None:
    plan = as_plan(block)
    if plan is None:
        pytest.skip("not a plan (a Chaos Toolkit experiment, or an excerpt with ...)")
    try:
        parse_plan(plan, tmp_path / "gonogo.yaml")
    except PlanError as error:
        pytest.fail(f"{where}: the example does not validate:\n{error}")
