"""Hosts and host ports on the subsystem: found by their initiator names, made when missing."""

from __future__ import annotations

import contextlib

from encompass_core.errors import Conflict, DriverError, EncompassError

from . import labels
from .profile import Profile
from .smcli import Smcli, quote

MAX_LUN = 255


class HostMaker:
    """Finds or makes the host that owns a set of iSCSI initiator names."""

    def __init__(self, pool: str, smcli: Smcli, host_type: str) -> None:
        self.pool = pool
        self.smcli = smcli
        self.host_type = host_type

    def ensure(self, profile: Profile, label: str, initiators: list[str]) -> str:
        """The label of the host owning one of ``initiators``; else host ``label`` is made with
        them as its iSCSI host ports (all of it, or nothing)."""
        existing = profile.host_with_port(initiators)
        if existing is not None:
            return existing.label
        if label in profile.hosts:
            raise Conflict(f"pool '{self.pool}': host '{label}' exists on the subsystem with other host "
                           f"ports ({', '.join(profile.hosts[label].ports) or 'none'}), not "
                           f"{', '.join(initiators)}; add the port to it or rename one of them")
        commands = [f"create host userLabel={quote(label)} hostType={self.host_type};"]
        commands += [f"create hostPort identifier=\"{_identifier(self.pool, initiator)}\" "
                     f"userLabel={quote(labels.port_label(label, initiator))} host={quote(label)} "
                     "interfaceType=iSCSI;" for initiator in initiators]
        try:
            self.smcli.run(*commands)
        except BaseException:
            self.remove(label)
            raise
        return label

    def remove(self, label: str) -> None:
        """Delete a host this driver just made (its ports and mappings go with it)."""
        with contextlib.suppress(EncompassError):
            self.smcli.run(f"delete host [{quote(label)}];")

    def free_lun(self, profile: Profile, host: str, start: int = 0) -> int:
        used = profile.luns_of(host)
        for lun in range(start, MAX_LUN + 1):
            if lun not in used:
                return lun
        raise Conflict(f"pool '{self.pool}': host '{host}' has all {MAX_LUN + 1} LUNs mapped")


def _identifier(pool: str, initiator: str) -> str:
    # An iSCSI name holds no quotes or spaces; refuse rather than build a broken script.
    if not initiator or any(c in initiator for c in '"; []'):
        raise DriverError(f"pool '{pool}': {initiator!r} is not an iSCSI initiator name")
    return initiator
