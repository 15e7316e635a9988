"""Rebasing clones: a clone rebuilt on another version of its master, customized as before.

The clone keeps its name, machine, history and lineage. Its new volumes are clones of the
target version's (copy-on-write when its old ones were overlays, else full copies), made under
the storage name ``CLONE.vN`` (recorded as ``making``) while the clone is held ``rebasing``;
the items it had applied are applied again with its recorded inputs (secret ones must be
given again: they are never stored). Volumes the master marks as data are carried over
untouched, with the items applied to them. The old volumes and records are kept as
``previous`` for :func:`rollback` until :func:`discard_old`. The record changes only at the
end: a rebase that fails or is killed leaves the clone as it was (``encompass repair``
removes the half-made volumes). A deployed clone is undeployed, rebased and redeployed: before
the undeploy, its record names the machine (``redeploy_on``) and this process
(``redeploy_by``) until the deploy, so repair deploys it again if we die anywhere in between.
Rollback and discard write the clone's new record first, naming the volumes they then delete
(``removing``), so a kill leaves every file owned and repair finishes the removal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from .. import lifecycle
from ..context import Context
from ..customization.fingerprint import Fingerprinter
from ..errors import Conflict, EncompassError, InvalidInput, NotFound
from ..model import CustomizationItem, Image, RebaseBackup, Volume
from ..store import Transaction
from . import batch, deploy, holding
from .clone import copy_volume
from .customize import _Images, _refuse_readers, _Work, check_values, items_of
from .master_items import customizer
from .versions import _remove, kept, outdated_clones, storage_name


@attrs.frozen
class RebaseResult:
    """What became of one clone."""

    name: str
    state: str  # ready | deployed | error | unchanged
    from_version: int | None = None
    to_version: int | None = None
    applied: tuple[str, ...] = ()
    carried: tuple[int, ...] = ()  # data volumes carried over untouched
    machine: str | None = None  # redeployed on
    error: str | None = None
    exit_code: int = 0


@attrs.frozen
class _Plan:
    name: str
    target: int
    values: dict[str, str]  # item key -> value to apply again
    machine: str | None  # deployed on, before


def _plan(tx: Transaction, name: str, version: int | None, given: Mapping[str, str]) -> _Plan | RebaseResult:
    """What rebasing ``name`` means (or that it is on that version already); refuses what cannot be."""
    clone = tx.image(name)
    if clone.is_master:
        raise InvalidInput(f"'{name}' is a master; rebase rebuilds clones on a version of their master "
                           f"(a master gets a new version with: encompass master update {name} --from CLONE)")
    master = tx.find_image(clone.master or "")
    if master is None:
        raise NotFound(f"cannot rebase '{name}': its master '{clone.master}' is gone")
    target = master.version if version is None else version
    numbers = [v.number for v in kept(master)]
    if target not in numbers:
        raise NotFound(f"master '{master.name}' has no version {target} "
                       f"(kept: {', '.join(map(str, numbers))}; see encompass master versions {master.name})")
    if clone.master_version == target:
        return RebaseResult(name, "unchanged", target, target)
    if clone.previous is not None:
        raise Conflict(f"clone '{name}' still keeps the volumes of its last rebase (version "
                       f"{clone.previous.master_version}); discard them first (encompass rebase {name} "
                       f"--discard-old) or roll back (encompass rebase {name} --rollback)")
    if clone.state not in ("ready", "deployed"):
        lifecycle.check_start("rebase", clone.state, name=name, is_master=False, error=clone.error)
    items = {i.key: i for i in master.items}
    unknown = sorted(set(given) - set(items))
    if unknown:
        raise InvalidInput(f"clone '{name}': no item {', '.join(unknown)} on its master '{master.name}' "
                           f"(items: {', '.join(sorted(items)) or 'none'})")
    values: dict[str, str] = {}
    for key in [*clone.applied, *given]:
        item = items.get(key)
        if item is None or key in values:
            continue  # an item since removed from the master is not applied again
        if key in given:
            values[key] = given[key]
        elif not item.secret and key in clone.inputs:
            values[key] = clone.inputs[key]
        else:
            values[key] = _MISSING  # a secret (never stored), or an input never recorded
    return _Plan(name, target, values, clone.machine if clone.state == "deployed" else None)


_MISSING = "\0missing"  # a value no one gave yet (a secret: never stored)


def needed_inputs(ctx: Context, names: Sequence[str], version: int | None,
                  given: Mapping[str, Mapping[str, str]]) -> dict[str, list[CustomizationItem]]:
    """For each clone, the items whose value must be given again (secret ones, never stored)."""
    missing: dict[str, list[CustomizationItem]] = {}
    with ctx.store.snapshot() as tx:
        for name in names:
            try:
                plan = _plan(tx, name, version, given.get(name, {}))
            except EncompassError:
                continue  # reported by the rebase itself
            if isinstance(plan, _Plan):
                clone = tx.image(name)
                data = tx.image(clone.master).data_volumes  # items there are carried, not applied
                items = {i.key: i for i in items_of(tx, clone)}
                wanted = [items[k] for k, v in plan.values.items() if v == _MISSING
                          and items[k].volume not in data and customizer(ctx, items[k].type, k).needs_value]
                if wanted:
                    missing[name] = wanted
    return missing


def rebase_images(ctx: Context, names: Sequence[str], version: int | None = None,
                  values: Mapping[str, Mapping[str, str]] | None = None, mode: str | None = None,
                  parallel: int | None = None,
                  on_done: Callable[[RebaseResult], None] | None = None) -> list[RebaseResult]:
    """Rebase every clone of ``names`` onto ``version`` of its master (default: the current one).

    Missing secret inputs are an error naming them, before any clone is touched; another
    refusal or failure stays that clone's (a single clone's is raised).
    """
    names = list(dict.fromkeys(names))
    if not names:
        raise InvalidInput("give at least one clone (or --all-outdated MASTER)")
    if mode not in (None, "cow", "full"):
        raise InvalidInput(f"unknown clone mode '{mode}': use cow or full")
    values = values or {}
    missing = needed_inputs(ctx, names, version, values)
    if missing:
        lines = "; ".join(f"{n}: {', '.join(i.key for i in items)}" for n, items in missing.items())
        raise InvalidInput(f"missing input(s) — {lines} (secret values are never stored: give them "
                           "again with --set KEY=VALUE or --values FILE, or answer prompts with -i)")
    check_values(ctx, names, values)  # a bad new value is one line before any clone is touched
    results: dict[str, RebaseResult] = {}
    plans: dict[str, _Plan] = {}
    with ctx.store.snapshot() as tx:
        for name in names:
            try:
                plan = _plan(tx, name, version, values.get(name, {}))
            except EncompassError as exc:
                if len(names) == 1:
                    raise
                plan = RebaseResult(name, "error", error=str(exc), exit_code=exc.exit_code)
            if isinstance(plan, RebaseResult):
                results[name] = plan
                if on_done:
                    on_done(plan)
            else:
                plans[name] = plan
    _undeploy(ctx, plans, results, on_done)
    fingerprint = Fingerprinter(ctx.home)

    def check(tx: Transaction, image: Image) -> Image:
        _refuse_readers(tx, image)
        if image.previous is not None:
            raise Conflict(f"clone '{image.name}' keeps the volumes of an earlier rebase meanwhile")
        # A deployed clone (undeployed by now) names its machine since _undeploy: intend_redeploy.
        return attrs.evolve(image, making=storage_name(image.name, plans[image.name].target))

    def body(held: holding.Holding, images: list[Image]) -> RebaseResult:
        return _rebuild(ctx, held, _Images(images), plans[held.image.name], mode, fingerprint)

    def failed(name: str, reason: str, code: int) -> RebaseResult:
        return RebaseResult(name, "error", error=reason, exit_code=code)

    def done(result: RebaseResult) -> None:  # a deployed clone is done once deployed again
        if on_done and plans[result.name].machine is None:
            on_done(result)

    todo = [n for n in names if n in plans]
    if todo:
        ran = batch.run_many(ctx, todo, "rebase", body, failed,
                             parallel or int(ctx.config.defaults.get("parallel", 4)), check, done)
        results.update({r.name: r for r in ran})
    _redeploy(ctx, plans, results, on_done)
    return [results[n] for n in names]


def _undeploy(ctx: Context, plans: dict[str, _Plan], results: dict[str, RebaseResult], on_done) -> None:
    """Undeploy the deployed clones first (their volumes are about to change); one that cannot
    be is not rebased."""
    for name, plan in list(plans.items()):
        if plan.machine is None:
            continue
        holding.intend_redeploy(ctx, name, plan.machine, "rebase")  # repair's, should we die
        try:
            deploy.undeploy(ctx, name)
        except EncompassError as exc:
            holding.drop_redeploy(ctx, name)
            del plans[name]
            results[name] = RebaseResult(name, "error", error=f"not rebased: undeploy from "
                                         f"'{plan.machine}' failed: {exc}", exit_code=exc.exit_code)
            if on_done:
                on_done(results[name])


def _redeploy(ctx: Context, plans: dict[str, _Plan], results: dict[str, RebaseResult], on_done) -> None:
    """Deploy again on its machine each clone that was deployed (rebased, or left as it was)."""
    for name, plan in plans.items():
        if plan.machine is None:
            continue
        result = results[name]
        with ctx.store.snapshot() as tx:
            state = tx.image(name).state
        if state == "ready":
            try:
                deploy.deploy(ctx, name, plan.machine)
                if result.error is None:
                    result = attrs.evolve(result, state="deployed", machine=plan.machine)
            except EncompassError as exc:
                result = attrs.evolve(result, state="error", exit_code=exc.exit_code, error=(
                    (result.error + "; " if result.error else "rebased, but ")
                    + f"deploying again on '{plan.machine}' failed: {exc} "
                    f"(deploy it by hand: encompass deploy {name} {plan.machine})"))
        holding.drop_redeploy(ctx, name)  # deployed (the deploy cleared it), or said why not
        results[name] = result
        if on_done:
            on_done(result)


def _rebuild(ctx: Context, held: holding.Holding, images: _Images, plan: _Plan, mode: str | None,
             fingerprint: Fingerprinter) -> RebaseResult:
    """The body of one clone's rebase, under its ``rebasing`` lock."""
    clone = held.image
    master = images.find_image(clone.master).at_version(plan.target)
    old = {v.index: v for v in clone.volumes}
    volumes: list[Volume] = []
    made: list[Volume] = []
    carried: list[int] = []
    try:
        for volume in sorted(master.volumes, key=lambda v: v.index):
            mine = old.get(volume.index)
            if mine is not None and volume.index in master.data_volumes:
                volumes.append(mine)
                carried.append(volume.index)
                continue
            how = mode or ("cow" if mine is not None and mine.depth > 0 else "full")
            made.append(copy_volume(ctx, ctx.pool(mine.pool if mine else None), master.name, volume,
                                    clone.making, how, record_jobs_on=clone.name))
            volumes.append(made[-1])
        applied = _apply(ctx, held, images, plan, volumes, carried, fingerprint)
    except BaseException:
        _remove(ctx, clone.making, made, clone)
        raise
    previous = RebaseBackup(master_version=clone.master_version, volumes=clone.volumes,
                            applied=clone.applied, inputs=clone.inputs)
    held.image = attrs.evolve(held.image, previous=previous)
    held.message = (f"rebased from version {clone.master_version} onto version {plan.target}"
                    + (f"; applied again: {', '.join(applied)}" if applied else "")
                    + (f"; data volume(s) {', '.join(map(str, carried))} carried over" if carried else "")
                    + " (old volumes kept: encompass rebase --rollback / --discard-old)")
    return RebaseResult(clone.name, "ready", clone.master_version, plan.target, tuple(applied),
                        tuple(carried))


