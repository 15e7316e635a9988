"""Registers the built-in volume openers (``openers.BUILTIN_OPENERS``) through
``encompass_volume_openers``."""

from __future__ import annotations

from .. import hookimpl
from ..records import VolumeOpenerRecord


@hookimpl
def encompass_volume_openers():
    from .openers import BUILTIN_OPENERS

    for name, factory, priority in BUILTIN_OPENERS:
        doc = (factory.__doc__ or "").strip().splitlines()
        yield VolumeOpenerRecord(name=name, factory=factory, priority=priority,
                                 description=doc[0] if doc else "",
                                 settings=getattr(factory, "settings", ()))
