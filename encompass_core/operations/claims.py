"""Claims: a machine that runs a clone, or may still run it, holds it against change.

A clone is *claimed* by machine M when its own record says so (``Image.machine``) or when M's
record names it (``Machine.image``). A deploy writes the two at different moments, and an
undeploy that could not reach the platform leaves both, whatever the image's state: so the
claim, not the state, decides. While any claim stands, no operation changes or deletes the
clone's volumes (a guest may be writing them); the claim ends only when the machine is known
to have let the clone go: ``encompass undeploy``, or ``encompass repair`` asking the platform
(:func:`reconcile`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import attrs

from .. import lifecycle
from ..context import Context
from ..errors import Conflict, EncompassError
from ..model import Event, Image, Machine
from ..store import Transaction
from . import holding

#: Operations that change or delete a clone's volumes, refused while a machine claims it.
#: (deploy checks for itself, through :func:`refuse`, as it may go on the claiming machine.)
CHANGING = frozenset({"customize", "uncustomize", "flatten", "delete", "rebase", "rollback"})


def claimed_by(tx: Transaction) -> dict[str, list[str]]:
    """Image name -> the machines whose records claim it (one read of the machines)."""
    claims: dict[str, list[str]] = {}
    for machine in tx.machines():
        if machine.image:
            claims.setdefault(machine.image, []).append(machine.name)
    return claims


def claimants(image: Image, claimed: Mapping[str, list[str]]) -> list[str]:
    """Every machine claiming ``image``: its own record's, then the machines' records'."""
    names = [image.machine] if image.machine else []
    return names + [m for m in claimed.get(image.name, ()) if m not in names]


def refuse(image: Image, op_name: str, claimed: Mapping[str, list[str]],
           allow: str | None = None) -> None:
    """Refuse ``op_name`` on a clone some machine (other than ``allow``) claims; say what to do."""
    others = [m for m in claimants(image, claimed) if m != allow]
    if not others:
        return
    raise Conflict(
        f"cannot {op_name} clone '{image.name}': machine '{others[0]}' runs it, or may still "
        f"(it was not seen letting it go). Undeploy it first (encompass undeploy {image.name}); "
        "if its platform could not be reached, run encompass repair once it is back"
    )


def check(tx: Transaction, image: Image, op_name: str,
          claimed: Mapping[str, list[str]] | None = None) -> None:
    """The claim check every operation of :data:`CHANGING` runs when it takes an image."""
    if op_name in CHANGING:
        refuse(image, op_name, claimed_by(tx) if claimed is None else claimed)


def machine_claiming(tx: Transaction, image: Image) -> str | None:
    """The machine ``image`` is deployed on, by its record or else by a machine's record."""
    found = claimants(image, claimed_by(tx))
    return found[0] if found else None


# -- repair: asking the platforms -------------------------------------------------------------

@attrs.frozen
class ClaimRepair:
    """A claim ``encompass repair`` looked at, what it found and what it does (or did)."""

    machine: str
    image: str
    finding: str
    action: str
    kind: str = "claim"


