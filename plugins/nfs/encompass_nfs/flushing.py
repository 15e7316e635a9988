"""A large file written to the export made durable while it is written ("flush behind").

NFSv3 WRITEs are UNSTABLE: the server keeps them in its page cache until a COMMIT, which it turns
into an fsync of the file. One COMMIT at the end of a gigabyte made the copy wait for all of it
to reach the server's disk (2-2.3 s of 6-7 s here), the disk idle until then. The server's
local equivalent of :func:`encompass_core.drivers.streaming._start_writeback`: every
:data:`FLUSH_EVERY` bytes written, a thread of its own sends a COMMIT on a second connection
(a libnfs context is not thread-safe; the writer's must not wait), so the server's disk works
while the copy goes on and the writer's final COMMIT, which alone makes the volume durable and
says whether it is, finds little left (1 GiB: 5.2-5.7 s against 6.1-7.0 s).

Only a hint, like ``sync_file_range``: if the second connection cannot be made or a COMMIT
fails, the copy goes on without it, and the writer's own calls say what went wrong.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from encompass_core.errors import EncompassError

if TYPE_CHECKING:
    from .client import LibnfsExport, _Reader

#: Bytes written between two COMMITs sent behind the writer.
FLUSH_EVERY = 64 << 20
#: Files smaller than this are committed once, at the end (a second mount costs 30-70 ms).
WORTH_IT = 256 << 20


class FlushBehind:
    """COMMITs of one file of the export, sent from a thread while it is written."""

    def __init__(self, files: LibnfsExport, handle: _Reader) -> None:
        self._files, self._handle = files, handle
        self._since = 0
        self._wanted = threading.Event()
        self._stopping = False
        self.commits = 0  # COMMITs sent and answered (what the tests look at)
        self._thread = threading.Thread(target=self._run, name="nfs-flush-behind", daemon=True)
        self._thread.start()

    @classmethod
    def start(cls, writer_files: LibnfsExport, rel: str, size: int) -> FlushBehind | None:
        """A flusher of ``rel`` (being written through ``writer_files``) when ``size`` bytes
        are worth it, over a connection of its own; None when not worth it or not possible."""
        if size < WORTH_IT or writer_files.url.version != 3:
            return None  # NFSv4 writes go in 3 KiB pieces: the network, not the disk, is slow
        from .client import LibnfsExport

        files = LibnfsExport(writer_files.url, writer_files.pool, writer_files.timeout)
        try:
            handle = files.open_read(rel)  # COMMIT needs a handle, not a writable one
        except EncompassError:
            files.close()
            return None
        return cls(files, handle)

    def wrote(self, count: int) -> None:
        """``count`` more bytes were written: ask for a COMMIT every :data:`FLUSH_EVERY`."""
        self._since += count
        if self._since >= FLUSH_EVERY:
            self._since = 0
            self._wanted.set()  # a COMMIT not yet sent covers these too: requests coalesce

    def _run(self) -> None:
        files = self._files
        while True:
            self._wanted.wait()
            if self._stopping:
                return
            self._wanted.clear()
            try:
                with files.lock:
                    status = files.nfs.nfs_fsync(files.context, self._handle.handle)
            except EncompassError:  # the connection is gone: not this thread's to report
                return
            if status < 0:
                return  # the writer's own WRITE or COMMIT says why
            self.commits += 1

    def close(self) -> None:
        """Stop the thread (a COMMIT under way is answered first) and unmount. Idempotent."""
        self._stopping = True
        self._wanted.set()
        self._thread.join()
        self._handle.close()
        self._files.close()
