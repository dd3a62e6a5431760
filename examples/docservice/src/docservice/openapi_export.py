"""Write the API's OpenAPI document: `python -m docservice.openapi_export [PATH]`.

The committed `examples/docservice/openapi.json` is generated with this; regenerate it
(`make openapi` in examples/docservice) whenever a route or model changes.
"""

from __future__ import annotations

__all__ = ["main", "openapi_document"]

import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from docservice.api import create_app
from docservice.config import ApiSettings


def openapi_document() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="docservice-openapi-") as scratch:
        settings = ApiSettings(db_path=Path(scratch) / "db.sqlite", storage_dir=Path(scratch) / "files")
        return create_app(settings).openapi()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    target = Path(args[0]) if args else Path("openapi.json")
    target.write_text(json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
