"""Small helpers the item types share, over :class:`~.access.FileAccess` only."""

from __future__ import annotations

import posixpath

from ..errors import Conflict, EncompassError, InvalidInput, NotFound
from ..model import CustomizationItem
from .access import FileAccess


def parse_mode(item: CustomizationItem, name: str = "mode") -> int | None:
    """An octal permission parameter (``"0644"``, ``"755"`` or an int) or None when absent."""
    value = item.params.get(name)
    if value in (None, ""):
        return None
    try:
        mode = value if isinstance(value, int) else int(str(value), 8)
    except ValueError:
        raise InvalidInput(f"item '{item.key}': {name}={value!r} is not an octal mode like 0644") from None
    if not 0 <= mode <= 0o7777:
        raise InvalidInput(f"item '{item.key}': {name}={value!r} is not a permission mode (0 .. 7777)")
    return mode


def parse_owner(item: CustomizationItem) -> tuple[int | None, int | None]:
    """``owner = "UID:GID"`` or ``"UID"`` (numeric: names mean nothing outside the guest)."""
    value = item.params.get("owner")
    if value in (None, ""):
        return None, None
    uid, _, gid = str(value).partition(":")
    try:
        return int(uid), (int(gid) if gid else None)
    except ValueError:
        raise InvalidInput(
            f"item '{item.key}': owner={value!r} must be numeric UID[:GID] (names differ between "
            "guests), e.g. owner=0:0"
        ) from None


def write_file(fs: FileAccess, path: str, data: bytes, mode: int | None = None,
               uid: int | None = None, gid: int | None = None) -> None:
    """Write ``path``, creating its parent directories when they are missing."""
    try:
        fs.write(path, data, mode=mode, uid=uid, gid=gid)
    except NotFound as missing:
        # Tried first, made after: most parents exist, and each look costs a volume access.
        parent = posixpath.dirname(path)
        if parent in ("", "/"):
            raise
        try:
            try:
                fs.mkdir(parent)  # usually only the last directory is missing: one access
            except NotFound:
                fs.mkdir(parent, parents=True)
        except EncompassError:
            raise missing from None
        fs.write(path, data, mode=mode, uid=uid, gid=gid)


def restore(fs: FileAccess, parent_fs: FileAccess | None, path: str) -> bool:
    """Make ``path`` in ``fs`` what it is in ``parent_fs``: the same bytes, mode and owner, the
    same symlink, or absent when the parent has no such file. Returns False when ``parent_fs``
    is None (nothing could be done)."""
    if parent_fs is None:
        return False
    info = parent_fs.stat(path) if parent_fs.exists(path) else None
    mine = fs.stat(path) if fs.exists(path) else None
    if info is not None and info.kind == "symlink":
        set_link(fs, path, info.target)
    elif info is not None and info.kind == "file":
        if mine is not None and mine.kind == "symlink":
            fs.remove(path)  # written through, the link would change the file it names
        write_file(fs, path, parent_fs.read(path), mode=info.mode, uid=info.uid, gid=info.gid)
    elif mine is not None and mine.kind != "dir":
        fs.remove(path)
    return True


def set_link(fs: FileAccess, path: str, target: str | None) -> None:
    """Make ``path`` the symlink holding ``target`` (None: no file there), replacing a file or
    link; a directory in the way is refused."""
    mine = fs.stat(path) if fs.exists(path) else None
    if mine is not None and mine.kind == "symlink" and mine.target == target:
        return
    if mine is not None:
        if mine.kind == "dir":
            raise Conflict(f"cannot make {path} a symlink: a directory is there; move it away")
        fs.remove(path)
    if target is not None:
        try:
            fs.symlink(path, target)
        except NotFound:
            parent = posixpath.dirname(path)
            fs.mkdir(parent, parents=True)
            fs.symlink(path, target)


def prune_directories(fs: FileAccess, parent_fs: FileAccess, path: str) -> None:
    """Remove the directories above ``path`` that are empty in ``fs`` and absent from
    ``parent_fs`` (made when a file was written there), deepest first."""
    directory = posixpath.dirname(path)
    while directory not in ("", "/") and not parent_fs.exists(directory):
        if not fs.exists(directory) or fs.stat(directory).kind != "dir" or fs.listdir(directory):
            return
        fs.rmdir(directory)
        directory = posixpath.dirname(directory)
