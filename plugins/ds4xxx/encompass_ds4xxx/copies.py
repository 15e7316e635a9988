"""VolumeCopy as a job of the subsystem: waited for (its percent complete polled), and found
again by its target's label when the process that started it died."""

from __future__ import annotations

import time

from encompass_core.contracts import CloneProgress, JobStatus
from encompass_core.errors import DriverError

from .profile import Profile, parse_copies
from .smcli import Smcli, SmcliError, quote

_STATES = {"In progress": "running", "Completed": "done"}


def wait(smcli: Smcli, source: str, target: str, capacity: int, progress: CloneProgress,
         poll_interval: float, timeout: float) -> None:
    """Poll ``show volumeCopy target [...]`` until the copy completes, reporting its progress in
    bytes; a copy stopped, failed, gone or past ``timeout`` seconds is a :class:`DriverError`."""
    pool = smcli.pool
    deadline = time.monotonic() + timeout
    reported = 0
    while True:
        pairs = parse_copies(smcli.run(f"show volumeCopy target [{quote(target)}];"))
        if not pairs:
            raise DriverError(f"pool '{pool}': the VolumeCopy of {source} to {target} is gone "
                              "from the subsystem (stopped by someone else?)")
        pair = pairs[0]
        done = capacity if pair.status == "Completed" else capacity * pair.percent // 100
        if done > reported:
            progress.advance(done - reported)
            reported = done
        if pair.status == "Completed":
            return
        if pair.status != "In progress":
            raise DriverError(f"pool '{pool}': the VolumeCopy of {source} to {target} "
                              f"ended '{pair.status}' at {pair.percent}%")
        if time.monotonic() > deadline:
            raise DriverError(f"pool '{pool}': the VolumeCopy of {source} to {target} did not "
                              f"finish in {timeout:g} s (at {pair.percent}%); raise "
                              f"[pools.{pool}] copy_timeout if it needs longer")
        time.sleep(poll_interval)


def status(smcli: Smcli, profile: Profile, target: str) -> JobStatus:
    """Where the VolumeCopy to ``target`` stands; a target gone, or in no copy pair any more,
    is ``failed`` (nothing left to stop)."""
    if target not in profile.drives:
        return JobStatus("failed", None, f"logical drive {target} is gone from pool '{smcli.pool}' "
                                         "(the copy was cancelled, or finished and renamed)")
    try:
        pairs = parse_copies(smcli.run(f"show volumeCopy target [{quote(target)}];"))
    except SmcliError:
        pairs = []
    if not pairs:
        return JobStatus("failed", None, f"logical drive {target} is in no volume copy")
    pair = pairs[0]
    return JobStatus(_STATES.get(pair.status, "failed"), float(pair.percent),
                     f"VolumeCopy {pair.source} -> {pair.target}: {pair.status}")
