"""Importing a master image from files or directory trees into a pool."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

from .. import lifecycle
from ..context import Context
from ..errors import InvalidInput, NotFound, NotSupported
from ..model import HardwareProfile, Image, MasterVersion, SoftwareProfile, validate_name
from ..store import current_owner
from . import holding
from .holding import Holding


def import_master(
    ctx: Context,
    name: str,
    sources: Sequence[Path],
    pool: str | None = None,
    hardware: HardwareProfile | None = None,
    software: SoftwareProfile | None = None,
    progress: Callable[[int], None] | None = None,
    data_volumes: Sequence[int] = (),
) -> Image:
    """Copy ``sources`` (one per volume, in order) into ``pool`` as master ``name``, version 1.

    ``data_volumes``: the indexes of the volumes holding the functionality's data rather than
    its software (a rebase carries a clone's own over untouched)."""
    validate_name(name)
    if not sources:
        raise InvalidInput("give at least one file or directory to import")
    paths = [Path(s).expanduser() for s in sources]
    wrong = sorted(set(i for i in data_volumes if not 0 <= i < len(paths)))
    if wrong:
        raise InvalidInput(f"--data-volume {wrong[0]}: there are volumes 0 to {len(paths) - 1} only "
                           "(one per file or directory given, in order)")
    for path in paths:
        if not path.exists():
            raise NotFound(f"no such file or directory: {path}")
    target = ctx.pool(pool)
    if not target.driver.capabilities.imports:
        raise NotSupported(f"pool '{target.name}' takes no imports from this server; import into "
                           "another pool and clone from there (encompass clone --pool)")
    for path in paths:  # refuse a half-written or unusable file before anything is recorded
        target.driver.inspect_source(path)
    image = Image(name=name, kind="master", state="new", version=1,
                  data_volumes=tuple(sorted(set(data_volumes))),
                  hardware=hardware or HardwareProfile(), software=software or SoftwareProfile())
    events = []
    with ctx.store.transaction() as tx:
        owner = current_owner("import", "new")
        importing = attrs.evolve(image, state="importing", owner=owner)
        tx.add_image(importing)
        holding.record(ctx, tx, holding.transition_event(
            image, "importing", f"import of {', '.join(map(str, paths))} into pool '{target.name}'",
            "import"), events)
    holding.announce(ctx, events)
    held = Holding(image=importing, operation=lifecycle.operation("import"), dirty=True)
    volumes = []
    try:
        for index, path in enumerate(paths):
            volumes.append(target.driver.import_volume(name, index, path, progress))
    except BaseException as exc:
        holding.delete_volumes(ctx, volumes)
        reason = "interrupted by the user (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else str(exc)
        holding.fail(ctx, held, reason)
        raise
    held.image = attrs.evolve(importing, volumes=tuple(volumes),
                              versions=(MasterVersion(1, tuple(volumes), note="imported"),))
    held.message = f"imported {len(volumes)} volume(s) as master version 1"
    return holding.finish(ctx, held)
