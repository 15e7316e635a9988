"""A volume's bytes read straight from its pool: the optional fast path of the core's copy
across pools (:meth:`StorageDriver.open_reader` on the source, :meth:`StorageDriver.write_stream`
on the target), for pools whose volumes a client library reads better than an ``expose`` does
(libnfs against a FUSE view of an ``nfs://`` file, which answers one read at a time)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class VolumeReader(Protocol):
    """The bytes of one volume, read at any offset; valid until its context ends.

    ``format`` says what the bytes are: ``raw`` (the disk itself) or ``qcow2`` (a qcow2 file that
    reads through nothing else, copied as it is). ``size`` is the number of bytes to copy (the
    file's size, not the disk's for a qcow2). ``label`` names it in messages. ``parallel``: reads
    the source answers at once to advantage (1 for a client that is not thread-safe).
    """

    format: str
    size: int
    label: str
    parallel: int

    def read_into(self, offset: int, buffer: memoryview) -> int:
        """Fill ``buffer`` with the bytes from ``offset``; the number read, fewer than
        ``len(buffer)`` only at the end. The copy hands the same few buffers over and over
        (fresh ones per read cost page faults). Errors are
        :class:`~encompass_core.errors.DriverError` with one line (a server that stopped
        answering says so)."""
        ...
