"""The one exception hierarchy of Encompass.

Every error a user can expect derives from :class:`EncompassError`; its message says what
happened, to what, and what to do next. The CLI maps each class to an exit code and prints
the message on one line, without a traceback.
"""

from __future__ import annotations


class EncompassError(Exception):
    """Base of every expected error. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class InvalidInput(EncompassError):
    """A name, value, option or file given by the user is not acceptable."""

    exit_code = 2


class NotFound(EncompassError):
    """A named image, pool, platform, machine, plugin or file does not exist."""

    exit_code = 3


class Conflict(EncompassError):
    """The request clashes with the current state (duplicate name, dependents, wrong state)."""

    exit_code = 4


class TransitionRefused(Conflict):
    """The image lifecycle does not allow the requested state change."""


class NotSupported(Conflict):
    """A driver does not offer what was asked (create a machine on a chassis, attach a LUN to a
    platform that takes files only); refused before anything was touched."""


class ConfigError(EncompassError):
    """``encompass.toml`` is malformed or names something unknown."""

    exit_code = 5


class StoreError(EncompassError):
    """The metadata file is corrupt, of an unknown schema, or cannot be written."""

    exit_code = 5


class PluginError(EncompassError):
    """A plugin failed to load, clashes with another, or breaks the contract."""

    exit_code = 6


class DriverError(EncompassError):
    """A storage or platform driver, or the peer behind it (qemu-img, libvirt, ...), failed."""

    exit_code = 7


class ConfinementError(EncompassError):
    """A path inside a volume would lead outside it (``..``, an absolute or escaping symlink)."""

    exit_code = 8


class Interrupted(EncompassError):
    """The user interrupted a long operation (Ctrl-C); nothing was left half-done."""

    exit_code = 130
