"""busybox, the demo guest's whole userland: the applets it links to itself."""

from __future__ import annotations

from pathlib import Path

from .tools import run_tool

#: Names busybox lists as applets that the master provides itself.
NOT_APPLETS = frozenset({"busybox", "init", "linuxrc"})


def busybox_applets(busybox: Path) -> list[str]:
    """Applet paths (``bin/cat``, ``sbin/poweroff``, ...) from the busybox binary itself."""
    return run_tool([str(busybox), "--list-full"], "busybox", "busybox-static").split()
