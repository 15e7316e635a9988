"""Discovery reconciled with the metadata: what the platforms and pools really hold, compared
with what the store says, by identity rather than by name.

Every machine and volume found or recorded ends up in one class (:data:`STATUSES`):

``matched``
    the same thing in the same place (a machine by UUID, serial or MAC; a volume by location);
``moved``
    the same identity in another place or under another name (a renamed domain, a machine whose
    MAC now shows on another platform, a LUN whose WWN has a new label);
``missing``
    recorded, and not found where it was recorded (the record is marked, never deleted);
``new``
    found, and unknown to the store;
``conflict``
    two records claim one thing, or the facts disagree with the records (a machine running an
    image other than the one recorded, a volume reading through something its lineage does not
    say); left to the administrator, with the command that resolves it;
``unreachable``
    a platform or pool that did not answer: nothing of it is marked missing.

:func:`reconcile` asks, compares (:mod:`.reconcile_machines`, :mod:`.reconcile_volumes`) and,
only when asked to, applies (:mod:`.reconcile_apply`). Applying is idempotent: a second run finds
everything matched or already marked, and changes nothing more.
"""

from __future__ import annotations

from typing import Any

import attrs

from ..context import Context
from ..errors import EncompassError, NotFound

STATUSES = ("matched", "moved", "missing", "new", "conflict", "unreachable")


@attrs.frozen
class Finding:
    """One line of the reconciliation report.

    ``subject``: ``machine``, ``volume``, ``platform`` or ``pool``; ``name``: the machine's name,
    ``IMAGE/volume N`` or the volume's location; ``source``: ``platform:NAME`` or ``pool:NAME``;
    ``why``: the heuristic that decided the class, in words; ``action``: what ``--apply`` does
    (or did), or for a conflict the command that resolves it.
    """

    status: str
    subject: str
    name: str
    source: str
    why: str
    action: str = ""


@attrs.frozen
class Entry:
    """A finding and what applying it means (a plan :mod:`.reconcile_apply` knows), if anything."""

    finding: Finding
    plan: tuple[Any, ...] | None = None


@attrs.frozen
class Answers:
    """What the asked platforms and pools said: their items, or why they could not be asked."""

    platforms: dict[str, Any]  # name -> list[Machine] | error text
    pools: dict[str, Any]  # name -> list[DiscoveredVolume] | error text


def ask(ctx: Context, platform: str | None = None, pool: str | None = None) -> Answers:
    """Ask the platforms and pools (all configured ones, or only those named) what they hold.

    One that fails to answer is recorded with its reason, unless it was the one asked for by
    name: then its error is raised (one line). A name not configured is refused.
    """
    platforms = [platform] if platform else ([] if pool else list(ctx.config.platforms))
    pools = [pool] if pool else ([] if platform else list(ctx.config.pools))
    for name, where, table in ((platform, ctx.config.platforms, "platforms"),
                               (pool, ctx.config.pools, "pools")):
        if name and name not in where:
            raise NotFound(f"no {table[:-1]} named '{name}' in {ctx.config.path} (configured: "
                           f"{', '.join(where) or 'none'}; add a [{table}.{name}] table)")
    answers = Answers({}, {})
    for names, found, ask_one, alone in (
            (platforms, answers.platforms, lambda n: ctx.platform(n).driver.discover(), not pool),
            (pools, answers.pools, lambda n: ctx.pool(n).driver.discover(), not platform)):
        for name in names:
            try:
                found[name] = ask_one(name)
            except EncompassError as exc:
                if alone and (platform or pool):
                    raise  # the one thing asked for: its error is the command's
                found[name] = str(exc)
    return answers


def compare(ctx: Context, answers: Answers) -> list[Entry]:
    """The report: every answer compared with the store (nothing is changed)."""
    from . import reconcile_machines, reconcile_volumes

    with ctx.store.snapshot() as tx:
        machines = tx.machines()
        # Reconciliation is about everything the store says: the one operation that reads it all.
        images = tx.images()
    entries = reconcile_machines.compare(answers.platforms, machines, images,
                                         configured=set(ctx.config.platforms))
    entries += reconcile_volumes.compare(answers.pools, images)
    return entries


def reconcile(ctx: Context, platform: str | None = None, pool: str | None = None,
              apply: bool = False) -> list[Finding]:
    """Ask, compare and (with ``apply``) bring the store in line with what was found."""
    entries = compare(ctx, ask(ctx, platform, pool))
    if not apply:
        return [entry.finding for entry in entries]
    from .reconcile_apply import apply_all

    return apply_all(ctx, entries)
