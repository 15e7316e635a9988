"""The core's own answer to ``encompass_clone_volume``: ask the target pool's driver.

Registered like any plugin, and tried last, so that a plugin cloning between pools of two
different drivers answers first. Every clone goes through the hook: one path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import hookimpl

if TYPE_CHECKING:
    from ..contracts import CloneProgress
    from ..model import Volume
    from ..records import CloneRequest


@hookimpl(trylast=True)
def encompass_clone_volume(source: Volume, target_pool: Any, request: CloneRequest,
                           progress: CloneProgress) -> Volume | None:
    """The target driver's native clone, or None (the core then copies through streams)."""
    source_driver = target_pool.resolve(source.pool).driver
    return target_pool.driver.clone_volume(source, source_driver, request, progress)
