"""Shards that earlier transactions of this process read, kept while their files stay unchanged.

A command often runs several transactions on the same shards (``clone`` takes its clones, then
writes them back in batches); a process that builds a repository adds to every shard again and
again. Parsing every shard anew each time would make each transaction cost what the repository
holds. A shard's base file is only ever replaced (a new file, renamed into place) and its log
only appended to (or emptied when folded into a new base), so a shard kept from an earlier
transaction is still right when its base file is the same file, and needs only the lines
appended to its log since. A transaction takes a shard out of here while it uses it, and puts
it back when it ends (changed only by what it committed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs

#: What identifies one version of a base file: a replaced file is a new inode; times and size
#: catch a file edited in place by hand.
FileKey = tuple[int, int, int, int]


@attrs.define
class Kept:
    """A shard as its files held it: the base file's key and length, the log's length read."""

    base_key: FileKey | None
    base_length: int | None
    log_length: int
    shard: dict[str, Any]
    logged: set[str]  # the names whose document came from the log


_kept: dict[str, Kept] = {}


def file_key(path: Path) -> FileKey | None:
    """The key of the file at ``path`` now, or None when there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def take(path: Path) -> Kept | None:
    """The shard kept for base file ``path`` (taken out: the caller puts it back or drops it)."""
    return _kept.pop(str(path), None)


def keep(path: Path, kept: Kept) -> None:
    _kept[str(path)] = kept


def forget() -> None:
    """Drop every kept shard."""
    _kept.clear()
