"""Machines: discovery from platforms, hardware-profile matching, power."""

from __future__ import annotations

import attrs

from ..context import Context
from ..errors import Conflict, EncompassError, NotFound
from ..model import Image, Machine, now
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


@attrs.frozen
class DiscoveryReport:
    """What one platform or pool answered."""

    source: str  # platform:NAME or pool:NAME
    found: int = 0
    new: tuple[str, ...] = ()
    error: str | None = None
    released: tuple[str, ...] = ()  # machines whose claim on a deleted image was dropped


def discover(ctx: Context, platform: str | None = None) -> list[DiscoveryReport]:
    """Ask every configured platform (or one) and pool what it has; record the machines found.

    A platform that cannot be reached is reported, and the others still answer.
    """
    reports = []
    names = [platform] if platform else list(ctx.config.platforms)
    for name in names:
        try:
            driver = ctx.platform(name).driver
            machines = driver.discover()
        except EncompassError as exc:
            if platform:
                raise
            reports.append(DiscoveryReport(f"platform:{name}", error=str(exc)))
            continue
        new, released = [], []
        with ctx.store.transaction() as tx:
            for found in machines:
                stored = tx.find_machine(found.name)
                if stored is None:
                    new.append(found.name)
                # What the platform says wins, but the deployed image is Encompass' own record;
                # a claim on an image deleted since is stale (nothing is left to protect).
                image = stored.image if stored else found.image
                if image and tx.find_image(image) is None:
                    released.append(found.name)
                    image = None
                tx.put_machine(attrs.evolve(found, image=image, discovered=now()))
        reports.append(DiscoveryReport(f"platform:{name}", len(machines), tuple(new),
                                       released=tuple(released)))
    if platform is None:
        for name in ctx.config.pools:
            try:
                volumes = ctx.pool(name).driver.discover()
            except EncompassError as exc:
                reports.append(DiscoveryReport(f"pool:{name}", error=str(exc)))
                continue
            reports.append(DiscoveryReport(f"pool:{name}", len(volumes)))
    return reports


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
