"""Where a clone ran, read from its history (``image show``): a module of its own, because
the deploy operation it describes imports the drivers' contract and the customization
machinery, which a listing command should not pay for at start-up."""

from __future__ import annotations

from ..context import Context


def where_it_ran(ctx: Context, clone: str) -> list[tuple[str, str, str]]:
    """The machines ``clone`` was deployed or migrated on, from its history: (time, machine,
    platform), oldest first."""
    with ctx.store.snapshot() as tx:
        events = tx.events(clone)
    return [(e.time, e.details["machine"], str(e.details.get("platform", "")))
            for e in events if e.operation in ("deploy", "migrate") and e.details.get("machine")
            and e.to_state == "deployed"]
