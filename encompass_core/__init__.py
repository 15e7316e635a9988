"""Encompass: manage functionality (master images and their clones) apart from resources (machines)."""

__version__ = "0.1.0"

import pluggy as _pluggy

#: Mark a plugin's hook implementations: ``@encompass_core.hookimpl``.
hookimpl = _pluggy.HookimplMarker("encompass")
