"""What the simulated controllers do to tgt: one iSCSI target per host, bound to the host's
initiator names; a LUN mapping is a logical unit of that target backed by the drive's file.

tgt keeps LUN 0 of every target for its own controller device, so SMcli's LUN ``n`` is served
as iSCSI LUN ``n + 1`` (:data:`LUN_OFFSET`).
"""

from __future__ import annotations

import subprocess

LUN_OFFSET = 1


class TgtError(Exception):
    """tgtadm refused or failed (the message is tgtadm's)."""


class Tgt:
    """tgtadm against one tgtd (its control socket number ``-C``)."""

    def __init__(self, control: int) -> None:
        self.control = control

    def _run(self, *args: str) -> None:
        command = ["tgtadm", "-C", str(self.control), "--lld", "iscsi", *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise TgtError(f"tgtadm: {error}") from error
        if done.returncode != 0:
            raise TgtError((done.stderr or done.stdout).strip() or f"tgtadm exit {done.returncode}")

    def new_target(self, tid: int, name: str) -> None:
        self._run("--op", "new", "--mode", "target", "--tid", str(tid), "-T", name)

    def delete_target(self, tid: int) -> None:
        self._run("--op", "delete", "--mode", "target", "--tid", str(tid), "--force")

    def bind(self, tid: int, initiator: str) -> None:
        self._run("--op", "bind", "--mode", "target", "--tid", str(tid), "--initiator-name", initiator)

    def unbind(self, tid: int, initiator: str) -> None:
        self._run("--op", "unbind", "--mode", "target", "--tid", str(tid), "--initiator-name", initiator)

    def new_lun(self, tid: int, lun: int, path: str, serial: str) -> None:
        """Serve ``path`` as SMcli LUN ``lun`` of target ``tid``, with the drive's serial."""
        tgt_lun = str(lun + LUN_OFFSET)
        self._run("--op", "new", "--mode", "logicalunit", "--tid", str(tid), "--lun", tgt_lun,
                  "-b", path)
        try:
            self._run("--op", "update", "--mode", "logicalunit", "--tid", str(tid), "--lun", tgt_lun,
                      "--params", f"vendor_id=IBM,product_id=1814 FAStT,scsi_sn={serial[-16:]}")
        except TgtError:
            self.delete_lun(tid, lun)
            raise

    def delete_lun(self, tid: int, lun: int) -> None:
        self._run("--op", "delete", "--mode", "logicalunit", "--tid", str(tid),
                  "--lun", str(lun + LUN_OFFSET))
