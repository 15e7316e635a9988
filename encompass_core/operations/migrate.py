"""Migration of functionality: a deployed clone moves to another machine.

The clone keeps its identity, lineage and customization; what moves is where it runs. The
path is the same whatever the machines are (two VMs of one hypervisor, KVM to Xen, a VM to a
blade): undeploy from the source, copy the volumes into ``--pool`` when the target cannot
reach them where they are, apply the hardware-dependent items again for the target
(:func:`~encompass_core.customization.items.is_hardware_dependent`), attach and deploy on
the target. A platform that can deploy and undeploy is enough.

Live migration is another thing: the *machine* moves to another host of its platform, running
(``migrate_live``, for platforms declaring ``migrate``, such as ESX's vMotion).

A failure part-way puts the clone back on the source machine (deployed, as it was); when even
that fails, the clone is left undeployed (``error``) and the message says what both machines
are left as. Each step is an event in the image's history. While it runs, the image is
``migrating``; a killed migration is left to ``encompass repair``: the image's record names
its machine only while a machine uses it, and the target's record claims it from before the
deploy, so repair asks the platforms and settles both claims.
"""

from __future__ import annotations

import contextlib
import os

import attrs

from ..context import Context
from ..contracts import AttachRequest, attachment_kinds, check_capability
from ..errors import Conflict, DriverError, EncompassError, NotFound
from ..model import Event, Image, Machine, Volume
from . import claims, holding, machine_items
from .deploy import claim_check


def migrate(ctx: Context, clone: str, machine_name: str, pool: str | None = None,
            values: dict[str, str] | None = None) -> Image:
    """Move deployed ``clone`` to machine ``machine_name`` (its volumes to ``pool`` if given)."""
    values = dict(values or {})
    with ctx.store.snapshot() as tx:
        image = tx.image(clone)
        source_name = claims.machine_claiming(tx, image)
        target = tx.find_machine(machine_name)
    if image.state != "deployed" or source_name is None:
        raise Conflict(f"cannot migrate clone '{clone}': it is not deployed (state {image.state}); "
                       f"deploy it instead: encompass deploy {clone} {machine_name}")
    if target is None:
        raise NotFound(f"no machine named '{machine_name}' (see: encompass machine list)")
    if source_name == machine_name:
        raise Conflict(f"clone '{clone}' runs on machine '{machine_name}' already")
    target_driver = ctx.platform(target.platform).driver
    if pool is not None:
        ctx.pool(pool)  # refuse an unknown pool before anything is touched
        with ctx.store.snapshot() as tx:
            readers = [o.name for o in tx.dependents(clone)
                       if any(v.backing and v.backing[0] == clone for v in o.volumes)]
        if readers:
            raise Conflict(f"cannot move clone '{clone}' to pool '{pool}': clone '{readers[0]}' reads "
                           f"through its volumes; make it independent first: encompass image "
                           f"flatten {readers[0]}")
    _requests(ctx, image, target_driver, pool)  # refuse what the target cannot reach

    with holding.hold(ctx, clone, "migrate", check=claim_check(machine_name, clone, "migrate")) as held:
        with ctx.store.snapshot() as tx:
            source = tx.find_machine(source_name)
        moving = _Migration(ctx, held, source, target)
        moving.run(pool, values)
    return held.result


def _requests(ctx: Context, image: Image, platform_driver, pool: str | None
              ) -> list[tuple[Volume, AttachRequest]]:
    """What to ask of each volume's pool (``pool`` when the volumes move there); refuses,
    before anything changes, a volume the target cannot reach (naming --pool)."""
    ordered = sorted(image.volumes, key=lambda v: v.index)
    requests = []
    for position, volume in enumerate(ordered):
        storage = ctx.pool(pool or volume.pool).driver
        try:
            kinds = attachment_kinds(storage, platform_driver)
        except Conflict as exc:
            raise Conflict(f"{exc}; or migrate with --pool POOL (a pool the target reaches)") from None
        requests.append((volume, AttachRequest(kinds=kinds, boot=position == 0, lun=position)))
    return requests


