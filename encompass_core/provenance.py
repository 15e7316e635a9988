"""Where a plugin comes from and which edition of the contract it was written for.

A plugin says which edition of the driver contract (:mod:`encompass_core.contracts`) it was
written for with a module-level ``CONTRACT_EDITION = 2`` in the module its entry point names
(or a class attribute of the same name, when the entry point names a class). The plugin host
refuses a plugin whose edition this core does not speak, with a message saying so, before it
registers any of its hooks. A plugin that declares nothing is accepted as it is (the core then
checks each driver it builds against the contract's base classes).

Origins: ``core`` (the built-in drivers), ``plugins`` (``plugins/`` of the Encompass source
tree, maintained and released with the core), ``contrib`` (``contrib/`` of the source tree:
written as a vendor would, maintained by their authors) and ``elsewhere`` (any other
distribution).
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from .editions import CONTRACT_EDITION, SUPPORTED_EDITIONS

ORIGINS = ("core", "plugins", "contrib", "elsewhere")


def declared_edition(plugin: Any) -> int | None:
    """The contract edition a loaded plugin object (module, class or instance) declares."""
    for holder in (plugin, type(plugin), sys.modules.get(getattr(plugin, "__module__", "") or "")):
        edition = getattr(holder, "CONTRACT_EDITION", None) if holder is not None else None
        if edition is not None:
            return edition
    return None


def edition_problem(edition: Any) -> str | None:
    """Why a plugin declaring ``edition`` cannot be loaded by this core (one phrase), or None."""
    if edition is None or edition in SUPPORTED_EDITIONS:
        return None
    spoken = ", ".join(str(e) for e in SUPPORTED_EDITIONS)
    if isinstance(edition, int) and not isinstance(edition, bool) and edition > CONTRACT_EDITION:
        advice = "upgrade encompass-core, or install a release of the plugin written for it"
    else:
        advice = f"update the plugin to edition {CONTRACT_EDITION} (docs/plugin-authors.md)"
    return (f"it was written for contract edition {edition!r}, and this core speaks edition "
            f"{spoken}: {advice}")


def source_tree() -> Path:
    """The directory holding ``encompass_core`` (a source checkout's root when run from one)."""
    return Path(__file__).resolve().parents[1]


def origin_of(plugin: Any, installed_from: str | Path | None) -> str:
    """``plugins``, ``contrib`` or ``elsewhere`` for an external plugin.

    A plugin's code lives in ``plugins/NAME`` or ``contrib/NAME`` of an Encompass source tree
    (one holding ``encompass_core``) when it was installed from there: its module file says so
    when it is imported from the tree, its ``direct_url.json`` (``installed_from``: see
    :func:`installed_from`) when it was installed from one.
    """
    places = []
    module = inspect.getmodule(plugin) if not inspect.ismodule(plugin) else plugin
    if module is not None and getattr(module, "__file__", None):
        places.append(Path(module.__file__).resolve())
    if installed_from is not None:
        places.append(Path(installed_from))
    for place in places:
        for parent in place.parents:
            if parent.name in ("plugins", "contrib") and (parent.parent / "encompass_core").is_dir():
                return parent.name
    return "elsewhere"


def installed_from(distribution: Any) -> Path | None:
    """The local directory an ``importlib.metadata.Distribution`` was installed from (PEP 610),
    if any."""
    if distribution is None:
        return None
    text = distribution.read_text("direct_url.json")
    if not text:
        return None
    try:
        url = urlparse(json.loads(text).get("url", ""))
    except (ValueError, AttributeError):
        return None
    return Path(unquote(url.path)).resolve() if url.scheme == "file" else None
