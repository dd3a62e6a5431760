"""Entry point of the watchdog process: `python -m gonogo.system.reaper`."""

from __future__ import annotations

__all__: list[str] = []

from gonogo.system.reaper.watchdog import main

raise SystemExit(main())
