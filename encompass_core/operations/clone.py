"""Cloning: many clones of a master or of a clone at once, copy-on-write or full.

All clone records are created in one transaction (state ``cloning``, owned by this process),
the volumes are made by a bounded pool of workers, and results are written back in batches,
so bookkeeping stays cheap next to the copying. One clone failing leaves that clone in
``error`` with its reason while the others finish; Ctrl-C removes the clones not yet begun and
leaves those begun in ``error`` — none stays stuck in ``cloning``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import attrs

from ..context import Context, Pool
from ..contracts import CloneProgress
from ..errors import Conflict, Interrupted, InvalidInput, NotSupported
from ..model import Image, StorageJob, Volume, validate_name
from ..records import CloneRequest
from ..store import Transaction, current_owner
from . import holding
from . import workers as workers_mod


@attrs.frozen
class CloneResult:
    """What became of one requested clone."""

    name: str
    state: str  # ready | error | cancelled
    error: str | None = None
    copied: int = 0  # bytes the core streamed between pools (0: native clones only)
    seconds: float = 0.0  # how long the streaming took


MIB = 1 << 20

#: ``on_bytes(clone name, bytes done so far, bytes in all its volumes)`` while the core streams.
BytesProgress = Callable[[str, int, int], None]


def names_for(names: Sequence[str], count: int | None, prefix: str | None) -> list[str]:
    """The clone names: given ones, or ``PREFIX1..PREFIXN`` for ``--count N --prefix P``."""
    if count is not None:
        if names:
            raise InvalidInput("give clone names or --count with --prefix, not both")
        if not prefix:
            raise InvalidInput("--count needs --prefix (clones are named PREFIX1 .. PREFIXN)")
        if count < 1:
            raise InvalidInput("--count must be 1 or more")
        names = [f"{prefix}{i}" for i in range(1, count + 1)]
    elif prefix:
        raise InvalidInput("--prefix goes with --count")
    if not names:
        raise InvalidInput("give at least one clone name (or --count N --prefix P)")
    for name in names:
        validate_name(name, "clone")
    seen, twice = set(), set()
    for name in names:
        (twice if name in seen else seen).add(name)
    if twice:
        raise InvalidInput(f"clone name(s) given twice: {', '.join(sorted(twice))}")
    return list(names)


def _check_source(tx: Transaction, source: Image) -> None:
    if source.state != "ready":
        busy = " (busy: wait, or run encompass repair if its operation died)" if source.owner else ""
        raise Conflict(
            f"cannot clone '{source.name}': it is {source.state}{busy}; only a ready image is cloned"
        )
    if not source.volumes:
        raise Conflict(f"cannot clone '{source.name}': it has no volumes")


def clone_images(
    ctx: Context,
    source_name: str,
    names: Sequence[str],
    mode: str | None = None,
    pool: str | None = None,
    parallel: int | None = None,
    on_done: Callable[[CloneResult], None] | None = None,
    on_bytes: BytesProgress | None = None,
) -> list[CloneResult]:
    """Clone ``source_name`` into each of ``names``; return what became of each.

    Each volume is cloned natively when a driver can (``encompass_clone_volume``: the same
    subsystem or server), else streamed by the core from the source pool's :meth:`expose` into
    the target pool's :meth:`write_volume` (full clones only), reported through ``on_bytes``.
    """
    mode = mode or ctx.config.defaults.get("clone_mode", "cow")
    if mode not in ("cow", "full"):
        raise InvalidInput(f"unknown clone mode '{mode}': use cow (copy-on-write) or full")
    target = ctx.pool(pool)
    max_depth = int(target.section.setting("max_chain_depth", 8, int))
    workers = max(1, min(parallel or int(ctx.config.defaults.get("parallel", 4)),
                         target.driver.concurrency, len(names)))

    events: list = []
    # Ctrl-C is held back from the moment the records are made until every clone is handed to
    # a worker: in between, an interrupt would strand records in 'cloning' or lose a begun clone.
    interrupt_pending = workers_mod.hold_back_sigint()
    try:
        with ctx.store.transaction() as tx:
            # Only read: locked shared, so that several processes clone one master at once.
            source = tx.image(source_name, shared=True)
            _check_source(tx, source)
            clashes = tx.taken(names)
            if clashes:
                raise Conflict(f"image name(s) taken already: {', '.join(clashes)}; pick other names")
            if mode == "cow":
                deepest = max(v.depth for v in source.volumes) + 1
                if deepest > max_depth:
                    raise Conflict(
                        f"cannot clone '{source.name}' copy-on-write: the chain would be {deepest} deep, "
                        f"over the limit of {max_depth} (max_chain_depth of pool '{target.name}'). Use "
                        f"--mode full, or make it independent first: encompass image flatten {source.name}"
                    )
            owner = current_owner("clone", "new")
            master = source.name if source.is_master else source.master
            version = source.version if source.is_master else source.master_version
            clones = [Image(
                name=name, kind="clone", state="cloning", master=master, parent=source.name,
                master_version=version, hardware=source.hardware, software=source.software,
                inputs={} if source.is_master else source.inputs,
                applied={} if source.is_master else source.applied, owner=owner,
            ) for name in names]
            tx.add_images(clones)  # in one go: the store indexes them once
            for clone in clones:
                holding.record(ctx, tx, _created_event(clone, f"{mode} clone of '{source.name}' into pool "
                                                    f"'{target.name}'"), events)
    except BaseException:
        interrupt_pending()
        raise

    results: dict[str, CloneResult] = {}
    streamed: dict[str, _Streamed] = {}
    total = sum(v.size for v in source.volumes)

    def work(name: str) -> list[Volume]:
        made: list[Volume] = []
        stats = streamed[name] = _Streamed(name, total, on_bytes)
        try:
            for volume in source.volumes:
                made.append(_clone_volume(ctx, target, source.name, volume, name, mode, max_depth,
                                          CloneProgress(advance=stats.advance,
                                                        on_job=_job_recorder(ctx, name, target.name,
                                                                             volume.index)),
                                          stats))
        except BaseException:
            holding.delete_volumes(ctx, made)  # a clone is whole or not at all
            raise
        return made

    try:
        holding.announce(ctx, events)
    except BaseException:
        interrupt_pending()
        raise
    never_begun = workers_mod.run_jobs(
        names, work, workers,
        lambda finished: _write_back(ctx, finished, results, on_done, mode, owner, streamed),
        "clone", held_back=interrupt_pending)
    if never_begun is not None:
        _cancel(ctx, never_begun, results, on_done)
        made = sum(results[n].state == "ready" for n in names)
        raise Interrupted(
            f"interrupted: {made} of {len(names)} clone(s) made; begun ones left in 'error' "
            "(delete them: encompass image delete NAME), the rest were not created"
        )
    return [results[n] for n in names]


def _job_recorder(ctx: Context, name: str, pool: str, index: int):
    """Record a long storage-side job on clone ``name`` at once, so ``repair`` finds it."""

    def record(job_id: str, description: str) -> None:
        with ctx.store.transaction() as tx:
            image = tx.image(name)
            job = StorageJob(pool=pool, index=index, id=job_id, description=description)
            tx.put_image(attrs.evolve(image, jobs=(*image.jobs, job)))

    return record


def _created_event(image: Image, message: str):
    return holding.transition_event(attrs.evolve(image, state="new"), "cloning", message, "clone")


class _Streamed:
    """Bytes the core streamed for one clone, and for how long."""

    def __init__(self, name: str, total: int, on_bytes: BytesProgress | None) -> None:
        self.name, self.total, self._on_bytes = name, total, on_bytes
        self.done = 0
        self.seconds = 0.0
        self.streaming = False
        self.source_pool = ""

    def advance(self, done: int) -> None:
        self.done += done
        if self._on_bytes is not None:
            self._on_bytes(self.name, self.done, self.total)


def copy_volume(ctx: Context, target: Pool, source_name: str, volume: Volume, name: str,
                mode: str, record_jobs_on: str | None = None) -> Volume:
    """One volume of image ``source_name`` cloned as volume ``volume.index`` of storage name
    ``name`` in pool ``target`` (natively when a driver can, else streamed): what a rebase or a
    new master version makes. Long storage jobs are recorded on image ``record_jobs_on``."""
    max_depth = int(target.section.setting("max_chain_depth", 8, int))
    on_job = _job_recorder(ctx, record_jobs_on, target.name, volume.index) if record_jobs_on else None
    stats = _Streamed(name, volume.size, None)
    return _clone_volume(ctx, target, source_name, volume, name, mode, max_depth,
                         CloneProgress(advance=stats.advance, on_job=on_job), stats)


def _clone_volume(
    ctx: Context, target: Pool, source_name: str, volume: Volume, name: str, mode: str, max_depth: int,
    progress: CloneProgress, stats: _Streamed,
) -> Volume:
    """One volume of a clone: natively when a driver can (``encompass_clone_volume``), else a
    full copy: straight from the source pool's reader into the target (``open_reader``,
    ``write_stream``) when both sides offer it, else through ``expose`` and ``write_volume``."""
    request = CloneRequest(image=name, index=volume.index, mode=mode, max_depth=max_depth,
                           source_image=source_name)
    made = ctx.host.hook.encompass_clone_volume(source=volume, target_pool=target, request=request,
                                                progress=progress)
    if made is not None:
        if made.depth > 0 and made.backing is None:
            made = attrs.evolve(made, backing=(source_name, volume.index))
        return made
    source_pool = ctx.pool(volume.pool)
    if mode == "cow":
        raise NotSupported(
            f"pool '{target.name}' cannot make a copy-on-write clone of a volume of pool "
            f"'{source_pool.name}'; use --pool {source_pool.name} to clone it there, or --mode full"
        )
    started = time.monotonic()
    stats.streaming, stats.source_pool = True, source_pool.name
    try:
        reading = source_pool.driver.open_reader(volume)  # a direct read, when the pool has one
        if reading is not None:
            with reading as reader:
                made = target.driver.write_stream(name, volume.index, reader, volume.size,
                                                  progress.advance)
            if made is not None:
                return made
        with source_pool.driver.expose(volume, writable=False) as ref:
            return target.driver.write_volume(name, volume.index, ref, volume.size, progress.advance)
    finally:
        stats.seconds += time.monotonic() - started


def _write_back(ctx, finished, results, on_done, mode, owner, streamed) -> None:
    events: list = []
    with ctx.store.transaction() as tx:
        found = {image.name: image for image in tx.find_images([name for name, *_rest in finished])}
        recorded = []
        for name, volumes, error, _code in finished:
            image = found.get(name)
            if image is None or not holding.owned_by(image, owner):
                # Gone, or taken over by repair: nothing of ours to record.
                results[name] = CloneResult(name, "error", "taken over by encompass repair meanwhile")
                continue
            if error is None:
                done = attrs.evolve(image, state="ready", owner=None, volumes=tuple(volumes), jobs=())
                message = f"{mode} clone made ({len(volumes)} volume(s))"
            else:
                done = attrs.evolve(image, state="error", owner=None, error=f"clone: {error}")
                message = f"clone failed: {error}"
            stats = streamed.get(name)
            if stats is not None and stats.streaming and error is None:
                message += (f", streamed {stats.done / MIB:.1f} MiB from pool '{stats.source_pool}' "
                            f"in {stats.seconds:.1f} s")
            holding.record(ctx, tx, holding.transition_event(image, done.state, message, "clone",
                                                             kind="operation"), events)
            recorded.append(done)
            results[name] = CloneResult(name, done.state, error,
                                        stats.done if stats and stats.streaming else 0,
                                        round(stats.seconds, 3) if stats else 0.0)
        tx.put_images(recorded)  # one statement for the batch (PostgreSQL), not one per clone
    holding.announce(ctx, events)
    if on_done:
        for name, _volumes, _error, _code in finished:
            if name in results:
                on_done(results[name])


def _cancel(ctx, names, results, on_done) -> None:
    """Remove the records of clones that were never begun."""
    if not names:
        return
    with ctx.store.transaction() as tx:
        for name in names:
            image = tx.find_image(name)
            if image is not None and image.state == "cloning":
                tx.remove_image(name)
            results[name] = CloneResult(name, "cancelled", "interrupted before it began")
    if on_done:
        for name in names:
            on_done(results[name])


def flatten_image(ctx: Context, name: str) -> Image:
    """Make every volume of clone ``name`` independent of its backing chain."""
    with holding.hold(ctx, name, "flatten") as held:
        held.dirty = True
        volumes = []
        for volume in held.image.volumes:
            volumes.append(ctx.pool(volume.pool).driver.flatten_volume(volume))
        held.image = attrs.evolve(held.image, volumes=tuple(volumes))
        held.message = "flattened: no longer reads through its parent"
    _renumber_depths(ctx, name)
    return held.result


def _renumber_depths(ctx: Context, root: str) -> None:
    """After a flatten, the overlays on top of ``root`` are shallower: record it."""
    with ctx.store.transaction() as tx:
        images = {root: tx.image(root)}
        todo = [root]
        while todo:
            parent = images[todo.pop()]
            depth_of = {v.index: v.depth for v in parent.volumes}
            for child in tx.dependents(parent.name):
                if not any(v.backing and v.backing[0] == parent.name for v in child.volumes):
                    continue
                volumes = tuple(
                    attrs.evolve(v, depth=depth_of.get(v.backing[1], 0) + 1)
                    if v.backing and v.backing[0] == parent.name else v
                    for v in child.volumes
                )
                images[child.name] = child
                if volumes != child.volumes:
                    images[child.name] = attrs.evolve(child, volumes=volumes)
                    tx.put_image(images[child.name])
                todo.append(child.name)


def copy_volume_to(ctx: Context, pool: str, image: str, volume: Volume) -> Volume:
    """An independent copy of ``image``'s ``volume`` in ``pool``, under the same image name and
    index (migration across pools): natively where a driver can, else through streams."""
    target = ctx.pool(pool)
    made = _clone_volume(ctx, target, image, volume, image, "full", 0, CloneProgress(),
                         _Streamed(image, volume.size, None))
    return attrs.evolve(made, backing=None, depth=0)
