"""Machines: discovery from platforms, hardware-profile matching, power."""

from __future__ import annotations

import attrs

from ..context import Context
from ..errors import Conflict, NotFound
from ..model import Image, Machine
from ..records import DiscoveryContext


def fit_problems(machine: Machine, image: Image, platform_kind: str | None = None) -> list[str]:
    """Why ``machine`` cannot run ``image`` (empty when it can), by the image's hardware profile."""
    need, have = image.hardware, machine.hardware
    problems = []
    if have.memory_mib < need.memory_mib:
        problems.append(f"has {have.memory_mib} MiB, the image needs {need.memory_mib} MiB")
    if have.cpus < need.cpus:
        problems.append(f"has {have.cpus} CPU(s), the image needs {need.cpus}")
    if need.arch and have.arch and have.arch != need.arch:
        problems.append(f"is {have.arch}, the image needs {need.arch}")
    if need.firmware and have.firmware and have.firmware != need.firmware:
        problems.append(f"boots {have.firmware}, the image needs {need.firmware}")
    if need.platforms:
        kinds = {machine.platform, platform_kind or "", machine.extra.get("driver", "")}
        if not kinds & set(need.platforms):
            problems.append(f"is on platform '{machine.platform}', the image allows only "
                            f"{', '.join(need.platforms)}")
    return problems


def machine(ctx: Context, name: str) -> Machine:
    """The stored machine ``name``."""
    with ctx.store.snapshot() as tx:
        found = tx.find_machine(name)
    if found is None:
        raise NotFound(f"no machine named '{name}' (see: encompass machine list; "
                       "encompass discover finds the platforms' machines)")
    return found


def forget(ctx: Context, name: str) -> Machine:
    """Remove machine ``name``'s record (a stale one ``encompass discover`` reported); refused
    while it claims an image, which ``encompass repair`` or ``undeploy`` settles first."""
    with ctx.store.transaction() as tx:
        found = tx.find_machine(name)
        if found is None:
            raise NotFound(f"no machine named '{name}' (see: encompass machine list)")
        claiming = [i.name for i in tx.images(machine=name)]
        if found.image or claiming:
            image = found.image or claiming[0]
            raise Conflict(f"cannot forget machine '{name}': it claims image '{image}'; undeploy it "
                           f"(encompass undeploy {image}) or let encompass repair settle the claim")
        tx.remove_machine(name)
    return found


def propose_platforms(ctx: Context, seeds: tuple[str, ...]) -> list[dict]:
    """Ask plugins to find platforms from ``seeds``; tables to add to ``encompass.toml``."""
    context = DiscoveryContext(seeds=tuple(seeds), config=ctx.config)
    proposals = []
    for answer in ctx.host.hook.encompass_discover_platforms(context=context):
        proposals.extend(answer or ())
    return proposals


def power(ctx: Context, name: str, action: str) -> Machine:
    """Power machine ``name`` on, off, or reset it."""
    if action not in ("on", "off", "reset"):
        raise Conflict(f"unknown power action '{action}': use on, off or reset")
    stored = machine(ctx, name)
    changed = ctx.platform(stored.platform).driver.power(stored, action)
    with ctx.store.transaction() as tx:
        tx.put_machine(attrs.evolve(changed, image=stored.image))
    return changed