def _apply(ctx: Context, held: holding.Holding, images: _Images, plan: _Plan, volumes: list[Volume],
           carried: list[int], fingerprint: Fingerprinter) -> list[str]:
    """Apply the clone's items again on its new volumes; items on carried data volumes stay
    applied as they are. Leaves the new record in ``held.image``."""
    clone = held.image
    items = items_of(images, clone)
    on_data = {i.key for i in items if i.volume in carried}
    fresh = attrs.evolve(clone, volumes=tuple(volumes), master_version=plan.target,
                         applied={k: r for k, r in clone.applied.items() if k in on_data},
                         inputs={k: v for k, v in clone.inputs.items()})
    work = _Work(ctx, holding.Holding(image=fresh, operation=lifecycle.operation("customize")), images)
    try:
        for item in items:
            value: Any = plan.values.get(item.key)
            if value is None or item.key in on_data:
                continue
            kind = customizer(ctx, item.type, item.key)
            kind.validate(item)
            value = "" if not kind.needs_value else value
            work.apply(item, value, fingerprint(value, item.key))
    finally:
        work.volumes.close()
    held.image = work.image  # the held clone with its new volumes and records
    return list(work.done["applied"])


# -- rollback, discard -------------------------------------------------------------------
def rollback(ctx: Context, name: str) -> Image:
    """Take clone ``name`` back to the volumes, version and customization its last rebase
    replaced; the rebased volumes are removed. A deployed clone is redeployed on its machine."""
    with ctx.store.snapshot() as tx:
        clone = tx.image(name)
    if clone.previous is None:
        raise Conflict(f"clone '{name}' has nothing to roll back to (no rebase kept its old volumes)")
    machine = clone.machine if clone.state == "deployed" else None
    if machine:
        holding.intend_redeploy(ctx, name, machine, "rollback")  # repair's, should we die
        try:
            deploy.undeploy(ctx, name)
        except BaseException:
            holding.drop_redeploy(ctx, name)
            raise

    def still(tx: Transaction, image: Image) -> None:
        if image.previous is None:
            raise Conflict(f"clone '{name}' has nothing to roll back to any more")
        _refuse_readers(tx, image)  # clones made since the rebase read its new volumes

    try:
        with holding.hold(ctx, name, "rollback", check=still) as held:
            current, back = held.image, held.image.previous
            held.image = attrs.evolve(current, volumes=back.volumes, master_version=back.master_version,
                                      applied=back.applied, inputs=back.inputs, previous=None)
            holding.remove_volumes(ctx, held, _unused(current.volumes, back.volumes))
            held.message = (f"rolled back from version {current.master_version} to version "
                            f"{back.master_version}")
    except EncompassError:
        if machine:  # not rolled back (or in error): back on its machine, when it can be
            with contextlib.suppress(EncompassError):
                deploy.deploy(ctx, name, machine)
            holding.drop_redeploy(ctx, name)
        raise
    if machine:
        try:
            deploy.deploy(ctx, name, machine)
        finally:
            holding.drop_redeploy(ctx, name)  # deployed (the deploy cleared it), or said why not
    return held.result


def discard_old(ctx: Context, name: str) -> Image:
    """Remove the volumes clone ``name``'s last rebase kept for a rollback."""

    def check(tx: Transaction, image: Image) -> None:
        if image.previous is None:
            raise Conflict(f"clone '{name}' keeps no old volumes (nothing to discard)")

    with holding.hold(ctx, name, "discard", check=check) as held:
        current, old = held.image, held.image.previous
        held.image = attrs.evolve(current, previous=None)
        holding.remove_volumes(ctx, held, _unused(old.volumes, current.volumes))
        held.message = f"old volumes of version {old.master_version} discarded"
    return held.result


def _unused(volumes: Sequence[Volume], still_used: Sequence[Volume]) -> list[Volume]:
    used = {(v.pool, v.location) for v in still_used}  # carried data volumes are in both
    return [v for v in volumes if (v.pool, v.location) not in used]


def all_outdated(ctx: Context, master_name: str) -> list[str]:
    """The clones ``rebase --all-outdated MASTER`` rebases."""
    return outdated_clones(ctx, master_name)
