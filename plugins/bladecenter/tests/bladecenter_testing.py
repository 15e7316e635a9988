"""Helpers of the bladecenter tests: drivers on the lab chassis, the encompass CLI in a home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from encompass_bladecenter.driver import BladeCenterPlatformDriver
from encompass_bladecenter.lab_peer import LabChassis

from encompass_core.config import Section
from encompass_core.config import toml_table as config_table

ENCOMPASS = Path(sys.executable).with_name("encompass")
#: The environment variable the tests put the lab chassis' community in.
COMMUNITY_ENV = "ENCOMPASS_TEST_BLADECENTER_COMMUNITY"
#: The slots of the session chassis that hold blades.
SLOTS = (1, 2, 3, 4)


def make_driver(chassis: LabChassis, **settings: Any) -> BladeCenterPlatformDriver:
    """A driver for the lab chassis (its community read from :data:`COMMUNITY_ENV`)."""
    os.environ[COMMUNITY_ENV] = chassis.community
    table = chassis.platform_table(COMMUNITY_ENV, timeout=2.0, power_timeout=30.0)
    table.update(settings)
    return BladeCenterPlatformDriver(Section(chassis.name, "bladecenter",
                                             {k: v for k, v in table.items() if v is not None}))


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCOMPASS_")}
    env.update(ENCOMPASS_HOME=str(home), COLUMNS="200", **extra)
    return env


def encompass(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run the ``encompass`` command in ``home``."""
    return subprocess.run([str(ENCOMPASS), *args], env=cli_env(home, **env), capture_output=True,
                          text=True, timeout=600, check=False)


def toml_table(name: str, table: dict[str, Any]) -> str:
    """A ``[platforms.NAME]`` table as encompass.toml text."""
    return config_table(f"platforms.{name}", table)
