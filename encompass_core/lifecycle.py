"""Image states and the only legal transitions between them, as data.

Stable states are where an image rests. Transitional states are held while an operation
works on the image and act as its lock: the store records which process holds them
(:class:`encompass_core.model.Owner`), so an operation that died is found and repaired
(``encompass repair``) instead of leaving the image stuck.
"""

from __future__ import annotations

import attrs

from .errors import TransitionRefused

STABLE = ("ready", "deployed", "disabled", "error")
TRANSITIONAL = (
    "importing",
    "cloning",
    "customizing",
    "uncustomizing",
    "deploying",
    "undeploying",
    "migrating",
    "exporting",
    "deleting",
    "updating",
    "rebasing",
)
STATES = STABLE + TRANSITIONAL
NEW = "new"  # the pseudo-state of an image that does not exist yet


@attrs.frozen
class Operation:
    """An operation's path through the lifecycle: from where, through what, to where."""

    name: str
    sources: tuple[str, ...]
    transitional: str
    success: str | None  # None: the image is gone afterwards (delete)
    masters: bool = True  # may a master go through it?
    clones: bool = True
    on_crash: str = "error"  # where a crashed holder leaves the image


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("import", (NEW,), "importing", "ready", clones=False),
        Operation("clone", (NEW,), "cloning", "ready", masters=False),
        Operation("flatten", ("ready",), "cloning", "ready", masters=False),
        # From "error" too: customizing again (or un-customizing) is how a failed one is retried.
        Operation("customize", ("ready", "error"), "customizing", "ready", masters=False),
        Operation("uncustomize", ("ready", "error"), "uncustomizing", "ready", masters=False),
        Operation("deploy", ("ready",), "deploying", "deployed", masters=False),
        Operation("undeploy", ("deployed", "error"), "undeploying", "ready", masters=False),
        Operation("migrate", ("deployed",), "migrating", "deployed", masters=False),
        Operation("export", ("ready", "disabled"), "exporting", None, on_crash="previous"),
        Operation("delete", ("ready", "disabled", "error"), "deleting", None),
        # A master's new version, a clone rebuilt on another version: the image's record is
        # changed only at the end, so one killed half-way is left as it was.
        Operation("update", ("ready",), "updating", "ready", clones=False, on_crash="previous"),
        Operation("rebase", ("ready",), "rebasing", "ready", masters=False, on_crash="previous"),
        # Removing what a rebase kept or replaced, a master's old version: the record is written
        # first, naming the volumes being removed, so repair finishes the removal.
        Operation("rollback", ("ready",), "rebasing", "ready", masters=False, on_crash="previous"),
        Operation("discard", ("ready", "deployed", "disabled", "error"), "rebasing", None,
                  masters=False, on_crash="previous"),
        Operation("retire", ("ready", "disabled"), "updating", None, clones=False, on_crash="previous"),
    )
}

# Direct changes between stable states, outside any operation.
DIRECT: dict[tuple[str, str], str] = {
    ("ready", "disabled"): "disable",
    ("disabled", "ready"): "enable",
    ("error", "ready"): "mark-ready",
}

_REASONS = {
    "deployed": "it is deployed on a machine; undeploy it first (encompass undeploy {name})",
    "disabled": "it is disabled; enable it first (encompass image enable {name})",
    "error": "it is in state 'error' ({error}); see encompass image show {name}",
}


def operation(name: str) -> Operation:
    """The :class:`Operation` called ``name`` (a programming error if unknown)."""
    return OPERATIONS[name]


def check_start(
    op_name: str,
    state: str,
    *,
    name: str,
    is_master: bool,
    error: str | None = None,
) -> Operation:
    """Check that ``op_name`` may start on an image in ``state``; say why not otherwise.

    Returns the operation, whose ``transitional`` state the caller then sets.
    """
    op = OPERATIONS[op_name]
    what = "master" if is_master else "clone"
    if is_master and not op.masters:
        hint = " (clone it first: encompass clone {name} NEW_NAME)" if op_name != "clone" else ""
        raise TransitionRefused(
            f"cannot {op_name} master '{name}': masters are never "
            f"{op_name}{'d' if op_name.endswith('e') else 'ed'} directly"
            + hint.format(name=name)
        )
    if not is_master and not op.clones:
        raise TransitionRefused(f"cannot {op_name} clone '{name}': only masters can be")
    if state in op.sources:
        return op
    if state in TRANSITIONAL:
        raise TransitionRefused(
            f"cannot {op_name} {what} '{name}': it is busy ({state}); wait for that operation, "
            f"or if it died run: encompass repair"
        )
    reason = _REASONS.get(state, f"it is in state '{state}'")
    allowed = ", ".join(op.sources)
    raise TransitionRefused(
        f"cannot {op_name} {what} '{name}': "
        + reason.format(name=name, error=error or "no reason recorded")
        + f" ({op_name} needs state: {allowed})"
    )


def check_direct(state: str, target: str, *, name: str) -> str:
    """Check a direct stable-to-stable change; return its name or say why it is refused."""
    change = DIRECT.get((state, target))
    if change is None:
        raise TransitionRefused(
            f"image '{name}' cannot go from '{state}' to '{target}' directly"
            + (f"; it is busy ({state})" if state in TRANSITIONAL else "")
        )
    return change


def crash_state(transitional: str, previous: str) -> str:
    """Where ``encompass repair`` leaves an image whose holder of ``transitional`` died."""
    for op in OPERATIONS.values():
        if op.transitional == transitional:
            return previous if op.on_crash == "previous" else op.on_crash
    return "error"
