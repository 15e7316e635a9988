"""Waiting for vSphere tasks: with a timeout, with progress, and with the fault's own message."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import attrs

from encompass_core.errors import DriverError

from .connection import Session, fault_message, pyvmomi

#: Called with the percentage a task reports.
TaskProgress = Callable[[int], None]


#: What is read of a task's info: not the whole of it, whose ``entity`` vcsim 0.24 sets to
#: objects pyvmomi refuses to read (a VirtualDiskManager is no ManagedEntity).
TASK_INFO = ("info.state", "info.progress", "info.error", "info.result")


@attrs.frozen
class TaskInfo:
    state: str
    progress: int | None = None
    error: Any = None
    result: Any = None


def task_state(session: Session, task: Any) -> TaskInfo:
    """The task's state, progress, error and result in one round trip (never pyvmomi's lazy
    reads)."""
    _, vmodl = pyvmomi()
    collector = vmodl.query.PropertyCollector
    spec = collector.FilterSpec(
        objectSet=[collector.ObjectSpec(obj=task, skip=False)],
        propSet=[collector.PropertySpec(type=type(task), pathSet=list(TASK_INFO))])
    result = session.content.propertyCollector.RetrievePropertiesEx([spec], collector.RetrieveOptions())
    props = {prop.name: prop.val for prop in result.objects[0].propSet or ()}
    return TaskInfo(str(props.get("info.state")), props.get("info.progress"), props.get("info.error"),
                    props.get("info.result"))


def wait(session: Session, task: Any, action: str, progress: TaskProgress | None = None,
         timeout: float | None = None) -> Any:
    """Wait for ``task`` (started to ``action``) and return its result. A task that fails is a
    :class:`DriverError` with the vSphere fault's message; one still running after ``timeout``
    seconds (default: the ``task_timeout`` setting) is cancelled and reported."""
    limit = timeout if timeout is not None else session.task_timeout
    deadline = time.monotonic() + limit
    delay = 0.02
    reported = -1
    while True:
        info = session.call(action, task_state, session, task)
        if info.state == "success":
            if progress is not None and reported < 100:
                progress(100)
            return info.result
        if info.state == "error":
            raise DriverError(f"{session.owner}: cannot {action}: {fault_message(info.error)}")
        if progress is not None and info.progress is not None and info.progress != reported:
            reported = info.progress
            progress(reported)
        if time.monotonic() >= deadline:
            cancel(session, task)
            raise DriverError(f"{session.owner}: gave up waiting to {action} after {limit:g} s "
                              f"(task {task._moId}; the task_timeout setting)")
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def cancel(session: Session, task: Any) -> None:
    """Ask the server to cancel a task; a task that cannot be cancelled is left to finish."""
    try:
        task.CancelTask()
    except Exception:  # noqa: BLE001,S110 - best effort: the timeout is what the user reads
        pass


def run(session: Session, action: str, start: Callable[[], Any],
        progress: TaskProgress | None = None) -> Any:
    """Start a task with ``start()`` and wait for it."""
    task = session.call(action, start)
    return wait(session, task, action, progress)
