"""The core's copy of a volume between two pools that share no native clone: a stream.

The source pool exposes its volume on the utility server (a file, a block device of a mapped LUN,
a file on a mounted export, or a URL QEMU reads: ``iscsi://``, ``nfs://``); the target pool writes
a new volume from it (:meth:`StorageDriver.write_volume`), calling :func:`stream_raw` or
:func:`convert` here. A source pool that reads its volumes better itself (libnfs) hands the
target a reader instead (:meth:`StorageDriver.open_reader`, :meth:`StorageDriver.write_stream`,
:func:`stream_reader`). Sparse regions stay sparse: only the data regions of the source are read
(``SEEK_DATA``/``SEEK_HOLE``), and blocks of zeros inside them are skipped too, so a target
file keeps its holes (and a thin LUN stays thin). Progress is reported in bytes as the copy goes.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from ..contracts.streams import VolumeReader
from ..errors import DriverError
from . import qemuimg

#: Bytes read and written at once: small enough for lively progress, large enough to be fast.
CHUNK = 4 << 20
#: Chunks read and written at once (reads release the GIL; a network source overlaps them).
READERS = 4
#: Zero runs shorter than this inside a data region are written (a hole per 4 KiB costs more).
ZERO_BLOCK = 64 << 10
_ZEROS = bytes(CHUNK)
SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writeback of dirty pages, do not wait

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

    Up to :data:`READERS` chunks are read at once: a source reached over the network (a LUN)
    answers each read after a round trip, and reads in flight together overlap them.
    ``progress(n)`` is called after every chunk, in order, with the bytes it covered (holes
    count, so the sum reaches ``size``). Returns the bytes actually written. The target is
    extended to ``size`` and flushed to disk before this returns; an OSError (a full target, a
    vanished source) is raised as it is, for the caller to remove what it wrote.
    """
    src_fd = os.open(source, os.O_RDONLY)
    try:
        read_into = read_whole(lambda offset, view: pread_into(src_fd, offset, view), source, size,
                               functools.partial(OSError, errno.EIO))
        written = pump(read_into, data_regions(src_fd, size), _pwriter(target_fd), size, progress)
    finally:
        os.close(src_fd)
    _finish(target_fd, size)
    return written


def read_whole(read_into: Callable[[int, memoryview], int], label: str, size: int,
               error: Callable[[str], Exception] = DriverError) -> Callable[[int, memoryview], None]:
    """``read_into(offset, view)`` (which returns the count read) as the pump wants it: filling
    the whole view, or raising ``error`` saying where ``label`` ended before its ``size``."""
    def read(offset: int, view: memoryview) -> None:
        got = read_into(offset, view)
        if got < len(view):
            raise error(f"{label} ended at byte {offset + got}, before {size}")
    return read


def pread_into(fd: int, offset: int, view: memoryview) -> int:
    """Fill ``view`` with the bytes of ``fd`` from ``offset``; the count read, fewer than
    ``len(view)`` only at the end of the file (a short read, which a FUSE view may answer,
    is read on)."""
    got = 0
    while got < len(view):
        done = os.preadv(fd, [view[got:]], offset + got)
        if not done:
            break
        got += done
    return got


def stream_reader(reader: VolumeReader, target_fd: int, progress: Progress = None) -> int:
    """Copy what ``reader`` reads (another pool's :meth:`~StorageDriver.open_reader`) into the new
    file ``target_fd``, as :func:`stream_raw` does: zero blocks left as holes, progress per chunk,
    the file extended to ``reader.size`` and flushed. Returns the bytes written."""
    size = reader.size
    read_into = read_whole(reader.read_into, reader.label, size)
    written = pump(read_into, iter([(0, size)]), _pwriter(target_fd), size, progress,
                   readers=max(1, reader.parallel))
    _finish(target_fd, size)
    return written


