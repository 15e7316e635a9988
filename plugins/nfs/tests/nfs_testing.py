"""Test helpers: pools on an export (:func:`make_driver`); the server itself is the plugin's
(:mod:`encompass_nfs.ganesha`, which the lab and ``encompass demo --pool nas`` use too)."""

from __future__ import annotations

from pathlib import Path

from encompass_nfs.driver import NfsStorageDriver
from encompass_nfs.ganesha import EXPORT, Ganesha, missing_tools

from encompass_core.config import Config, Section

__all__ = ["EXPORT", "Ganesha", "make_driver", "missing_tools"]


def make_driver(folder: Path, name: str = "nas", **settings) -> NfsStorageDriver:
    """A driver for pool ``name`` with ``settings``, its encompass.toml in ``folder``."""
    section = Section(name, "nfs", settings)
    config = Config(path=folder / "encompass.toml", defaults={}, pools={name: section}, platforms={})
    return NfsStorageDriver(section, config)
