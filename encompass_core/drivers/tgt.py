"""A local pool's volumes served over iSCSI by tgt (the Linux SCSI target framework, ``tgtd``).

A small lab without a SAN boots its physical machines (and VMs) from clones kept on the utility
server: ``[pools.NAME] export = "iscsi"``. Attaching a volume to a machine makes (or reuses) one
iSCSI target per machine and pool, ``IQN_PREFIX:POOL.MACHINE``, bound to the machine's initiator
name alone, with the volume's file as a logical unit; detaching removes the unit, and the target
with its last unit. Nothing is kept beside tgt's own state: ``tgtadm --op show`` says which unit
serves which file, so detach finds it again (after a crash too).

tgtd is run by the administrator (or a test fixture): ``tgtd --iscsi portal=ADDR:PORT -C N``.
The pool names its control socket number (``tgt_control = N``: tgtadm's ``-C``) and the portal
machines connect to (``iscsi_portal``). tgt reserves LUN 0 of every target for its controller:
the contract's LUN ``n`` (the boot volume is 0) is tgt's LUN ``n + 1``, and the attachment says
the LUN machines really see.
"""

from __future__ import annotations

import re
import subprocess

import attrs

from ..errors import Conflict, DriverError, NotSupported

#: How long one tgtadm request may take: it is a local socket.
TGTADM_TIMEOUT = 30.0
_IQN_UNSAFE = re.compile(r"[^a-z0-9.-]+")


@attrs.frozen
class Target:
    """One tgt target: its id, name, data units (LUN → backing file) and bound initiators."""

    tid: int
    name: str
    luns: dict[int, str]
    initiators: tuple[str, ...]


class TgtExport:
    """Targets and units of one tgtd, for one pool."""

    def __init__(self, pool: str, control: int, portal: str, iqn_prefix: str) -> None:
        self.pool = pool
        self.control = control
        self.portal = portal
        self.iqn_prefix = iqn_prefix

    # -- names ------------------------------------------------------------------------------
    def target_name(self, machine: str) -> str:
        """The target a machine reaches this pool's volumes through."""
        return f"{self.iqn_prefix}:{_iqn_part(self.pool)}.{_iqn_part(machine)}"

    def default_initiator(self, machine: str) -> str:
        """The initiator name of a machine that declares none (a VM the platform makes): the
        platform gives it to the machine's iSCSI client (libvirt's ``<initiator>``)."""
        return f"{self.iqn_prefix}:initiator.{_iqn_part(machine)}"

    # -- what tgtd holds --------------------------------------------------------------------
    def targets(self) -> dict[str, Target]:
        """Every target tgtd serves, by name."""
        return parse_show(self._tgtadm("--op", "show", "--mode", "target"))

    def attach(self, path: str, machine: str, initiator: str, lun: int | None,
               readonly: bool) -> tuple[str, int]:
        """Serve the file ``path`` to ``initiator`` on the machine's target; return the target
        name and the LUN. A file already served there keeps its unit (attach is idempotent)."""
        name = self.target_name(machine)
        targets = self.targets()
        for other in targets.values():
            if other.name != name and path in other.luns.values():
                raise Conflict(f"{path} is served over iSCSI to another machine already (target "
                               f"{other.name}); detach it there first")
        target = targets.get(name)
        made = target is None
        if made:
            tid = max((t.tid for t in targets.values()), default=0) + 1
            self._tgtadm("--op", "new", "--mode", "target", "--tid", str(tid), "-T", name)
            target = Target(tid, name, {}, ())
        try:
            for unit, served in target.luns.items():
                if served == path:
                    return name, unit
            wanted = (lun if lun is not None else len(target.luns)) + 1
            if wanted in target.luns:
                raise Conflict(f"LUN {wanted - 1} of machine '{machine}' on pool '{self.pool}' serves "
                               f"{target.luns[wanted]} already; detach that volume first")
            self._tgtadm("--op", "new", "--mode", "logicalunit", "--tid", str(target.tid),
                         "--lun", str(wanted), "-b", path)
            if readonly:
                self._tgtadm("--op", "update", "--mode", "logicalunit", "--tid", str(target.tid),
                             "--lun", str(wanted), "--params", "readonly=1")
            if initiator not in target.initiators:
                self._tgtadm("--op", "bind", "--mode", "target", "--tid", str(target.tid),
                             "--initiator-name", initiator)
        except BaseException:
            if made:  # a target of our own making, left empty: take it away again
                self._delete_target(target.tid)
            raise
        return name, wanted

    def detach(self, path: str, machine: str) -> None:
        """Stop serving ``path`` to the machine; its target goes with its last unit. A file
        not served is not an error."""
        target = self.targets().get(self.target_name(machine))
        if target is None:
            return
        for unit, served in target.luns.items():
            if served == path:
                self._tgtadm("--op", "delete", "--mode", "logicalunit", "--tid", str(target.tid),
                             "--lun", str(unit))
        if all(served == path for served in target.luns.values()):
            self._delete_target(target.tid)

    def _delete_target(self, tid: int) -> None:
        # --force: a machine still logged in (powered on) must not keep the target alive.
        self._tgtadm("--op", "delete", "--force", "--mode", "target", "--tid", str(tid))

    def _tgtadm(self, *args: str) -> str:
        command = ["tgtadm", "-C", str(self.control), "--lld", "iscsi", *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=TGTADM_TIMEOUT,
                                  stdin=subprocess.DEVNULL, check=False)
        except FileNotFoundError:
            raise NotSupported(f"pool '{self.pool}' exports over iSCSI, and tgtadm is not installed: "
                               "install the Debian package 'tgt'") from None
        except subprocess.TimeoutExpired:
            raise DriverError(f"tgtadm -C {self.control} did not answer in {TGTADM_TIMEOUT:g} s "
                              f"(pool '{self.pool}')") from None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            text = detail[-1].removeprefix("tgtadm: ") if detail else f"exit {done.returncode}"
            if "can't send" in text or "connect" in text or "No such file" in text:
                raise DriverError(
                    f"pool '{self.pool}' exports over iSCSI, and no tgtd answers on control socket "
                    f"{self.control}: start it (tgtd --iscsi portal={self.portal} -C {self.control}) "
                    f"or fix tgt_control in [pools.{self.pool}]")
            raise DriverError(f"tgtadm {' '.join(args[:4])} failed for pool '{self.pool}': {text}")
        return done.stdout


def parse_show(text: str) -> dict[str, Target]:
    """The targets in ``tgtadm --op show --mode target`` output, by name."""
    found: dict[str, Target] = {}
    tid, name, luns, initiators = None, "", {}, []
    lun = None
    section = ""

    def close() -> None:
        if tid is not None:
            found[name] = Target(tid, name, dict(luns), tuple(initiators))

    for raw in text.splitlines():
        line = raw.strip()
        header = re.fullmatch(r"Target (\d+): (\S+)", raw)
        if header:
            close()
            tid, name, luns, initiators, lun, section = int(header[1]), header[2], {}, [], None, ""
            continue
        if line.endswith("information:"):
            section = line
            continue
        if section == "LUN information:":
            if line.startswith("LUN: "):
                lun = int(line.removeprefix("LUN: "))
            elif line.startswith("Backing store path: ") and lun:
                luns[lun] = line.removeprefix("Backing store path: ")
        elif section == "ACL information:" and line:
            initiators.append(line)
    close()
    return found


def _iqn_part(text: str) -> str:
    """Text made fit for an IQN (lowercase letters, digits, dots and dashes)."""
    return _IQN_UNSAFE.sub("-", text.lower()).strip("-") or "x"
