"""Test helpers: pools on an export (:func:`make_driver`), the ``encompass`` command on a home
with pools (:func:`encompass_cli`), a clone whose server stops mid-copy (:func:`stop_mid_clone`);
the server itself is the plugin's (:mod:`encompass_nfs.ganesha`, which the lab and ``encompass
demo --pool nas`` use too)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from encompass_nfs.driver import NfsStorageDriver
from encompass_nfs.ganesha import EXPORT, Ganesha, missing_tools

from encompass_core.config import Config, Section

__all__ = ["EXPORT", "Ganesha", "encompass_cli", "make_driver", "missing_tools", "stop_mid_clone"]

ENCOMPASS = Path(sys.executable).with_name("encompass")


def make_driver(folder: Path, name: str = "nas", **settings) -> NfsStorageDriver:
    """A driver for pool ``name`` with ``settings``, its encompass.toml in ``folder``."""
    section = Section(name, "nfs", settings)
    config = Config(path=folder / "encompass.toml", defaults={}, pools={name: section}, platforms={})
    return NfsStorageDriver(section, config)


def encompass_cli(home: Path, pools: str, env: dict[str, str] | None = None):
    """``run(*args, ok=True, extra=None)``: the ``encompass`` command on a new ``home`` whose
    encompass.toml also holds ``pools`` (TOML tables), with ``env`` (and ``extra``) added to the
    environment; ``ok`` asserts it succeeded. ``run.env`` and ``run.home`` are what it uses."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ENCOMPASS_")}
    environment.update(env or {}, ENCOMPASS_HOME=str(home))

    def run(*args: str, ok: bool = True, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run([str(ENCOMPASS), *args], env={**environment, **(extra or {})},
                              capture_output=True, text=True, timeout=300, check=False)
        if ok:
            assert done.returncode == 0, f"encompass {' '.join(args)}: {done.stderr}"
        return done

    run.env = environment  # type: ignore[attr-defined]
    run.home = home  # type: ignore[attr-defined]
    run("init")
    with open(home / "encompass.toml", "a") as config:
        config.write(pools)
    return run


def stop_mid_clone(server: Ganesha, env: dict[str, str], source: str, name: str, pool: str,
                   size: str) -> str:
    """Run ``encompass clone SOURCE NAME --pool POOL --mode full``, stop the server at its
    first progress line (``NAME: … of SIZE``), and return what it said after; it must fail."""
    cloning = subprocess.Popen([str(ENCOMPASS), "clone", source, name, "--pool", pool, "--mode", "full"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        first = cloning.stderr.readline()  # the first progress line: the copy has begun
        assert re.match(rf"{name}: [\d.]+ [KMG]iB of {re.escape(size)}", first), first
        server.stop_server()
        rest = cloning.stderr.read()
        assert cloning.wait(timeout=120) != 0
    finally:
        if cloning.poll() is None:
            cloning.kill()
            cloning.wait()
        cloning.stderr.close()
    return rest
