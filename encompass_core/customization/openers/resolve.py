"""Path confinement: resolve a path inside a volume, component by component, as its guest would.

The rule, the same for every opener:

* A path given by the caller is absolute inside the volume (``/etc/hostname``). If its own
  ``..`` components climb above ``/`` (``/../etc``, ``/etc/../../x``), it is refused with
  :class:`~encompass_core.errors.ConfinementError`: such a path is a mistake in a
  customization item, not something a guest would write.
* Symlinks found inside the image are followed the way the guest's kernel would follow them
  with the volume as its ``/`` (chroot-like): an absolute target ``/etc/x`` means
  ``<volume>/etc/x``, and ``..`` at the volume root stays at the root (``../../..`` from
  ``/sub`` is ``/``). So a symlink can never lead out of the volume; it leads where the guest
  would look. More than :data:`MAX_SYMLINKS` links in one resolution is refused (a loop).
* A name longer than :data:`NAME_MAX` bytes, or a caller's path longer than :data:`PATH_MAX`
  bytes, is refused with :class:`~encompass_core.errors.InvalidInput` before anything is looked
  up or written: no guest could use it, and some tools (debugfs) would write a broken entry.
* Each component is looked up ``lstat``-like in the directory reached so far: no component is
  ever handed to the host (or to debugfs) as a multi-component path that could be resolved
  outside this walk.
* A namespace of a case-insensitive file system (NTFS, FAT) also has ``spell(directory, name)``:
  the name as the directory stores it, when one matches without regard to case. The walk then
  goes on with that spelling, so ``/WINDOWS/system32`` finds ``/Windows/System32`` and a write
  replaces the existing file instead of adding a second one that differs only in case.

An opener supplies a :class:`Namespace` (how to look a name up in a directory it reached);
:func:`resolve` does the walking.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from typing import Generic, Protocol, TypeVar

import attrs

from encompass_core.customization.access import FileKind
from encompass_core.errors import ConfinementError, InvalidInput, NotFound

MAX_SYMLINKS = 40  # as Linux's MAXSYMLINKS
NAME_MAX = 255  # bytes in one name: ext2/3/4, XFS, Btrfs and Linux's VFS alike
PATH_MAX = 4095  # bytes in a whole path a guest can give its kernel (4096 with the NUL)

H = TypeVar("H")


@attrs.frozen
class Entry:
    """One directory entry as looked up (``lstat``): its kind, full ``st_mode``, owner, size."""

    kind: FileKind
    mode: int  # full st_mode, type bits included
    uid: int
    gid: int
    size: int
    inode: int = 0


class Namespace(Protocol[H]):
    """How an opener looks names up; ``H`` is its handle on a directory reached so far."""

    def root(self) -> H:
        """The handle of the volume's ``/``."""

    def lookup(self, directory: H, name: str) -> Entry | None:
        """The entry ``name`` in ``directory`` (not following a symlink), None when absent."""

    def readlink(self, directory: H, name: str, entry: Entry) -> str:
        """The target text of the symlink ``name`` in ``directory``."""

    def enter(self, directory: H, name: str, entry: Entry) -> H:
        """The handle of the subdirectory ``name`` (an entry of kind ``dir``)."""

    def release(self, handle: H) -> None:
        """Forget a handle returned by :meth:`enter` (close a descriptor...)."""


def spell_in(names: Iterable[str], name: str) -> str:
    """``name`` as spelt among ``names`` when one matches it regardless of case (an exact match
    first), else ``name`` itself: the lookup of case-insensitive file systems."""
    folded = name.casefold()
    found = None
    for candidate in names:
        if candidate == name:
            return name
        if found is None and candidate.casefold() == folded:
            found = candidate
    return name if found is None else found


def _speller(namespace: object):
    """The namespace's ``spell`` (case-insensitive file systems), or one that changes nothing."""
    return getattr(namespace, "spell", None) or (lambda directory, name: name)


@attrs.define
class Resolved(Generic[H]):
    """Where a path leads: the directory holding it, its last name, and that entry.

    ``name`` is None when the path is a directory reached without a last name (``/``,
    ``/etc/..``); then ``directory`` is that directory. ``entry`` is None when the last name
    does not exist (yet). ``path`` is the canonical path inside the volume.
    """

    directory: H
    name: str | None
    entry: Entry | None
    path: str