def pump(read_into: Callable[[int, memoryview], None], regions: Iterator[tuple[int, int]],
         write_at: Callable[[int, memoryview], None], size: int, progress: Progress = None,
         readers: int = READERS, block: int = ZERO_BLOCK, chunk: int = CHUNK) -> int:
    """Copy the data ``regions`` of a source to a fresh target (``write_at(offset, data)``):
    ``read_into(offset, view)`` fills ``view`` with the source's bytes from ``offset`` (all of
    it, or raises), in ``readers`` threads, up to one chunk ahead of each, while this thread
    writes, in order, what is not zeros (in blocks of ``block`` bytes; what is left out must
    read as zeros in the target: a hole of a new file). ``progress`` as in :func:`stream_raw`.
    Returns the bytes written; the first error of either side is raised (reads still in flight
    are waited for, none is started after it). ``chunk``: the most bytes one ``write_at``
    gets (a target that sends them in pieces at once, as NFS WRITEs, wants more than
    :data:`CHUNK`).

    The chunks go through ``readers + 1`` buffers made once, not a fresh one per chunk: a new
    4 MiB buffer is new memory the kernel maps page by page as it is filled (up to 260,000 page
    faults per GiB copied, which doubled the copy's system time in some runs). ``write_at``
    must be done with ``data`` when it returns.
    """
    written = reported = 0
    pending: deque = deque()
    free = [bytearray(chunk) for _ in range(readers + 1)]

    def settle() -> None:  # write the oldest chunk read, then say how far the copy is
        nonlocal written, reported
        offset, length, buffer, future = pending.popleft()
        future.result()
        written += _write_nonzero(write_at, offset, buffer, length, block)
        free.append(buffer)
        if progress:
            progress(offset + length - reported)  # the hole before the chunk is done too
        reported = offset + length

    with ThreadPoolExecutor(readers, thread_name_prefix="stream") as pool:
        try:
            for offset, length in _chunks(regions, chunk):
                if not free:
                    settle()
                buffer = free.pop()
                view = memoryview(buffer)[:length]
                pending.append((offset, length, buffer, pool.submit(read_into, offset, view)))
                while len(pending) > readers or (pending and pending[0][3].done()):
                    settle()
            while pending:
                settle()
        except BaseException:
            for *_chunk, future in pending:
                future.cancel()
            raise
    if progress and size > reported:
        progress(size - reported)
    return written


def _pwriter(fd: int) -> Callable[[int, memoryview], None]:
    def write_at(offset: int, data: memoryview) -> None:
        done = 0
        while done < len(data):
            done += os.pwrite(fd, data[done:], offset + done)
        _start_writeback(fd, offset, len(data))
    return write_at


@functools.cache
def _sync_file_range() -> Callable[..., int] | None:
    function = getattr(ctypes.CDLL(None, use_errno=True), "sync_file_range", None)
    if function is not None:
        function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
        function.restype = ctypes.c_int
    return function


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Have the kernel start writing what was just written (``sync_file_range``, without
    waiting): the disk works while the copy goes on, and the fsync at the end, which makes the
    volume durable, finds little left to do. Only a hint: its failure changes nothing."""
    function = _sync_file_range()
    if function is not None:
        function(fd, offset, length, SYNC_FILE_RANGE_WRITE)


def _finish(fd: int, size: int) -> None:
    if os.fstat(fd).st_size < size:
        os.ftruncate(fd, size)
    os.fsync(fd)


def _chunks(regions: Iterator[tuple[int, int]], chunk: int = CHUNK) -> Iterator[tuple[int, int]]:
    """The data regions cut into pieces of at most ``chunk`` bytes."""
    for start, length in regions:
        for offset in range(start, start + length, chunk):
            yield offset, min(chunk, start + length - offset)


def _write_nonzero(write_at: Callable[[int, memoryview], None], offset: int, buffer: bytearray,
                   length: int, block: int = ZERO_BLOCK) -> int:
    """Write the blocks of ``buffer[:length]`` that hold anything but zeros; return the bytes
    written."""
    # startswith over a range is a memcmp in place: no copy of the block (a slice is one), and
    # comparing memoryviews is item by item, 100 times slower.
    if length == CHUNK and buffer == _ZEROS:
        return 0
    written = 0
    view = memoryview(buffer)
    zeros = _ZEROS[:block]
    run_start = None  # start of a run of non-zero blocks not yet written
    for at in range(0, length, block):
        end = min(at + block, length)
        if buffer.startswith(zeros if end - at == block else zeros[:end - at], at, end):
            if run_start is not None:
                write_at(offset + run_start, view[run_start:at])
                written += at - run_start
                run_start = None
        elif run_start is None:
            run_start = at
    if run_start is not None:
        write_at(offset + run_start, view[run_start:length])
        written += length - run_start
    return written


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
