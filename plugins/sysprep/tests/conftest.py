"""Fixtures: a fresh ENCOMPASS_HOME (default local pool) and the real ``encompass`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

ENCOMPASS = Path(sys.executable).with_name("encompass")


class CliResult(NamedTuple):
    """What a run of ``encompass`` gave back."""

    code: int
    out: str
    err: str


def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCOMPASS_")}
    env["ENCOMPASS_HOME"] = str(home)
    env["XDG_CACHE_HOME"] = str(home.parent / "xdg-cache")
    env["COLUMNS"] = "200"
    env["ENCOMPASS_PLUGINS"] = "sysprep"  # only this plugin: others installed beside it stay out
    return env


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An ENCOMPASS_HOME made by ``encompass init``."""
    home = tmp_path / "home"
    done = subprocess.run([str(ENCOMPASS), "init"], env=cli_env(home), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return home


@pytest.fixture
def run_cli(home: Path) -> Callable[..., CliResult]:
    """Run the real ``encompass`` command in ``home``; every run is kept in ``run_cli.runs``."""
    runs: list[CliResult] = []

    def run(*args: object, timeout: float = 180) -> CliResult:
        done = subprocess.run([str(ENCOMPASS), *map(str, args)], env=cli_env(home),
                              capture_output=True, text=True, timeout=timeout, check=False)
        result = CliResult(done.returncode, done.stdout, done.stderr)
        runs.append(result)
        return result

    run.runs = runs
    return run
