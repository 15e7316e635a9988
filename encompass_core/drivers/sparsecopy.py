"""Copy a file keeping its holes: reflink when the filesystem can, else copy_file_range."""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable

FICLONE = 0x40049409  # _IOW(0x94, 9, int): share all extents (btrfs, xfs, ...)
_CHUNK = 64 << 20


def reflink(src_fd: int, dst_fd: int) -> bool:
    """Try to clone all of ``src_fd`` into ``dst_fd``; False when the filesystem cannot."""
    try:
        fcntl.ioctl(dst_fd, FICLONE, src_fd)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS):
            return False
        raise
    return True


def try_reflink(src: str, dst: str) -> bool:
    """Make ``dst`` a reflink of ``src`` if the filesystem can; False (and no ``dst``) if not."""
    src_fd = os.open(src, os.O_RDONLY)
    try:
        dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            shared = os.fstat(src_fd).st_size > 0 and reflink(src_fd, dst_fd)
        finally:
            os.close(dst_fd)
        if not shared:
            os.unlink(dst)
        return shared
    finally:
        os.close(src_fd)


def data_segments(fd: int, size: int):
    """Yield (offset, length) of the data regions of a file (the whole file if SEEK_DATA fails)."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole remains
                return
            yield offset, size - offset  # no SEEK_DATA support: copy everything
            return
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, end - start
        offset = end


def copy_sparse(src: str, dst: str, progress: Callable[[int], None] | None = None) -> str:
    """Copy ``src`` to a new file ``dst``, holes kept; return the method used."""
    src_fd = os.open(src, os.O_RDONLY)
    try:
        size = os.fstat(src_fd).st_size
        dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            if size and reflink(src_fd, dst_fd):
                if progress:
                    progress(size)
                return "reflink"
            for start, length in data_segments(src_fd, size):
                done = 0
                while done < length:
                    step = min(_CHUNK, length - done)
                    copied = _copy_range(src_fd, dst_fd, start + done, step)
                    if copied == 0:
                        raise OSError(errno.EIO, f"{src} ended early while copying")
                    done += copied
                    if progress:
                        progress(copied)
            os.ftruncate(dst_fd, size)
            os.fsync(dst_fd)
        except BaseException:
            os.close(dst_fd)
            os.unlink(dst)
            raise
        os.close(dst_fd)
    finally:
        os.close(src_fd)
    return "copy_file_range"


def _copy_range(src_fd: int, dst_fd: int, offset: int, length: int) -> int:
    try:
        return os.copy_file_range(src_fd, dst_fd, length, offset, offset)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            raise
    data = os.pread(src_fd, length, offset)
    return os.pwrite(dst_fd, data, offset)
