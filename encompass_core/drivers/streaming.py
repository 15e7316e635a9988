"""The core's copy of a volume between two pools that share no native clone: a stream.

The source pool exposes its volume on the utility server (a file, a block device of a mapped LUN,
a file on a mounted export, or a URL QEMU reads: ``iscsi://``, ``nfs://``); the target pool writes
a new volume from it (:meth:`StorageDriver.write_volume`), calling :func:`stream_raw` or
:func:`convert` here. Sparse regions stay sparse: only the data regions of the source are read
(``SEEK_DATA``/``SEEK_HOLE``), and blocks of zeros inside them are skipped too, so a target
file keeps its holes (and a thin LUN stays thin). Progress is reported in bytes as the copy goes.
"""

from __future__ import annotations

import errno
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from ..errors import DriverError
from . import qemuimg

#: Bytes read and written at once: small enough for lively progress, large enough to be fast.
CHUNK = 4 << 20
#: Chunks read and written at once (reads release the GIL; a network source overlaps them).
READERS = 4
#: Zero runs shorter than this inside a data region are written (a hole per 4 KiB costs more).
ZERO_BLOCK = 64 << 10
_ZEROS = bytes(CHUNK)
_ZERO_BLOCK = bytes(ZERO_BLOCK)

Progress = Callable[[int], None] | None


def is_url(path: str) -> bool:
    """Whether an exposed volume is a URL (``iscsi://...``) rather than a path on this host."""
    return "://" in path


def data_regions(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """(offset, length) of each data region of ``fd`` up to ``size``; the whole range when the
    file (a block device, an old filesystem) cannot tell data from holes."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # nothing but a hole up to the end
                return
            yield offset, size - offset
            return
        if start >= size:
            return
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        yield start, end - start
        offset = end


def stream_raw(source: str, target_fd: int, size: int, progress: Progress = None) -> int:
    """Copy ``size`` bytes of the raw volume at ``source`` (a file or a block device) into
    ``target_fd`` (a new, empty file, or a device already zeroed), skipping holes and zero blocks.

    Up to :data:`READERS` chunks are read and written at once: a source reached over the network
    (a FUSE view of an ``nfs://`` file, a LUN) answers each read after a round trip, and reads in
    flight together overlap them. ``progress(n)`` is called after every chunk, in order, with the
    bytes it covered (holes count, so the sum reaches ``size``). Returns the bytes actually
    written. The target is extended to ``size`` and flushed to disk before this returns; an
    OSError (a full target, a vanished source) is raised as it is, for the caller to remove what
    it wrote.
    """
    written = 0
    reported = 0
    src_fd = os.open(source, os.O_RDONLY)

    def copy_chunk(offset: int, length: int) -> int:
        chunk = os.pread(src_fd, length, offset)
        while len(chunk) < length:  # a short read (a FUSE view may answer one): read on
            more = os.pread(src_fd, length - len(chunk), offset + len(chunk))
            if not more:
                raise OSError(errno.EIO, f"{source} ended at byte {offset + len(chunk)}, before {size}")
            chunk += more
        return _write_nonzero(target_fd, chunk, offset)

    try:
        with ThreadPoolExecutor(READERS, thread_name_prefix="stream") as pool:
            pending: deque = deque()
            for offset, length in _chunks(data_regions(src_fd, size)):
                pending.append((offset + length, pool.submit(copy_chunk, offset, length)))
                while len(pending) > READERS or (pending and pending[0][1].done()):
                    end, future = pending.popleft()
                    written += future.result()
                    if progress:
                        progress(end - reported)  # the hole before the chunk is done too
                    reported = end
            while pending:
                end, future = pending.popleft()
                written += future.result()
                if progress:
                    progress(end - reported)
                reported = end
        if progress and size > reported:
            progress(size - reported)
        if os.fstat(target_fd).st_size < size:
            os.ftruncate(target_fd, size)
        os.fsync(target_fd)
    finally:
        os.close(src_fd)
    return written


def _chunks(regions: Iterator[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """The data regions cut into pieces of at most :data:`CHUNK` bytes."""
    for start, length in regions:
        for offset in range(start, start + length, CHUNK):
            yield offset, min(CHUNK, start + length - offset)


def _write_nonzero(fd: int, chunk: bytes, offset: int) -> int:
    """Write the blocks of ``chunk`` that hold anything but zeros; return the bytes written."""
    # bytes == bytes is a memcmp; comparing memoryviews is item by item, 100 times slower.
    if len(chunk) == CHUNK and chunk == _ZEROS:
        return 0
    written = 0
    view = memoryview(chunk)
    run_start = None  # start of a run of non-zero blocks not yet written
    for block in range(0, len(chunk), ZERO_BLOCK):
        piece = chunk[block:block + ZERO_BLOCK]
        if piece == _ZERO_BLOCK[:len(piece)]:
            if run_start is not None:
                written += _pwrite_all(fd, view[run_start:block], offset + run_start)
                run_start = None
        elif run_start is None:
            run_start = block
    if run_start is not None:
        written += _pwrite_all(fd, view[run_start:], offset + run_start)
    return written


def _pwrite_all(fd: int, data: memoryview, offset: int) -> int:
    done = 0
    while done < len(data):
        done += os.pwrite(fd, data[done:], offset + done)
    return done


def convert(source: str, source_format: str, target: str, target_format: str, size: int,
            progress: Progress = None, timeout: float = 3600, setting: str | None = None) -> None:
    """Copy a volume QEMU must read (a qcow2 chain, an ``iscsi://`` or ``nfs://`` URL) into the
    file ``target`` with ``qemu-img convert``, which reads through backing chains and keeps
    zeros as holes. Progress comes as one step at the end."""
    try:
        qemuimg.qemu_img("convert", "-q", "-f", source_format, "-O", target_format, source, target,
                         timeout=timeout, setting=setting)
    except DriverError as exc:
        raise DriverError(f"cannot copy {source}: {exc}") from exc
    if progress:
        progress(size)
