"""What every built-in :class:`~encompass_core.customization.access.FileAccess` shares.

Openers return objects derived from :class:`FileAccessBase`: context managers that refuse use
after :meth:`close` and writes when opened read-only, and that name their volume in errors.
"""

from __future__ import annotations

import stat as stat_module
from types import TracebackType

from encompass_core.customization.access import FileKind, VolumeRef
from encompass_core.errors import InvalidInput

# New files get this mode unless the caller says otherwise (owner: the parent directory's).
DEFAULT_FILE_MODE = 0o644


def describe_volume(volume: VolumeRef) -> str:
    """A short name for a volume in messages: ``'/pool/web01.qcow2' partition 2``."""
    where = f"'{volume.path}'"
    if volume.partition is not None:
        where += f" partition {volume.partition}"
    return f"volume {where}"


def kind_of_mode(mode: int) -> FileKind:
    """The :data:`FileKind` of a full ``st_mode`` (type bits included)."""
    if stat_module.S_ISREG(mode):
        return "file"
    if stat_module.S_ISDIR(mode):
        return "dir"
    if stat_module.S_ISLNK(mode):
        return "symlink"
    return "other"


def check_mode(mode: int | None) -> int | None:
    """Refuse a mode that is not permission bits (``0o7777`` at most)."""
    if mode is not None and not 0 <= mode <= 0o7777:
        raise InvalidInput(f"mode {mode:#o} is not a permission mode; give permission bits only, e.g. 0o644")
    return mode


class FileAccessBase:
    """Context-manager behaviour and the open/writable checks of every built-in access."""

    def __init__(self, volume: VolumeRef, writable: bool) -> None:
        self.volume = volume
        self.writable = writable
        self.closed = False

    @property
    def label(self) -> str:
        """The volume as named in messages."""
        return describe_volume(self.volume)

    def __enter__(self) -> FileAccessBase:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self.closed:
            raise InvalidInput(f"{self.label} was already closed; open it again to use it")

    def _check_writable(self, path: str) -> None:
        self._check_open()
        if not self.writable:
            raise InvalidInput(
                f"cannot change {path} in {self.label}: it was opened read-only; open it with writable=True"
            )

    def close(self) -> None:
        """Release the volume. Idempotent."""
        self.closed = True


class CannotOpen(InvalidInput):
    """Raised by an opener's ``open`` when, looking closer than ``can_open`` did, it finds it
    cannot open this volume after all (no ext filesystem in a qcow2 image...):
    :func:`~encompass_core.customization.openers.open_volume` then tries the next opener."""
