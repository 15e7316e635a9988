"""The image lifecycle: which operations may start from which state, and why others may not."""

from __future__ import annotations

import pytest

from encompass_core import lifecycle
from encompass_core.errors import TransitionRefused


@pytest.mark.parametrize(
    ("operation", "state", "is_master", "transitional", "success"),
    [
        ("import", "new", True, "importing", "ready"),
        ("clone", "new", False, "cloning", "ready"),
        ("flatten", "ready", False, "cloning", "ready"),
        ("customize", "ready", False, "customizing", "ready"),
        ("uncustomize", "ready", False, "uncustomizing", "ready"),
        ("deploy", "ready", False, "deploying", "deployed"),
        ("undeploy", "deployed", False, "undeploying", "ready"),
        ("undeploy", "error", False, "undeploying", "ready"),
        ("migrate", "deployed", False, "migrating", "deployed"),
        ("export", "ready", True, "exporting", None),
        ("export", "disabled", False, "exporting", None),
        ("delete", "ready", True, "deleting", None),
        ("delete", "disabled", False, "deleting", None),
        ("delete", "error", False, "deleting", None),
        ("rollback", "ready", False, "rebasing", "ready"),
        ("discard", "deployed", False, "rebasing", None),  # back to deployed: the old volumes only go
        ("retire", "disabled", True, "updating", None),
    ],
)
def test_legal_transitions_are_accepted(operation, state, is_master, transitional, success) -> None:
    op = lifecycle.check_start(operation, state, name="web01", is_master=is_master)
    assert (op.transitional, op.success) == (transitional, success)
    assert op.transitional in lifecycle.TRANSITIONAL


@pytest.mark.parametrize(
    ("operation", "state", "is_master", "because"),
    [
        ("customize", "ready", True, "masters are never customized"),
        ("deploy", "ready", True, "masters are never deployed"),
        ("import", "new", False, "only masters can be"),
        ("deploy", "cloning", False, "busy (cloning)"),
        ("customize", "deploying", False, "busy (deploying)"),
        ("delete", "deployed", False, "undeploy it first"),
        ("deploy", "disabled", False, "enable it first"),
        ("customize", "deployed", False, "undeploy it first"),
        ("retire", "ready", False, "only masters can be"),
        ("rollback", "deployed", False, "undeploy it first"),
    ],
)
def test_refused_transitions_say_why(operation, state, is_master, because) -> None:
    with pytest.raises(TransitionRefused) as refused:
        lifecycle.check_start(operation, state, name="web01", is_master=is_master)
    message = str(refused.value)
    assert "'web01'" in message and because in message


def test_a_busy_image_points_at_repair() -> None:
    with pytest.raises(TransitionRefused, match="encompass repair"):
        lifecycle.check_start("delete", "cloning", name="web01", is_master=False)


def test_refusing_an_image_in_error_shows_the_recorded_reason() -> None:
    with pytest.raises(TransitionRefused, match="disk full"):
        lifecycle.check_start("deploy", "error", name="web01", is_master=False, error="clone: disk full")


def test_direct_changes_between_stable_states() -> None:
    assert lifecycle.check_direct("ready", "disabled", name="web01") == "disable"
    assert lifecycle.check_direct("disabled", "ready", name="web01") == "enable"
    with pytest.raises(TransitionRefused, match="busy"):
        lifecycle.check_direct("cloning", "ready", name="web01")
    with pytest.raises(TransitionRefused, match="'deployed' to 'disabled'"):
        lifecycle.check_direct("deployed", "disabled", name="web01")


def test_a_crashed_holder_leaves_error_except_for_read_only_operations() -> None:
    assert lifecycle.crash_state("cloning", "new") == "error"
    assert lifecycle.crash_state("deploying", "ready") == "error"
    assert lifecycle.crash_state("exporting", "disabled") == "disabled"
    assert lifecycle.crash_state("rebasing", "deployed") == "deployed"  # a discard's: repair finishes it


def test_every_operation_goes_between_known_states() -> None:
    for op in lifecycle.OPERATIONS.values():
        assert op.transitional in lifecycle.TRANSITIONAL
        assert op.success in (None, *lifecycle.STABLE)
        assert all(s in (lifecycle.NEW, *lifecycle.STABLE) for s in op.sources)
