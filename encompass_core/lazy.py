"""Modules imported when first used, not when the module naming them is imported.

Every ``encompass`` command imports every CLI module its command group spans, and pays for
what they import before doing its own work: ``image list`` should not import the clone and
customize operations (and through them the drivers' contract and the worker pools). A CLI
module names the operations it calls with :func:`lazy_module` and keeps calling them as
``clone_op.clone_images(...)``; the operation is imported by the first such call.

Registration hooks are called by every command that needs one record of theirs (``customize``
asks for the item types to build the one it applies): :func:`lazy_factory` gives a record a
factory whose module is imported when the factory is called, not when the record is made.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for the module ``name``: the first attribute read imports it."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attribute)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r}, {state}>"


def lazy_module(name: str) -> Any:
    """The module ``name`` (absolute), imported when one of its attributes is first read.

    Typed ``Any`` so that call sites read as with a plain import; type checkers see the real
    module where the calling module imports it under ``TYPE_CHECKING``.
    """
    return LazyModule(name)


class LazyFactory:
    """Calls ``module.name(*args, **kwargs)``, importing ``module`` on the first call."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(self.module), self.name)(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<lazy factory {self.module}.{self.name}>"


def lazy_factory(module: str, name: str) -> LazyFactory:
    """A record's factory: ``module.name`` (a class or function), imported when first called."""
    return LazyFactory(module, name)