class _Migration:
    """One migration's steps under the image's ``migrating`` hold."""

    def __init__(self, ctx: Context, held: holding.Holding, source: Machine, target: Machine) -> None:
        self.ctx = ctx
        self.held = held
        self.source = source
        self.target = target
        self.copied: list[Volume] = []  # volumes made in --pool, removed if the migration fails
        self.left: list[Volume] = []  # the volumes as they were before --pool

    def run(self, pool: str | None, values: dict[str, str]) -> None:
        source_driver = self.ctx.platform(self.source.platform).driver
        self.held.dirty = True  # as for undeploy: a failure part-way leaves it to repair
        try:
            stopped = source_driver.undeploy(self.source, self.held.image)
            for volume in self.held.image.volumes:
                self.ctx.pool(volume.pool).driver.detach(volume, self.source)
        except BaseException:
            self._release(self.target)  # never touched: only its claim ends
            raise
        self._machine(attrs.evolve(stopped, image=None))
        self._image(machine=None)
        self.step(f"undeployed from machine '{self.source.name}' (platform '{self.source.platform}')")
        try:
            if pool is not None:
                self._move_volumes(pool)
            self._hardware_items(values, self.target)
            running = self._deploy(self.target)
        except BaseException as exc:
            self._fall_back(exc)
            raise
        if pool is not None:
            self._drop(self.left)
        self.held.image = attrs.evolve(self.held.image, machine=running.name)
        self.held.message = (f"migrated from machine '{self.source.name}' (platform "
                             f"'{self.source.platform}') to '{running.name}' (platform "
                             f"'{running.platform}')")
        self.held.details = {"machine": running.name, "platform": running.platform,
                             "from_machine": self.source.name}

    # -- steps ------------------------------------------------------------------------------
    def _deploy(self, machine: Machine) -> Machine:
        driver = self.ctx.platform(machine.platform).driver
        attached = []
        try:
            for volume, request in _requests(self.ctx, self.held.image, driver, None):
                storage = self.ctx.pool(volume.pool).driver
                attached.append((volume, storage.attach(volume, machine, request)))
            running = driver.deploy(machine, self.held.image, [a for _v, a in attached])
        except BaseException:
            for volume, _attachment in attached:
                with contextlib.suppress(Exception):
                    self.ctx.pool(volume.pool).driver.detach(volume, machine)
            raise
        self._machine(attrs.evolve(running, image=self.held.image.name))
        self._image(machine=running.name)
        self.step(f"deployed on machine '{running.name}' (platform '{running.platform}')",
                  machine=running.name, platform=running.platform)
        return running

    def _move_volumes(self, pool: str) -> None:
        from .clone import copy_volume_to

        self.left = list(self.held.image.volumes)
        moved = []
        for volume in self.left:
            if volume.pool == pool:
                moved.append(volume)
                continue
            made = copy_volume_to(self.ctx, pool, self.held.image.name, volume)
            self.copied.append(made)
            moved.append(made)
        self.held.image = attrs.evolve(self.held.image, volumes=tuple(moved))
        self.step(f"volumes copied into pool '{pool}' (independent copies)")

    def _hardware_items(self, values: dict[str, str], machine: Machine) -> None:
        keys = machine_items.apply_for(self.ctx, self.held, machine, values)
        if keys:
            self.step(f"hardware-dependent item(s) {', '.join(keys)} applied again for machine "
                      f"'{machine.name}'")

    def _fall_back(self, exc: BaseException) -> None:
        """Put the clone back on the source machine; say what both machines are left as."""
        reason = str(exc) if isinstance(exc, EncompassError) else f"{type(exc).__name__}: {exc}"
        self._release(self.target)
        if self.copied:
            self._drop(self.copied)
            self.held.image = attrs.evolve(self.held.image, volumes=tuple(self.left))
        try:
            self._hardware_items({}, self.source)
            self._claim(self.source)
            self._deploy(self.source)
        except BaseException as again:  # noqa: BLE001 - both failures are reported
            self._release(self.source)
            self.held.image = attrs.evolve(self.held.image, machine=None)
            why = str(again) if isinstance(again, EncompassError) else f"{type(again).__name__}: {again}"
            raise DriverError(
                f"cannot migrate '{self.held.image.name}' to machine '{self.target.name}': {reason}; "
                f"and it could not be deployed again on '{self.source.name}': {why}. It is "
                f"undeployed: machine '{self.source.name}' is {self._power(self.source)}, machine "
                f"'{self.target.name}' is {self._power(self.target)}. Deploy it where you want: "
                f"encompass deploy {self.held.image.name} MACHINE") from None
        # Back where it was: the hold ends in the previous state (deployed) with what changed.
        self.held.dirty = False
        self.step(f"migration to '{self.target.name}' failed ({reason}); deployed again on "
                  f"'{self.source.name}'")

    # -- records ----------------------------------------------------------------------------
    def step(self, message: str, **details) -> None:
        """One event in the image's history for a step done."""
        events: list[Event] = []
        with self.ctx.store.transaction() as tx:
            holding.record(self.ctx, tx, Event(
                image=self.held.image.name, kind="operation", operation="migrate", message=message,
                from_state="migrating", to_state="migrating", pid=os.getpid(), details=details), events)
        holding.announce(self.ctx, events)

    def _image(self, **changes) -> None:
        """Write the held image's change now (still held), so a kill leaves the truth."""
        self.held.image = attrs.evolve(self.held.image, **changes)
        with self.ctx.store.transaction() as tx:
            current = tx.find_image(self.held.image.name)
            if current is not None and holding.owned_by(current, self.held.image.owner):
                tx.put_image(attrs.evolve(current, **changes))

    def _machine(self, machine: Machine) -> None:
        with self.ctx.store.transaction() as tx:
            tx.put_machine(machine)

    def _claim(self, machine: Machine) -> None:
        with self.ctx.store.transaction() as tx:
            found = tx.find_machine(machine.name)
            if found is not None and found.image in (None, self.held.image.name):
                tx.put_machine(attrs.evolve(found, image=self.held.image.name))

    def _release(self, machine: Machine) -> None:
        """Detach the clone's volumes from a machine whose deploy failed (a failed deploy leaves
        the machine as it was: it is not touched) and end its record's claim."""
        for volume in self.held.image.volumes:
            with contextlib.suppress(Exception):
                self.ctx.pool(volume.pool).driver.detach(volume, machine)
        with self.ctx.store.transaction() as tx:
            found = tx.find_machine(machine.name)
            if found is not None and found.image == self.held.image.name:
                tx.put_machine(attrs.evolve(found, image=None))

    def _drop(self, volumes: list[Volume]) -> None:
        for volume in volumes:
            with contextlib.suppress(EncompassError):
                holding.delete_volumes(self.ctx, [volume])

    def _power(self, machine: Machine) -> str:
        try:
            found = {m.name: m for m in self.ctx.platform(machine.platform).driver.discover()}
        except EncompassError as exc:
            return f"unknown ({exc})"
        return f"power {found[machine.name].power}" if machine.name in found else "gone"


def migrate_live(ctx: Context, clone: str, host: str) -> Image:
    """Move the machine running ``clone`` to another host of its platform, running (the
    platform's own migration: ESX vMotion), for platforms that declare ``migrate``."""
    with ctx.store.snapshot() as tx:
        image = tx.image(clone)
        name = claims.machine_claiming(tx, image)
        machine = tx.find_machine(name) if name else None
    if machine is None:
        raise Conflict(f"cannot migrate clone '{clone}': it is not deployed")
    driver = ctx.platform(machine.platform).driver
    check_capability(driver, "migrate", "move a running machine to another host; migrate the "
                     f"clone to another machine instead: encompass migrate {clone} MACHINE")
    with holding.hold(ctx, clone, "migrate") as held:
        moved = driver.migrate(machine, held.image, {"host": host})
        with ctx.store.transaction() as tx:
            tx.put_machine(attrs.evolve(moved, image=clone))
        held.message = f"machine '{machine.name}' moved live to host '{host}'"
        held.details = {"machine": machine.name, "platform": machine.platform, "host": host}
    return held.result
