"""Deploying a clone on a machine, and undeploying it.

The storage side (attach/detach) and the machine side (define/boot) meet only here. A deploy
that fails before the machine was touched leaves the clone as it was; the machine's record
names the image it runs, so a second image is refused.
"""

from __future__ import annotations

import contextlib

import attrs

from .. import lifecycle
from ..context import Context
from ..contracts import AttachRequest, attachment_kinds, check_capability
from ..errors import Conflict, NotFound
from ..model import Image, Machine, Volume
from . import claims, holding, machine_items, platform_items
from .customize import apply_pending_in_files
from .machines import fit_problems


def claim_check(machine_name: str, clone: str, op_name: str = "deploy"):
    """A check for :func:`holding.hold`: the machine exists, fits, and is free; claim it.
    (A migration's clone is claimed by its source machine: only deploy refuses that.)"""

    def check(tx, image: Image) -> None:
        found = tx.find_machine(machine_name)
        if found is None:
            raise NotFound(f"no machine named '{machine_name}' (see: encompass machine list)")
        if found.image and found.image != clone:
            raise Conflict(f"cannot {op_name} '{clone}' on '{machine_name}': it runs '{found.image}' "
                           f"already; undeploy that first (encompass undeploy {found.image})"
                           + (", or exchange the two: encompass swap" if op_name == "migrate" else ""))
        if op_name == "deploy":
            claims.refuse(image, "deploy", claims.claimed_by(tx), allow=machine_name)
        problems = fit_problems(found, image)
        if problems:
            raise Conflict(f"cannot {op_name} clone '{clone}': machine '{machine_name}' "
                           + "; ".join(problems) + f" (hardware profile). Pick another machine: "
                           f"encompass machine list --fits {clone}")
        tx.put_machine(attrs.evolve(found, image=clone))

    return check


def _release(ctx: Context, machine_name: str, clone: str, machine: Machine | None = None) -> None:
    with ctx.store.transaction() as tx:
        found = machine or tx.find_machine(machine_name)
        if found is not None and (found.image in (None, clone)):
            tx.put_machine(attrs.evolve(found, image=None))


def deploy(ctx: Context, clone: str, machine_name: str | None = None, new: bool = False,
           platform: str | None = None) -> Image:
    """Deploy ``clone`` on machine ``machine_name``, or on a new virtual machine of ``platform``."""
    if new == bool(machine_name):
        raise Conflict("give either a MACHINE or --new (a new virtual machine), not both or neither")
    if not new:
        return _deploy_on(ctx, clone, machine_name)
    platform = platform or _only_platform(ctx)
    with ctx.store.snapshot() as tx:
        image = tx.image(clone)
    lifecycle.check_start("deploy", image.state, name=clone, is_master=image.is_master, error=image.error)
    driver = ctx.platform(platform).driver
    check_capability(driver, "create_machines", "create machines; deploy on one of its machines "
                     "(encompass machine list)")
    _attach_requests(ctx, image, driver)  # refuse what cannot be attached before creating anything
    created = driver.create_machine(clone, image)
    with ctx.store.transaction() as tx:
        tx.put_machine(attrs.evolve(created, extra={**created.extra, "created_by": "encompass"}))
    try:
        return _deploy_on(ctx, clone, created.name)
    except BaseException:
        with contextlib.suppress(Exception):
            driver.destroy_machine(created)
        with ctx.store.transaction() as tx:
            tx.remove_machine(created.name)
        raise


