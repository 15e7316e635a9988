"""Resource reassignment: a machine given other functionality, two machines exchanging theirs,
a virtual machine resized.

These are sequences of the deploy, undeploy and migrate operations (each with its own events);
what they add is the order, the checks before anything is touched, and putting things back
when a later step fails.
"""

from __future__ import annotations

import contextlib

import attrs

from ..context import Context
from ..contracts import check_capability
from ..errors import Conflict, EncompassError, InvalidInput, NotFound
from ..model import Event, HardwareProfile, Image, Machine
from . import claims, deploy, holding, migrate
from .machines import fit_problems


def _running(ctx: Context, machine_name: str) -> tuple[Machine, Image | None]:
    """The machine and the clone it runs (by its record), if any."""
    with ctx.store.snapshot() as tx:
        machine = tx.find_machine(machine_name)
        if machine is None:
            raise NotFound(f"no machine named '{machine_name}' (see: encompass machine list)")
        image = tx.find_image(machine.image) if machine.image else None
    return machine, image


def _where(ctx: Context, clone: str) -> tuple[Image, str | None]:
    with ctx.store.snapshot() as tx:
        image = tx.image(clone)
        return image, claims.machine_claiming(tx, image)


def _refuse_misfit(machine: Machine, image: Image, verb: str) -> None:
    problems = fit_problems(machine, image)
    if problems:
        raise Conflict(f"cannot {verb}: machine '{machine.name}' " + "; ".join(problems)
                       + f" (hardware profile of '{image.name}')")


def reassign(ctx: Context, machine_name: str, clone: str) -> Image:
    """Give machine ``machine_name`` clone ``clone``: undeploy what it runs, then deploy the
    clone there (migrated from its machine when it is deployed elsewhere). When the clone
    cannot start there, what the machine ran is deployed on it again."""
    machine, current = _running(ctx, machine_name)
    image, elsewhere = _where(ctx, clone)
    if current is not None and current.name == clone:
        raise Conflict(f"machine '{machine_name}' runs '{clone}' already")
    if image.state not in ("ready", "deployed"):
        raise Conflict(f"cannot reassign clone '{clone}': it is {image.state} (it needs ready or "
                       "deployed)")
    _refuse_misfit(attrs.evolve(machine, image=None), image, f"give '{clone}' to '{machine_name}'")
    if current is not None:
        deploy.undeploy(ctx, current.name)
    try:
        if elsewhere:
            return migrate.migrate(ctx, clone, machine_name)
        return deploy.deploy(ctx, clone, machine_name)
    except EncompassError as exc:
        if current is not None:
            with contextlib.suppress(EncompassError):
                deploy.deploy(ctx, current.name, machine_name)
                raise Conflict(f"{exc}; machine '{machine_name}' runs '{current.name}' again") from None
            raise Conflict(f"{exc}; '{current.name}' could not be deployed on '{machine_name}' again "
                           f"either: it is undeployed (encompass deploy {current.name} MACHINE)") from None
        raise


def swap(ctx: Context, machine_a: str, machine_b: str) -> tuple[Image | None, Image | None]:
    """Exchange what machines ``machine_a`` and ``machine_b`` run (one may run nothing)."""
    if machine_a == machine_b:
        raise InvalidInput("give two different machines")
    first, on_a = _running(ctx, machine_a)
    second, on_b = _running(ctx, machine_b)
    if on_a is None and on_b is None:
        raise Conflict(f"machines '{machine_a}' and '{machine_b}' run nothing: nothing to swap")
    for image, machine in ((on_a, second), (on_b, first)):
        if image is not None:
            _refuse_misfit(attrs.evolve(machine, image=None), image, f"swap '{machine_a}' and '{machine_b}'")
    if on_b is not None:
        deploy.undeploy(ctx, on_b.name)
    try:
        if on_a is not None:
            migrate.migrate(ctx, on_a.name, machine_b)
    except EncompassError as exc:
        if on_b is not None:
            with contextlib.suppress(EncompassError):
                deploy.deploy(ctx, on_b.name, machine_b)
                raise Conflict(f"{exc}; nothing was swapped: '{on_b.name}' runs on '{machine_b}' "
                               "again") from None
            raise Conflict(f"{exc}; '{on_b.name}' could not be deployed again on '{machine_b}': it "
                           f"is undeployed (encompass deploy {on_b.name} MACHINE)") from None
        raise
    if on_b is not None:
        try:
            deploy.deploy(ctx, on_b.name, machine_a)
        except EncompassError as exc:
            raise Conflict(f"'{on_a.name if on_a else 'nothing'}' now runs on '{machine_b}', and "
                           f"'{on_b.name}' could not be deployed on '{machine_a}': {exc}; it is "
                           f"undeployed (encompass deploy {on_b.name} MACHINE)") from None
    return _where(ctx, on_a.name)[0] if on_a else None, _where(ctx, on_b.name)[0] if on_b else None


def resize(ctx: Context, machine_name: str, memory_mib: int | None, cpus: int | None) -> Machine:
    """Change a virtual machine's memory and CPUs; never below what the image it runs needs."""
    if memory_mib is None and cpus is None:
        raise InvalidInput("say what to change: --memory SIZE and/or --cpus N")
    machine, image = _running(ctx, machine_name)
    driver = ctx.platform(machine.platform).driver
    check_capability(driver, "reconfigure", f"resize machine '{machine_name}'")
    wanted = attrs.evolve(machine.hardware, memory_mib=memory_mib or machine.hardware.memory_mib,
                          cpus=cpus or machine.hardware.cpus)
    if wanted.memory_mib < 16 or wanted.cpus < 1:
        raise InvalidInput(f"a machine needs at least 16 MiB and 1 CPU, not {wanted.memory_mib} MiB "
                           f"and {wanted.cpus}")
    if image is not None:
        need = image.hardware
        if wanted.memory_mib < need.memory_mib or wanted.cpus < need.cpus:
            raise Conflict(f"cannot resize machine '{machine_name}' to {wanted.memory_mib} MiB and "
                           f"{wanted.cpus} CPU(s): it runs '{image.name}', whose hardware profile "
                           f"needs {need.memory_mib} MiB and {need.cpus} CPU(s)")
    changed = driver.reconfigure(machine, HardwareProfile(
        memory_mib=wanted.memory_mib, cpus=wanted.cpus, arch=wanted.arch, firmware=wanted.firmware))
    events: list[Event] = []
    with ctx.store.transaction() as tx:
        stored = tx.find_machine(machine_name)
        tx.put_machine(attrs.evolve(changed, image=stored.image if stored else machine.image,
                                    extra={**machine.extra, **changed.extra}))
        current = tx.find_image(image.name) if image else None
        if current is not None:
            holding.record(ctx, tx, Event(
                image=current.name, kind="operation", operation="resize", from_state=current.state,
                to_state=current.state, message=f"machine '{machine_name}' resized to "
                f"{changed.hardware.memory_mib} MiB, {changed.hardware.cpus} CPU(s)",
                details={"machine": machine_name}), events)
    holding.announce(ctx, events)
    return changed
