"""``bootscript``: an executable the guest runs once, at its next boot.

The value is the script (``#!/bin/sh`` is added when it has no ``#!`` line); the ``script``
parameter may instead hold a template (``{value}``, ``{clone}``). It is written, mode 0755,
at the item's path (e.g. ``/usr/local/sbin/encompass-firstboot-KEY``). Once it ran with
success it is renamed ``PATH.done``, so it does not run again. How it is started depends on
the guest's init, found from its files:

* systemd (a systemd binary in ``/lib/systemd`` or ``/usr/lib/systemd``): a oneshot unit
  ``encompass-KEY.service``, pulled in by a drop-in of ``multi-user.target``
  (``multi-user.target.d/encompass-KEY.conf``): regular files only, no symlink needed;
* busybox or SysV init (``/etc/inittab``): a ``once`` line marked ``# encompass:KEY``;
* otherwise ``/etc/rc.local`` (made if missing), a line marked ``# encompass:KEY``.

Revert: the script and unit files come back as in the parent image (usually: absent); the
marked lines are removed from ``/etc/inittab`` or ``/etc/rc.local`` (other items' lines stay).
"""

from __future__ import annotations

import posixpath
import re

from ...errors import InvalidInput
from ...model import CustomizationItem
from ..access import FileAccess
from ..fsutil import restore, write_file
from ..items import check_params, expand

PARAMS = {"script", "description"}
SYSTEMD_DIR = "/etc/systemd/system"
SYSTEMD_BINARIES = ("/lib/systemd/systemd", "/usr/lib/systemd/systemd")
INITTAB = "/etc/inittab"
RC_LOCAL = "/etc/rc.local"
RC_LOCAL_SKELETON = "#!/bin/sh\n# made by Encompass for boot scripts\nexit 0\n"


def unit_paths(item: CustomizationItem) -> tuple[str, str]:
    """The systemd unit file and the drop-in that pulls it into ``multi-user.target``."""
    return (f"{SYSTEMD_DIR}/encompass-{item.key}.service",
            f"{SYSTEMD_DIR}/multi-user.target.d/encompass-{item.key}.conf")


def _runner(path: str) -> str:
    """A shell command that runs the script once: renamed .done after it succeeded."""
    return f"if [ -x {path} ]; then {path} && mv -f {path} {path}.done; fi"


def _marker(item: CustomizationItem) -> str:
    return f"# encompass:{item.key}"


def _has_systemd(fs: FileAccess) -> bool:
    # The binary alone decides (one look costs one volume access); the unit directory is made
    # when missing.
    return any(fs.exists(p) for p in SYSTEMD_BINARIES)


def _unit(item: CustomizationItem) -> str:
    what = item.params.get("description") or item.description or f"boot script {item.key}"
    path = item.path
    return (
        "# Made by Encompass: runs once, then the script is renamed .done\n"
        "[Unit]\n"
        f"Description=Encompass: {what}\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n"
        f"ConditionPathExists={path}\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"ExecStart={path}\n"
        f"ExecStartPost=/bin/mv -f {path} {path}.done\n"
        "StandardOutput=journal+console\n"
    )


def _remove_marked(text: str, marker: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.rstrip().endswith(marker))


class BootscriptCustomizer:
    """Install a run-once boot script."""

    needs_value = True

    def validate(self, item: CustomizationItem) -> None:
        check_params(item, PARAMS)
        if not re.fullmatch(r"/[A-Za-z0-9_./+-]+", item.path) or "/../" in item.path + "/":
            # The path goes into unit files and shell lines: keep it plain.
            raise InvalidInput(f"item '{item.key}': a boot script's path must be plain (letters, "
                               f"digits, / . _ - +), not {item.path!r}")

    def apply(self, fs: FileAccess, item: CustomizationItem, value: str, clone_name: str) -> None:
        script = expand(str(item.params.get("script", "{value}")), value, clone_name)
        if not script.startswith("#!"):
            script = "#!/bin/sh\n" + script
        if not script.endswith("\n"):
            script += "\n"
        write_file(fs, item.path, script.encode(), mode=0o755, uid=0, gid=0)
        if _has_systemd(fs):
            unit, dropin = unit_paths(item)
            write_file(fs, unit, _unit(item).encode(), mode=0o644, uid=0, gid=0)
            write_file(fs, dropin, f"[Unit]\nWants={posixpath.basename(unit)}\n".encode(),
                       mode=0o644, uid=0, gid=0)
        elif fs.exists(INITTAB):
            self._add_line(fs, INITTAB, self._inittab_line(fs, item), item)
        else:
            self._add_line(fs, RC_LOCAL, f"{_runner(item.path)} {_marker(item)}\n", item)

    def _inittab_line(self, fs: FileAccess, item: CustomizationItem) -> str:
        text = fs.read(INITTAB).decode("utf-8", errors="surrogateescape")
        busybox = any(line.startswith("::") for line in text.splitlines()) or fs.exists("/bin/busybox")
        ident = "" if busybox else "ec" + format(sum(item.key.encode()) % 100, "02d")
        levels = "" if busybox else "2345"
        return f"{ident}:{levels}:once:/bin/sh -c '{_runner(item.path)}' {_marker(item)}\n"

    def _add_line(self, fs: FileAccess, path: str, line: str, item: CustomizationItem) -> None:
        exists = fs.exists(path)
        text = fs.read(path).decode("utf-8", errors="surrogateescape") if exists else RC_LOCAL_SKELETON
        text = _remove_marked(text, _marker(item))
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        # rc.local usually ends with 'exit 0': the line goes before it.
        at = len(lines)
        if path == RC_LOCAL:
            for i in range(len(lines) - 1, -1, -1):
                if lines[i].strip() == "exit 0":
                    at = i
                    break
        lines.insert(at, line)
        info = fs.stat(path) if exists else None
        write_file(fs, path, "".join(lines).encode("utf-8", errors="surrogateescape"),
                   mode=info.mode if info else 0o755, uid=info.uid if info else 0,
                   gid=info.gid if info else 0)

    def revert(self, fs: FileAccess, item: CustomizationItem, parent_fs: FileAccess | None) -> None:
        for path in (item.path, *unit_paths(item)):
            if not restore(fs, parent_fs, path) and fs.exists(path):
                fs.remove(path)  # no parent to ask: these files are ours
        for path in (INITTAB, RC_LOCAL):
            if not fs.exists(path):
                continue
            raw = fs.read(path)
            text = _remove_marked(raw.decode("utf-8", errors="surrogateescape"), _marker(item))
            in_parent = parent_fs.exists(path) if parent_fs is not None else True
            if path == RC_LOCAL and text == RC_LOCAL_SKELETON and not in_parent:
                fs.remove(path)
            elif text.encode("utf-8", errors="surrogateescape") != raw:
                info = fs.stat(path)
                fs.write(path, text.encode("utf-8", errors="surrogateescape"), mode=info.mode,
                         uid=info.uid, gid=info.gid)
