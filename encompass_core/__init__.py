"""Encompass: manage functionality (master images and their clones) apart from resources (machines)."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_hookimpl = None


def __getattr__(name: str) -> Any:
    """``encompass_core.hookimpl`` marks a plugin's hook implementations
    (``@encompass_core.hookimpl``). Made on first use: commands that load no plugin do not pay
    for importing pluggy."""
    global _hookimpl
    if name != "hookimpl":
        raise AttributeError(f"module 'encompass_core' has no attribute {name!r}")
    if _hookimpl is None:
        import pluggy

        _hookimpl = pluggy.HookimplMarker("encompass")
    return _hookimpl