def _deploy_on(ctx: Context, clone: str, machine_name: str) -> Image:
    with holding.hold(ctx, clone, "deploy", check=claim_check(machine_name, clone)) as held:
        with ctx.store.snapshot() as tx:
            target = tx.find_machine(machine_name)
        platform_driver = ctx.platform(target.platform).driver
        pending = platform_items.pending(held.image)
        by_platform = bool(pending) and platform_driver.capabilities.customize
        attached = []
        try:
            if pending and not by_platform:
                # This platform does not customize guests: the items go into the files, before
                # the volumes are attached (a failure from here on leaves the clone in error).
                held.dirty = True
                apply_pending_in_files(ctx, held)
            # Values naming the machine ({machine}, {platform}, {driver}) are written for this one;
            # files and records agree once written, so a failure later need not leave an error.
            dirty, filled = held.dirty, ()
            if not by_platform:
                filled = machine_items.apply_for(ctx, held, target, naming_only=True)
            if filled:
                holding.save(ctx, held)
                held.dirty = dirty
            for volume, request in _attach_requests(ctx, held.image, platform_driver):
                attached.append((volume, ctx.pool(volume.pool).driver.attach(volume, target, request)))
            if by_platform:  # before the machine boots: the guest applies it as it starts
                platform_driver.customize(target, held.image, platform_items.spec(held.image, pending))
            running = platform_driver.deploy(target, held.image, [a for _v, a in attached])
        except BaseException:
            for volume, _attachment in attached:
                with contextlib.suppress(Exception):
                    ctx.pool(volume.pool).driver.detach(volume, target)
            _release(ctx, machine_name, clone)
            raise
        with ctx.store.transaction() as tx:
            tx.put_machine(attrs.evolve(running, image=clone))
        # Deployed: whoever meant to deploy it again (a rebase, a rollback, repair) need not.
        held.image = attrs.evolve(held.image, machine=machine_name, redeploy_on=None, redeploy_by=None)
        held.message = f"deployed on machine '{machine_name}' (platform '{target.platform}')"
        held.details = {"machine": machine_name, "platform": target.platform}
        if by_platform:
            held.image = platform_items.mark_applied(held.image, pending, machine_name)
            held.message += f"; customized by the platform: {', '.join(pending)}"
        elif pending:
            held.message += f"; customized in its files: {', '.join(pending)}"
        if filled:
            held.message += f"; item(s) {', '.join(filled)} written for this machine"
    return held.result


def _attach_requests(ctx: Context, image: Image, platform_driver) -> list[tuple[Volume, AttachRequest]]:
    """What to ask of each volume's pool: kinds the platform takes, the first volume boots at
    LUN 0. Refuses (before anything is attached) a volume no kind fits."""
    ordered = sorted(image.volumes, key=lambda v: v.index)
    return [(volume, AttachRequest(kinds=attachment_kinds(ctx.pool(volume.pool).driver, platform_driver),
                                   boot=position == 0, lun=position))
            for position, volume in enumerate(ordered)]


def undeploy(ctx: Context, clone: str, remove_machine: bool = False) -> Image:
    """Power off the machine running ``clone``, detach its volumes; remove the VM if asked."""
    with holding.hold(ctx, clone, "undeploy") as held:
        with ctx.store.snapshot() as tx:
            # A deploy killed half-way leaves only the machine's record naming the clone.
            name = claims.machine_claiming(tx, held.image)
            target = tx.find_machine(name) if name else None
        if target is not None:
            driver = ctx.platform(target.platform).driver
            if remove_machine:  # refused before the machine is touched, not after
                check_capability(driver, "create_machines", f"remove machine '{target.name}'; "
                                 f"undeploy without --remove-machine")
            held.dirty = True
            stopped = driver.undeploy(target, held.image)
            for volume in held.image.volumes:
                ctx.pool(volume.pool).driver.detach(volume, target)
            if remove_machine:
                driver.destroy_machine(stopped)
                with ctx.store.transaction() as tx:
                    tx.remove_machine(stopped.name)
            else:
                _release(ctx, stopped.name, clone, attrs.evolve(stopped, image=clone))
        held.image = attrs.evolve(held.image, machine=None)
        held.message = f"undeployed from machine '{name}'" + (" (machine removed)" if remove_machine else "")
    return held.result


def _only_platform(ctx: Context) -> str:
    platforms = list(ctx.config.platforms)
    if len(platforms) == 1:
        return platforms[0]
    if not platforms:
        raise NotFound(f"no platform is configured in {ctx.config.path}; add a [platforms.NAME] table")
    raise Conflict(f"several platforms are configured ({', '.join(platforms)}); say which: --platform NAME")