def _shown(text: str, limit: int = 60) -> str:
    """``text`` quoted for a message, its middle left out when long (a 4 KiB path is noise)."""
    if len(text) <= limit:
        return repr(text)
    return repr(text[: limit // 2] + "..." + text[-limit // 2 :])


def limits_problem(path: str) -> str | None:
    """Why ``path`` cannot exist in any volume (a name over :data:`NAME_MAX` bytes, the path
    over :data:`PATH_MAX` bytes), or None. Lengths are counted in bytes, as the kernel does."""
    size = len(os.fsencode(path))
    if size > PATH_MAX:
        return f"it is {size} bytes long and a path holds at most {PATH_MAX}"
    for part in path.split("/"):
        size = len(os.fsencode(part))
        if size > NAME_MAX:
            return f"its name {_shown(part)} is {size} bytes long and a name holds at most {NAME_MAX}"
    return None


def check_path(path: str, label: str) -> list[str]:
    """The components of a caller's path; refuse relative paths, NULs, names and paths beyond
    :data:`NAME_MAX` and :data:`PATH_MAX`, and climbing above ``/``."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidInput(
            f"path {path!r} in {label} is not absolute; give paths as the guest sees them, e.g. /etc/hostname"
        )
    if "\0" in path:
        raise InvalidInput(f"path {path!r} in {label} contains a NUL character")
    problem = limits_problem(path)
    if problem is not None:
        raise InvalidInput(
            f"cannot use path {_shown(path)} in {label}: {problem}; shorten the path"
        )
    depth = 0
    parts = [part for part in path.split("/") if part not in ("", ".")]
    for part in parts:
        depth += -1 if part == ".." else 1
        if depth < 0:
            raise ConfinementError(
                f"path {path!r} climbs above the root of {label} with '..'; "
                "fix the path in the customization item"
            )
    return parts


def _split_target(target: str) -> list[str]:
    return [part for part in target.split("/") if part not in ("", ".")]


@contextlib.contextmanager
def resolve(
    namespace: Namespace[H], path: str, label: str, follow_final: bool = True
) -> Iterator[Resolved[H]]:
    """Resolve ``path`` inside the volume (see the module's rule); release handles on exit.

    Missing or non-directory intermediate components raise
    :class:`~encompass_core.errors.NotFound`; a missing last component does not (its
    ``entry`` is None, for creating it). A final symlink is followed when ``follow_final``,
    a dangling one then gives the entry-less place its target names.
    """
    pending = check_path(path, label)
    pending.reverse()  # a stack: the next component is pending[-1]
    root = namespace.root()
    spell = _speller(namespace)
    stack: list[H] = [root]
    names: list[str] = []
    links = 0
    try:
        while pending:
            part = pending.pop()
            if part == "..":
                if len(stack) > 1:  # at the root, '..' stays at the root: chroot-like
                    namespace.release(stack.pop())
                    names.pop()
                continue
            is_last = not pending
            directory = stack[-1]
            part = spell(directory, part)
            entry = namespace.lookup(directory, part)
            here = "/" + "/".join([*names, part])
            if entry is None:
                if is_last:
                    yield Resolved(directory, part, None, here)
                    return
                raise NotFound(
                    f"{here} does not exist in {label} (resolving {path}); "
                    "create the directory first or fix the path"
                )
            if entry.kind == "symlink" and (follow_final or not is_last):
                links += 1
                if links > MAX_SYMLINKS:
                    raise InvalidInput(
                        f"too many levels of symbolic links resolving {path} in {label} "
                        f"(a symlink loop near {here}); fix the links in the image"
                    )
                target = namespace.readlink(directory, part, entry)
                problem = limits_problem(target)
                if problem is not None:  # made by hand or by a hostile image: no guest could follow it
                    raise InvalidInput(
                        f"symlink {here} in {label} points to {_shown(target)}, which no guest can "
                        f"follow: {problem}; fix the link in the image"
                    )
                if target.startswith("/"):  # absolute: from the volume's root, not the host's
                    while len(stack) > 1:
                        namespace.release(stack.pop())
                    names.clear()
                pending.extend(reversed(_split_target(target)))
                continue
            if is_last:
                yield Resolved(directory, part, entry, here)
                return
            if entry.kind != "dir":
                raise NotFound(f"{here} is not a directory in {label} (resolving {path}); fix the path")
            stack.append(namespace.enter(directory, part, entry))
            names.append(part)
        # Ended on a directory without a last name: '/', '/etc/..', a link to a directory.
        yield Resolved(stack[-1], None, None, "/" + "/".join(names))
    finally:
        while len(stack) > 1:
            namespace.release(stack.pop())