class _Platforms:
    """What each platform says it has, asked once per repair; an unreachable one says why."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.answers: dict[str, dict[str, Machine] | str] = {}

    def ask(self, platform: str) -> dict[str, Machine] | str:
        if platform not in self.answers:
            try:
                found = self.ctx.platform(platform).driver.discover()
                self.answers[platform] = {m.name: m for m in found}
            except EncompassError as exc:
                self.answers[platform] = str(exc)
        return self.answers[platform]


def _runs(found: Machine, image: Image) -> bool:
    """Whether the platform's picture of a machine shows it using ``image``'s volumes. A
    machine that names no disks (a blade) and is not known to be off may: count it as running."""
    if found.disks:
        return bool({v.location for v in image.volumes} & set(found.disks))
    return found.power != "off"


def reconcile(ctx: Context, dry_run: bool = False) -> list[ClaimRepair]:
    """Check every claim that is not a plain, consistent deployment with its platform.

    A machine record claiming a missing image is released. Otherwise the platform is asked
    (when reachable): a machine still using the clone makes it ``deployed`` there again (so
    ``encompass undeploy`` can end it); one that no longer does releases the claim, and a clone
    left in ``error`` or ``deployed`` by it goes back to ``ready``.
    """
    with ctx.store.snapshot() as tx:
        machines = {m.name: m for m in tx.machines()}
        images = {i.name: i for i in tx.images()}
    pairs = {(m.name, m.image) for m in machines.values() if m.image}
    pairs |= {(i.machine, i.name) for i in images.values() if i.machine}
    platforms = _Platforms(ctx)
    plans: list[tuple[ClaimRepair, str]] = []  # (report, what to do: release | adopt | "")
    for machine_name, image_name in sorted(pairs):
        machine = machines.get(machine_name)
        image = images.get(image_name)
        if image is None:
            plans.append((ClaimRepair(machine_name, image_name, "claims an image that does not exist",
                                      "claim released"), "release"))
            continue
        if image.state in lifecycle.TRANSITIONAL:
            continue  # an operation holds it; repair of stuck images comes first
        # A machine discovery marked missing is asked about again, even if the records agree.
        consistent = image.state == "deployed" and image.machine == machine_name and (
            machine is not None and machine.image == image_name and not machine.missing)
        if consistent:
            continue
        plans.append(_verdict(machine_name, machine, image, platforms))
    if dry_run:
        return [report for report, _ in plans]
    done = []
    for report, plan in plans:
        done.append(_apply(ctx, report, plan) if plan else report)
    return done


def _verdict(name: str, machine: Machine | None, image: Image,
             platforms: _Platforms) -> tuple[ClaimRepair, str]:
    candidates = [machine.platform] if machine else list(platforms.ctx.config.platforms)
    unreachable = []
    for platform in candidates:
        if platform not in platforms.ctx.config.platforms:
            unreachable.append(f"platform '{platform}' is not configured")
            continue
        answer = platforms.ask(platform)
        if isinstance(answer, str):
            unreachable.append(answer)
            continue
        found = answer.get(name)
        if found is None:
            continue
        if _runs(found, image):
            if image.machine not in (None, name):
                return ClaimRepair(name, image.name, f"runs it, but the image names machine "
                                   f"'{image.machine}'", "left alone: undeploy it by hand"), ""
            return ClaimRepair(name, image.name, f"platform '{platform}' says it still uses it "
                               f"(power {found.power})", "-> deployed (end it: encompass undeploy "
                               f"{image.name})"), "adopt"
        return ClaimRepair(name, image.name, f"platform '{platform}' says it no longer uses it",
                           "claim released" + (" -> ready" if _back_to_ready(image, name) else "")
                           ), "release"
    if unreachable:
        return ClaimRepair(name, image.name, "; ".join(unreachable),
                           "left alone: run encompass repair again once the platform is back"), ""
    return ClaimRepair(name, image.name, "no platform has that machine any more",
                       "claim released" + (" -> ready" if _back_to_ready(image, name) else "")), "release"


def _back_to_ready(image: Image, machine: str) -> bool:
    # Only a clone that claimed this machine itself was left in error/deployed by the claim
    # (other operations are refused while it is claimed), or one whose deploy was killed
    # before it said so (deploy changes no volume); any other error is its own.
    if image.machine == machine:
        return image.state in ("error", "deployed")
    return image.state == "error" and (image.error or "").startswith("deploy interrupted")


def _apply(ctx: Context, report: ClaimRepair, plan: str) -> ClaimRepair:
    events: list[Event] = []
    if plan == "release":
        _detach(ctx, report)
    with ctx.store.transaction() as tx:
        machine = tx.find_machine(report.machine)
        image = tx.find_image(report.image)
        if image is not None and image.state in lifecycle.TRANSITIONAL:
            return attrs.evolve(report, action="left alone: an operation took the image meanwhile")
        if plan == "adopt" and image is not None:
            if machine is not None:
                tx.put_machine(attrs.evolve(machine, image=image.name))
            target = "deployed"
            changed = attrs.evolve(image, state=target, machine=report.machine, error=None)
        else:
            if machine is not None and machine.image == report.image:
                tx.put_machine(attrs.evolve(machine, image=None))
            if image is None or image.machine not in (None, report.machine):
                return attrs.evolve(report, action=f"{report.action} (done)")
            target = "ready" if _back_to_ready(image, report.machine) else image.state
            changed = attrs.evolve(image, state=target, machine=None,
                                   error=None if target == "ready" else image.error)
        if changed != image:
            holding.record(ctx, tx, holding.transition_event(
                image, target, f"repaired: machine '{report.machine}' {report.finding}",
                "repair", kind="repair"), events)
            tx.put_image(changed)
    holding.announce(ctx, events)
    return attrs.evolve(report, action=f"{report.action} (done)")


def _detach(ctx: Context, report: ClaimRepair) -> None:
    """What a successful undeploy would have done on the storage side (best effort: the
    machine no longer uses the volumes)."""
    with ctx.store.snapshot() as tx:
        machine = tx.find_machine(report.machine)
        image = tx.find_image(report.image)
    if image is None or image.machine != report.machine:
        return
    for volume in image.volumes:
        with contextlib.suppress(EncompassError):
            ctx.pool(volume.pool).driver.detach(volume, machine)
