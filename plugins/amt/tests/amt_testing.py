"""Helpers of the amt tests: a platform's settings for a lab of AMT PCs, a driver built on them.

The password reaches the driver as a user's would: through ``password_env`` (``$AMT_TEST_PASSWORD``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from encompass_amt.driver import AmtPlatformDriver

from encompass_core.config import Config, Section
from encompass_core.testing.amt_responder import AmtLab

USER = "admin"
PASSWORD = "Lab-amt-S3cret-7741"  # distinctive: tests look for it in every output
PASSWORD_VAR = "AMT_TEST_PASSWORD"


def settings(lab: AmtLab | None = None, **changes: Any) -> dict[str, Any]:
    """A ``[platforms.NAME]`` table for the lab's PCs (``changes`` override)."""
    table: dict[str, Any] = {"driver": "amt", "user": USER, "password_env": PASSWORD_VAR,
                             "timeout": 3.0}
    if lab is not None:
        table["addresses"] = lab.endpoints
    table.update(changes)
    return {key: value for key, value in table.items() if value is not None}


def platform_driver(folder: Path, table: dict[str, Any], name: str = "pcs") -> AmtPlatformDriver:
    """An amt driver for ``table``, as the core builds it."""
    config = Config(path=folder / "encompass.toml", defaults={}, pools={},
                    platforms={name: Section(name, "amt", table)})
    return AmtPlatformDriver(config.platforms[name], config)


def toml_table(name: str, table: dict[str, Any]) -> str:
    """``table`` written as the ``[platforms.NAME]`` table of an encompass.toml."""
    import json

    lines = [f"\n[platforms.{name}]"]
    for key, value in table.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"
