"""An export reached through libnfs (the PyPI ``libnfs`` binding on Debian's libnfs), no mount.

Facts this module is built on (libnfs 4.0, tried against nfs-ganesha):

* Every call answers a negative errno; after a *failed mount* a context must not be used again
  (the next call hangs or crashes), so the server's port is tried first for a clear message,
  and a failed mount destroys the context at once.
* NFSv4 writes above about 3.5 KB fail ("ZDR error: Failed to encode COMPOUND4args"): over v4
  writes go in 3 KiB pieces (slow); NFSv3 (the default) writes up to the server's maximum.
* Over NFSv4 it cannot change a folder's mode or owner (NFS4ERR_ISDIR, whatever the folder):
  folders keep the server's default mode, and such pools hold no directory trees.
* Writes want a ``bytearray``. The binding does not expose ``nfs_set_timeout`` and
  ``nfs_set_autoreconnect``: they are called through ctypes on the same context, so a server
  that goes away fails the call instead of hanging it.
* Reads and writes of file data go through ctypes too: the binding holds the GIL for the whole
  network call and copies every buffer (512 MiB read in 1 MiB pieces: 3.7 s against 0.5 s),
  while ctypes releases the GIL, so a copy's other side (this host's disk) runs meanwhile.

A context is not thread-safe: every call holds the client's lock.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import socket
import threading
import warnings
from typing import Any

from encompass_core.drivers import streaming
from encompass_core.errors import DriverError, NotFound

from .files import Entry, entry_of, error_for
from .nfsurl import NfsUrl

V4_WRITE_PIECE = 3 << 10  # bytes: libnfs 4.0 cannot encode a larger NFSv4 WRITE
#: NFSv3 WRITEs one ``nfs_pwrite`` hands libnfs at once (it sends them together, then waits
#: for every answer): one WRITE waiting for its answer before the next leaves took twice as
#: long against ganesha (1 GiB of WRITEs, the COMMIT aside: 4.3-4.7 s one at a time, 2.2-2.6 s
#: four at once). A whole 1 GiB copy into a new folder, with its COMMIT, five rounds each with
#: the disk left quiet between copies: medians 4.02 s 16 at once, 4.14 s 4, 4.37 s 1 (nfs-cp,
#: one at a time, 3.69 s).
WRITES_IN_FLIGHT = 16
CONNECT_TIMEOUT = 10.0  # seconds to wait for the server's port to answer
#: glibc's ``mallopt`` parameters (<malloc.h>) and what this client sets them to (see
#: :func:`_keep_write_buffers`).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD, TRIM_THRESHOLD = 8 << 20, 32 << 20


def _libnfs() -> Any:
    try:
        with warnings.catch_warnings():  # its SWIG loader imports imp (deprecated, still there)
            warnings.simplefilter("ignore", DeprecationWarning)
            import libnfs.libnfs as binding  # the SWIG module: every call answers its status
    except ImportError as exc:
        raise DriverError("the libnfs Python binding is not installed: pip install libnfs "
                          "(it builds on the Debian package libnfs-dev)") from exc
    return binding


@functools.cache
def _native() -> Any:
    library = ctypes.CDLL("libnfs.so.13")
    library.nfs_set_timeout.argtypes = (ctypes.c_void_p, ctypes.c_int)
    library.nfs_set_autoreconnect.argtypes = (ctypes.c_void_p, ctypes.c_int)
    # libnfs 4.0 (ABI 13): nfs_pread|nfs_pwrite(nfs, nfsfh, uint64 offset, uint64 count, buf).
    for name in ("nfs_pread", "nfs_pwrite"):
        function = getattr(library, name)
        function.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64,
                             ctypes.c_void_p)
        function.restype = ctypes.c_int
    return library


@functools.cache
def _keep_write_buffers() -> None:
    """Have glibc reuse the memory libnfs builds each WRITE in (a buffer the size of the WRITE,
    1 MiB, allocated and freed per WRITE) instead of mapping it afresh every time.

    Above glibc's mmap threshold (128 KiB until a larger block is freed) a buffer is a new
    mapping, which the kernel fills page by page: copying 1 GiB to an export took 260,000 page
    faults and 2 s of system time more (5.2-5.5 s against 7.9-8.4 s, A/B). Set once per process,
    when the first export is mounted; without glibc's ``mallopt`` nothing changes."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)


