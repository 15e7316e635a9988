"""Ancestors' volumes opened read-only once for a whole bulk (un)customization, shared by its clones.

Reverting an item reads the file back from the clone's nearest ancestor without it, most often
the master: customizing a hundred clones of one master would otherwise open that master's
volume a hundred times (for a qcow2 volume, a qemu-storage-daemon export and debugfs sessions
each time), to read the same few files. Those ancestors are not written while the operation
runs: the master is read-only, and a clone that others read through is refused by every
operation that changes files (``_refuse_readers``). So each is opened on first use, kept, and
closed when the operation ends; what a session read is cached by its opener, so a file read for
one clone is not read again for the next. Calls are serialized: an opener serves one request at
a time, whatever the number of workers.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from typing import Any

from ..context import Context
from ..customization.access import FileAccess
from ..customization.volumes import close_all, open_image_volume
from ..model import Image


class _Shared:
    """A read-only :class:`FileAccess` whose every call runs on its owner's thread; ``close`` is
    its owner's."""

    def __init__(self, files: FileAccess, owner: SharedReads) -> None:
        self._files = files
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._files, name)
        if not callable(attribute) or name in ("close", "__enter__", "__exit__"):
            return attribute
        return lambda *args, **kwargs: self._owner.call(attribute, *args, **kwargs)

    def close(self) -> None:
        """Left open for the other clones: :meth:`SharedReads.close` closes it."""


class SharedReads:
    """Read-only openings of ancestors' volumes, one per volume and partition, for one operation.

    Everything done with them (opening, reading, closing) runs on one thread of their own that
    lives until :meth:`close`: the helpers an opener starts (qemu-storage-daemon, debugfs) are
    set to end when the thread that started them ends (:mod:`encompass_core.rundir`), and a
    worker thread ends before the operation does. One thread also serializes the requests.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._opened: dict[tuple[str, str, int | None], tuple[FileAccess, _Shared]] = {}
        self._thread: cf.ThreadPoolExecutor | None = None

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)`` run on the readers' own thread; its result."""
        if self._thread is None:
            self._thread = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="shared-reads")
        return self._thread.submit(function, *args, **kwargs).result()

    def get(self, image: Image, index: int, partition: int | None) -> FileAccess:
        """The files of ``image``'s volume ``index`` (``partition``), read-only, opened once."""
        return self.call(self._get, image, index, partition)

    def _get(self, image: Image, index: int, partition: int | None) -> FileAccess:
        volume = next((v for v in image.volumes if v.index == index), None)
        if volume is None:  # open_image_volume says what is wrong
            return open_image_volume(self.ctx, image, index, partition, writable=False)
        key = (volume.pool, volume.location, partition)
        if key not in self._opened:
            files = open_image_volume(self.ctx, image, index, partition, writable=False)
            self._opened[key] = (files, _Shared(files, self))
        return self._opened[key][1]

    def close(self) -> None:
        """Close every opening and end the thread; the first error is raised once all are closed."""
        if self._thread is None:
            return
        try:
            self.call(self._close_all)
        finally:
            self._thread.shutdown(wait=True)
            self._thread = None

    def _close_all(self) -> None:
        opened, self._opened = list(self._opened.values()), {}
        close_all(files for files, _shared in opened)
