"""An ext filesystem is marked "not clean" on disk while Encompass writes into it, so a writer
killed mid-way is noticed by the next one, which repairs the filesystem before writing.

debugfs writes its changes without the journal, and the last of them (bitmaps, group
descriptors, the superblock and its checksum) when it ends: a process killed then leaves a
filesystem with wrong free counts or a bad superblock checksum, and writing more into it could
give one block to two files. So a writable open:

1. reads the state recorded in the superblock; when the last writer did not finish (state not
   "clean", errors recorded) or the superblock's checksum is wrong (an interrupted write of it),
   runs ``e2fsck -fy`` on the filesystem first, and refuses to write when e2fsck cannot repair it;
2. sets the state to "not clean" on disk (``ssv state 0``) before the session writes anything.

The session sets the state back to "clean" as its last request (:data:`CLEAN_AGAIN`);
libext2fs writes the primary superblock after everything else, so only a session that
finished leaves a clean filesystem behind.
"""

from __future__ import annotations

import os
import shutil
import struct

from encompass_core import rundir
from encompass_core.errors import DriverError

_EXT_MAGIC = 0xEF53
VALID_FS = 0x1  # s_state: unmounted cleanly
ERROR_FS = 0x2  # s_state: errors detected
CLEAN_AGAIN = "ssv state 1"  # the last request of a writable session
_CHECKSUM_RETRY = b"Checksum errors in superblock"  # debugfs, on stdout, then it opens anyway


def ext_superblock(image_path: str, offset: int = 0) -> tuple[int, int] | None:
    """``(incompat features, state)`` of the ext superblock at ``offset``, None if none is."""
    try:
        with open(image_path, "rb") as stream:
            stream.seek(offset + 1024)
            block = stream.read(1024)
    except OSError:
        return None
    if len(block) < 1024 or struct.unpack_from("<H", block, 56)[0] != _EXT_MAGIC:
        return None
    (incompat,) = struct.unpack_from("<I", block, 96)
    (state,) = struct.unpack_from("<H", block, 58)
    return incompat, state


def e2fsck_path() -> str | None:
    """The e2fsck executable (Debian installs it in /sbin), or None."""
    return shutil.which("e2fsck") or next(
        (path for path in ("/usr/sbin/e2fsck", "/sbin/e2fsck") if os.access(path, os.X_OK)), None
    )


def clean(state: int) -> bool:
    """Whether a superblock's ``s_state`` says the last writer finished without errors."""
    return bool(state & VALID_FS) and not state & ERROR_FS


def _mark_dirty(debugfs: str, device: str, label: str, timeout: float) -> bool:
    """Set the state to "not clean" on disk; False when the superblock checksum was wrong
    (debugfs wrote a good one back, but what else the interrupted writer left is unknown)."""
    done = rundir.run([debugfs, "-w", "-R", "ssv state 0", device], "debugfs", timeout,
                      "[openers.extfs] timeout")
    errors = [line for line in os.fsdecode(done.stderr).splitlines() if line.strip()
              and not line.startswith("debugfs ")]
    if done.returncode != 0 or errors:
        raise DriverError(f"cannot mark {label} as being written: "
                          f"{'; '.join(errors) or f'debugfs exited with status {done.returncode}'}")
    return _CHECKSUM_RETRY not in done.stdout


def _repair(device: str, label: str, timeout: float) -> None:
    e2fsck = e2fsck_path()
    if e2fsck is None:
        raise DriverError(f"{label} was left half-written by a process that was stopped; "
                          "install e2fsprogs (e2fsck) so it can be checked before writing")
    done = rundir.run([e2fsck, "-fy", device], "e2fsck", timeout, "[openers.extfs] timeout")
    if done.returncode >= 4:  # 1: errors corrected; 4 and up: errors left, or e2fsck failed
        last = [line for line in os.fsdecode(done.stdout + done.stderr).splitlines() if line.strip()]
        raise DriverError(
            f"{label} was left damaged by a process that was stopped, and e2fsck could not "
            f"repair it (exit status {done.returncode}: {last[-1] if last else 'no output'}); "
            "un-customize the clone or delete it"
        )


def prepare_for_writing(debugfs: str, device: str, image: tuple[str, int], label: str,
                        timeout: float) -> bool:
    """Make the filesystem at ``device`` (``image``: its file and offset) ready for a writable
    session (see the module docstring); True when e2fsck repaired what an earlier writer left."""
    superblock = ext_superblock(*image)
    if superblock is not None and clean(superblock[1]) and _mark_dirty(debugfs, device, label, timeout):
        return False
    _repair(device, label, timeout)
    _mark_dirty(debugfs, device, label, timeout)
    return True
