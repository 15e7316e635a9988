"""Durable file writes for the TinyDB backend: one file atomically, several files all or none.

One file is replaced the classic way (temp file, fsync, rename, fsync of the directory), its
previous content kept as ``<file>.bak``. Several files are replaced through a redo journal:
every new file is written and fsync'd under a temporary name, then ``journal.json`` (itself
written atomically) lists the renames, then they are done and the journal removed. A writer
killed before the journal exists leaves only temporary files (swept); one killed after leaves
a journal that the next holder of the lock finishes (:func:`replay`). Callers hold the
repository's exclusive lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

TMP_SUFFIX = ".tmp"
_PARALLEL_FROM = 4  # files in one transaction from which they are written by several threads
_WRITERS = 16  # threads writing them


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp(path: Path, data: bytes) -> str:
    """``data`` fsync'd into a new temporary file beside ``path``; its name."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def _install(tmp: str, path: Path) -> None:
    """Rename ``tmp`` over ``path``, keeping the file it replaces as ``path.bak``."""
    if path.exists():
        backup_tmp = f"{tmp}.bak"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(backup_tmp)
        os.link(path, backup_tmp)
        os.replace(backup_tmp, f"{path}.bak")
        # rename(2) does nothing when both names are links to one file already (a writer killed
        # between its two renames leaves the .bak as the current file).
        with contextlib.suppress(FileNotFoundError):
            os.unlink(backup_tmp)
    os.replace(tmp, path)


def replace_one(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically (the old content becomes ``path.bak``)."""
    tmp = write_temp(path, data)
    try:
        _install(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def replace_many(journal: Path, files: Mapping[Path, bytes]) -> None:
    """Replace every file of ``files`` by its data: all of them, or (after a crash, once
    :func:`replay` ran) none."""
    if len(files) == 1:
        [(path, data)] = files.items()
        replace_one(path, data)
        return
    renames: list[tuple[str, str]] = []
    try:
        _write_temps(files, renames)
        for directory in {Path(p).parent for _t, p in renames}:
            fsync_dir(directory)
        replace_one(journal, json.dumps(renames).encode())
    except BaseException:
        for tmp, _path in renames:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    _finish(journal, renames)


def _write_temps(files: Mapping[Path, bytes], renames: list[tuple[str, str]]) -> None:
    """Every file of ``files`` written and fsync'd under a temporary name, appended to
    ``renames`` as ``(temporary name, name)``; several at once, because fsyncs issued together
    share the filesystem's journal commits (on ext4, 64 files take about a tenth of the time
    they take one after the other). On a failure, the first error is raised once all are done
    (the caller removes what ``renames`` lists)."""
    if len(files) < _PARALLEL_FROM:
        for path, data in files.items():
            renames.append((write_temp(path, data), str(path)))
        return
    import concurrent.futures as cf  # here: it imports logging, which most commands never need

    with cf.ThreadPoolExecutor(max_workers=min(_WRITERS, len(files)),
                               thread_name_prefix="store-write") as writers:
        futures = [(writers.submit(write_temp, path, data), path) for path, data in files.items()]
    failure: BaseException | None = None
    for future, path in futures:
        try:
            renames.append((future.result(), str(path)))
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after collecting the rest
            failure = failure or exc
    if failure is not None:
        raise failure


def _finish(journal: Path, renames: Iterable[tuple[str, str]]) -> None:
    directories = set()
    for tmp, path in renames:
        if os.path.exists(tmp):  # not renamed yet (a replay after a crash may find it done)
            _install(tmp, Path(path))
        directories.add(Path(path).parent)
    for directory in directories:
        fsync_dir(directory)
    journal.unlink()
    with contextlib.suppress(FileNotFoundError):
        Path(f"{journal}.bak").unlink()
    fsync_dir(journal.parent)


def replay(journal: Path) -> bool:
    """Finish the renames of a writer killed after writing its journal; whether there was one."""
    try:
        renames = json.loads(journal.read_bytes())
    except FileNotFoundError:
        return False
    _finish(journal, [(tmp, path) for tmp, path in renames])
    return True


def sweep(*directories: Path) -> None:
    """Remove temporary files of writers killed before their journal (run after :func:`replay`)."""
    for directory in directories:
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(directory):
                if entry.name.startswith(".") and (TMP_SUFFIX in entry.name):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)


def append_lines(path: Path, lines: Iterable[bytes]) -> None:
    """Append whole lines to ``path`` (O_APPEND, fsync'd). A line cut short by a killed writer
    is dropped first, so that the next line does not glue onto it."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as existing:
                existing.seek(max(0, size - 65536))
                tail = existing.read()
            if not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                os.ftruncate(fd, size - len(tail) + cut + 1 if cut >= 0 else max(0, size - len(tail)))
        os.write(fd, b"".join(lines))
        os.fsync(fd)
    finally:
        os.close(fd)
