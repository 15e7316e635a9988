"""Files that have no name until they are whole: a killed process leaves nothing behind.

Linux's ``O_TMPFILE`` makes a file in a folder without a name; it vanishes with the last
descriptor, so an export killed mid-way leaves no half-written OVA and no work file, whatever
kills it. Helpers (``qemu-img``) reach it as ``/proc/PID/fd/N``. When it is whole,
:meth:`UnnamedFile.publish` gives it its name at once (linked under a temporary name, then
renamed over the target). Filesystems without ``O_TMPFILE`` get a hidden ``.partial`` file
instead, removed on the way out.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path


class UnnamedFile:
    """A new, unnamed file in ``folder``, open for reading and writing (a context manager)."""

    def __init__(self, folder: Path | str, hint: str = "work") -> None:
        self.folder = Path(folder)
        self.fallback: Path | None = None
        try:
            self.fd = os.open(self.folder, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
            self.fallback = self.folder / f".{hint}.{os.getpid()}.{id(self):x}.partial"
            self.fd = os.open(self.fallback, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)

    @property
    def path(self) -> str:
        """A path other processes of this user open the file by."""
        return str(self.fallback) if self.fallback else f"/proc/{os.getpid()}/fd/{self.fd}"

    @property
    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def publish(self, target: Path) -> None:
        """Flush the file to disk and give it the name ``target`` (replacing what was there)."""
        os.fsync(self.fd)
        target = Path(target)
        staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        if self.fallback is not None:
            os.replace(self.fallback, target)
            self.fallback = None
        else:
            directory = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(staging)
                # linkat with AT_SYMLINK_FOLLOW (a dst_dir_fd makes Python use linkat) names the
                # unnamed file; then one rename puts it in place.
                os.link(self.path, staging.name, dst_dir_fd=directory, follow_symlinks=True)
                os.replace(staging, target)
                os.fsync(directory)
            finally:
                os.close(directory)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        if self.fallback is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.fallback)
            self.fallback = None

    def __enter__(self) -> UnnamedFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
