"""Who holds an image in a transitional state: this process, on this host, since when."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from ..model import Owner, now


def process_start_time(pid: int) -> float | None:
    """The start time of process ``pid`` (clock ticks since boot), None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return float(fields[19])


def host_identity() -> str:
    """The name this utility server records in owners: ``$ENCOMPASS_HOST`` when set (two
    utility servers on one machine, in tests), else the host name."""
    return os.environ.get("ENCOMPASS_HOST") or socket.gethostname()


def current_owner(operation: str, previous_state: str) -> Owner:
    """An :class:`Owner` record for this process."""
    pid = os.getpid()
    return Owner(
        pid=pid,
        host=host_identity(),
        started=process_start_time(pid) or 0.0,
        operation=operation,
        since=now(),
        previous_state=previous_state,
    )


def owner_alive(owner: Owner) -> bool | None:
    """Whether the owning process still runs; None when it runs on another host (unknown)."""
    if owner.host != host_identity():
        return None
    started = process_start_time(owner.pid)
    return started is not None and (owner.started == 0.0 or started == owner.started)
