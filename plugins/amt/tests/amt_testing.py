"""Helpers of the amt tests: a platform's settings for a lab of AMT PCs, a driver built on them.

The password reaches the driver as a user's would: through ``password_env`` (``$AMT_TEST_PASSWORD``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

from encompass_amt.driver import AmtPlatformDriver
from encompass_amt.lab.responder import AmtLab

from encompass_core.config import Config, Section

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


ENCOMPASS = Path(sys.executable).with_name("encompass")


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


def init_home(home: Path) -> Path:
    """A fresh ENCOMPASS_HOME (``encompass init``)."""
    done = subprocess.run([str(ENCOMPASS), "init"], env=cli_env(home), capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    return home


def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCOMPASS_")}
    env["ENCOMPASS_HOME"] = str(home)
    # Only the plugins these tests use: another plugin installed beside them (a branch not
    # merged yet) must not add its own lines to the output checked here.
    env["ENCOMPASS_PLUGINS"] = "amt,kvm"
    env["COLUMNS"] = "200"
    return env


def run_cli(home: Path, *args: object, timeout: float = 300) -> CliResult:
    """Run the real ``encompass`` command in ``home``."""
    done = subprocess.run([str(ENCOMPASS), *map(str, args)], env=cli_env(home), capture_output=True,
                          text=True, timeout=timeout, check=False)
    return CliResult(done.returncode, done.stdout, done.stderr)