def _pointer(swig: Any) -> ctypes.c_void_p:
    """The C pointer a SWIG object of the binding wraps, for a ctypes call."""
    return ctypes.c_void_p(int(swig))


class _Writer:
    def __init__(self, client: LibnfsExport, handle: Any, rel: str, mode: int | None = None) -> None:
        self.client, self.handle, self.rel = client, handle, rel
        self.context = client.context  # the handle dies with it (a lost server drops it)
        self.mode = mode  # given once the file is closed (an NFSv4 open would lose its state)
        self.piece = V4_WRITE_PIECE if client.url.version == 4 else client.write_max * WRITES_IN_FLIGHT
        #: The bytes a copy should hand :meth:`write_at` at once: all the WRITEs that go together.
        self.chunk = max(self.piece, streaming.CHUNK)
        self._native = _native()
        self._pointers = (_pointer(self.context), _pointer(handle))

    def write_at(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        client, view = self.client, memoryview(data).cast("B")
        while view:
            part = view[: self.piece]
            # A writable buffer is passed as it is; bytes are copied once (ctypes wants one).
            buffer = (ctypes.c_char * len(part)).from_buffer(part) if not part.readonly \
                else (ctypes.c_char * len(part)).from_buffer_copy(part)
            with client.lock:
                client.check_alive(self.context, "write", self.rel)
                done = self._native.nfs_pwrite(*self._pointers, offset, len(part), buffer)
            del buffer  # releases ``part``'s buffer
            if done <= 0:
                raise client.failed(done or -errno.EIO, "write", self.rel)
            view, offset = view[done:], offset + done

    def truncate(self, size: int) -> None:
        client = self.client
        with client.lock:
            client.check_alive(self.context, "write", self.rel)
            status = client.nfs.nfs_ftruncate(self.context, self.handle, size)
        if status < 0:
            raise client.failed(status, "set the size of", self.rel)

    def close(self) -> None:
        client = self.client
        with client.lock:
            if client.current is not self.context:
                return  # the connection was lost, and the handle with it: the failure was said
            synced = client.nfs.nfs_fsync(self.context, self.handle)
            closed = client.nfs.nfs_close(self.context, self.handle)
        if synced < 0 or closed < 0:
            raise client.failed(min(synced, closed), "write", self.rel)
        if self.mode is not None:
            client.chmod(self.rel, self.mode)


class _Reader:
    def __init__(self, client: LibnfsExport, handle: Any, rel: str, size: int) -> None:
        self.client, self.handle, self.rel, self.size = client, handle, rel, size
        self.context = client.context
        self._native = _native()
        self._pointers = (_pointer(self.context), _pointer(handle))

    def read_at(self, offset: int, length: int) -> bytearray:
        """Up to ``length`` bytes from ``offset``: fewer only at the end of the file."""
        data = bytearray(length)
        with memoryview(data) as view:
            got = self.read_into(offset, view)
        del data[got:]
        return data

    def read_into(self, offset: int, buffer: memoryview) -> int:
        """Fill ``buffer`` from ``offset``; the count read, short only at the end of the file."""
        client, length = self.client, len(buffer)
        got = 0
        while got < length:
            # One READ of what the server takes at a time, into its place in ``buffer``: larger
            # counts (which libnfs splits into READs sent together) were slower against ganesha.
            count = min(length - got, client.read_max)
            target = (ctypes.c_char * count).from_buffer(buffer, got)
            with client.lock:
                client.check_alive(self.context, "read", self.rel)
                done = self._native.nfs_pread(*self._pointers, offset + got, count, target)
            del target  # releases ``buffer``
            if done < 0:
                raise client.failed(done, "read", self.rel)
            if done == 0:
                break
            got += done
        return got

    def close(self) -> None:
        client = self.client
        with client.lock:
            if client.current is self.context:
                client.nfs.nfs_close(self.context, self.handle)


class LibnfsExport:
    """The files of ``url``'s export over libnfs; connects on first use."""

    def __init__(self, url: NfsUrl, pool: str, timeout: float = 60.0) -> None:
        self.url = url
        self.pool = pool
        self.label = url.plain
        self.timeout = timeout
        self.lock = threading.RLock()
        self.nfs: Any = None
        self._context: Any = None
        self.read_max = self.write_max = 1 << 20
        #: Whether a folder's mode and owner can be set (not over NFSv4 with libnfs 4.0).
        self.folder_modes = url.version == 3

    # -- the connection --------------------------------------------------------------------
    @property
    def context(self) -> Any:
        with self.lock:
            if self._context is None:
                self._connect()
            return self._context

    def _connect(self) -> None:
        url, port = self.url, self.url.service_port()
        try:
            with socket.create_connection((url.host, port), timeout=CONNECT_TIMEOUT):
                pass
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            service = "NFS" if port != 111 else "rpcbind (portmapper)"
            raise DriverError(
                f"pool '{self.pool}': cannot reach the NFS server {url.host} ({service} port {port}: "
                f"{reason.lower()}); check that it runs and that this host may reach it") from exc
        nfs = _libnfs()
        context = nfs.nfs_init_context()
        if context is None:
            raise DriverError(f"pool '{self.pool}': libnfs could not make a context")
        native = _native()
        _keep_write_buffers()
        native.nfs_set_timeout(ctypes.c_void_p(int(context)), int(self.timeout * 1000))
        native.nfs_set_autoreconnect(ctypes.c_void_p(int(context)), 0)
        parsed = nfs.nfs_parse_url_dir(context, url.text)
        if parsed is None:
            message = nfs.nfs_get_error(context)
            nfs.nfs_destroy_context(context)
            raise DriverError(f"pool '{self.pool}': libnfs refuses the url {url.plain}: {message}")
        status = nfs.nfs_mount(context, parsed.server, parsed.path)
        nfs.nfs_destroy_url(parsed)
        if status != 0:
            message = (nfs.nfs_get_error(context) or os.strerror(-status)).strip()
            nfs.nfs_destroy_context(context)  # a context whose mount failed is never used again
            if status in (-errno.EACCES, -errno.ENOENT, -errno.EPERM):
                raise NotFound(f"pool '{self.pool}': the NFS server {url.host} does not export "
                               f"{url.export} to this host ({message}); check the url")
            raise DriverError(f"pool '{self.pool}': cannot mount {url.plain}: {message}")
        self.nfs = nfs
        self._context = context
        if url.version == 3:
            self.read_max = max(4096, min(nfs.nfs_get_readmax(context) or 0, 1 << 20))
            self.write_max = max(4096, min(nfs.nfs_get_writemax(context) or 0, 1 << 20))

    def close(self) -> None:
        """Unmount and free the context. Idempotent."""
        with self.lock:
            context, self._context = self._context, None
            if context is not None:
                self.nfs.nfs_destroy_context(context)

    @property
    def current(self) -> Any:
        """The live context, or None (not connected, or the connection was lost)."""
        return self._context

    def check_alive(self, context: Any, what: str, rel: str) -> None:
        """Refuse a call on a handle whose connection was lost (its context is gone)."""
        if self._context is not context:
            raise error_for(self, errno.EIO, what, rel,
                            f"the connection to the NFS server {self.url.host} was lost")

    def failed(self, status: int, what: str, rel: str) -> Exception:
        """The error for a negative ``status`` of a call on ``rel``. A lost server also drops
        the context: the next call connects again (and says so if it cannot)."""
        detail = ""
        with self.lock:
            if self._context is not None:
                detail = (self.nfs.nfs_get_error(self._context) or "").strip()
            code = -status if status < 0 else errno.EIO
            lost = "nfs_service failed" in detail or (
                code in (errno.EIO, errno.ETIMEDOUT, errno.ECONNRESET, errno.EPIPE)
                and not detail.startswith("NFS"))
            if lost:
                self.close()
        if lost:
            detail = f"the NFS server {self.url.host} stopped answering ({detail or os.strerror(code)})"
        elif " failed with " in detail:
            detail = detail.split(" failed with ")[-1].strip('"')
        return error_for(self, code, what, rel, detail)

    def _call(self, what: str, rel: str, function: str, *args: Any) -> int:
        context = self.context  # connects on first use
        with self.lock:
            status = getattr(self.nfs, function)(context, *args)
        if status < 0:
            raise self.failed(status, what, rel)
        return status

    @staticmethod
    def _path(rel: str) -> str:
        return "/" + rel

    # -- ExportFiles -------------------------------------------------------------------------
    def lstat(self, rel: str) -> Entry | None:
        context = self.context
        info = self.nfs.nfs_stat_64()
        with self.lock:
            status = self.nfs.nfs_lstat64(context, self._path(rel), info)
        if status == -errno.ENOENT:
            return None
        if status < 0:
            raise self.failed(status, "look up", rel)
        return entry_of(info.nfs_mode, info.nfs_size, info.nfs_uid, info.nfs_gid, info.nfs_rdev)

    def listdir(self, rel: str) -> list[str]:
        context, nfs = self.context, self.nfs
        names = []
        with self.lock:
            pointer = nfs.new_NFSDirHandle()
            status = nfs.nfs_opendir(context, self._path(rel), pointer)
            if status < 0:
                raise self.failed(status, "list", rel)
            handle = nfs.NFSDirHandle_value(pointer)
            try:
                while (entry := nfs.nfs_readdir(context, handle)) is not None:
                    if entry.name not in (".", ".."):
                        names.append(entry.name)
            finally:
                nfs.nfs_closedir(context, handle)
        return sorted(names)

    def mkdir(self, rel: str, mode: int = 0o755) -> None:
        self._call("make the folder", rel, "nfs_mkdir", self._path(rel))
        if self.folder_modes:
            self.chmod(rel, mode)

    def rmdir(self, rel: str) -> None:
        self._call("remove the folder", rel, "nfs_rmdir", self._path(rel))

    def unlink(self, rel: str) -> None:
        self._call("remove", rel, "nfs_unlink", self._path(rel))

    def rename(self, source: str, target: str) -> None:
        self._call(f"rename {source} to", target, "nfs_rename", self._path(source), self._path(target))

    def chmod(self, rel: str, mode: int) -> None:
        self._call("change the mode of", rel, "nfs_chmod", self._path(rel), mode & 0o7777)

    def chown(self, rel: str, uid: int, gid: int) -> None:
        self._call("change the owner of", rel, "nfs_lchown", self._path(rel), uid, gid)

    def symlink(self, target: str, rel: str) -> None:
        self._call("make the link", rel, "nfs_symlink", target, self._path(rel))

    def readlink(self, rel: str) -> str:
        buffer = bytearray(4096)
        self._call("read the link", rel, "nfs_readlink", self._path(rel), buffer, len(buffer))
        return os.fsdecode(bytes(buffer).split(b"\0", 1)[0])

    def mknod(self, rel: str, mode: int, device: int) -> None:
        self._call("make the node", rel, "nfs_mknod", self._path(rel), mode, device)

    def create(self, rel: str, mode: int = 0o644) -> _Writer:
        context, nfs = self.context, self.nfs
        with self.lock:
            pointer = nfs.new_NFSFileHandle()
            status = nfs.nfs_create(context, self._path(rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                    mode, pointer)
            if status < 0:  # the handle was never set: it is not used
                raise self.failed(status, "create", rel)
            handle = nfs.NFSFileHandle_value(pointer)
        if self.url.version == 4:  # NFSv4 creates files 0600 whatever the mode asked
            return _Writer(self, handle, rel, mode)
        return _Writer(self, handle, rel)

    def open_read(self, rel: str) -> _Reader:
        entry = self.lstat(rel)
        if entry is None:
            raise error_for(self, errno.ENOENT, "open", rel)
        context, nfs = self.context, self.nfs
        with self.lock:
            pointer = nfs.new_NFSFileHandle()
            status = nfs.nfs_open(context, self._path(rel), os.O_RDONLY, pointer)
            if status < 0:
                raise self.failed(status, "open", rel)
            handle = nfs.NFSFileHandle_value(pointer)
        return _Reader(self, handle, rel, entry.size)
