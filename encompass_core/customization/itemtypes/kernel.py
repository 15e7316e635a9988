"""``kernel``: which installed kernel (and its initrd) the image boots.

The item's path is the directory holding the kernels (usually ``/boot``); the value is a
kernel version installed there (``6.1.0-10-amd64``: ``vmlinuz-6.1.0-10-amd64`` must exist).
Everything found is pointed at it:

* GRUB (``grub/grub.cfg`` or ``grub2/grub.cfg``): the first non-recovery entry loading that
  kernel becomes the default, by its id (``submenu id>entry id``): as ``saved_entry`` in
  ``grubenv`` when ``grub.cfg`` reads it (``GRUB_DEFAULT=saved``), else in ``grub.cfg``'s
  ``set default=`` lines;
* extlinux/syslinux (``extlinux/extlinux.conf``, ``extlinux.conf``, ``syslinux/syslinux.cfg``,
  ``syslinux.cfg``): ``DEFAULT`` names the label loading that kernel;
* Debian's ``vmlinuz``/``initrd.img`` links (in the directory, and at the volume's root when
  the path is ``/boot``): pointed at that version's files, so a software profile naming
  ``/boot/vmlinuz`` (direct kernel boot) follows too.

The kernel depends on the hardware: the item is re-applied when its image moves to other
hardware (see :func:`~encompass_core.customization.items.is_hardware_dependent`;
``--param on=image`` says otherwise). Revert: every file and link above as in the parent image.
"""

from __future__ import annotations

import posixpath
import re
import shlex

from ...errors import InvalidInput, NotFound
from ...model import CustomizationItem
from ..access import FileAccess
from ..fsutil import restore, set_link, write_file
from ..items import check_params

PARAMS: set[str] = set()
GRUB_DIRS = ("grub", "grub2")
EXTLINUX_CONFIGS = ("extlinux/extlinux.conf", "extlinux.conf", "syslinux/syslinux.cfg", "syslinux.cfg")
INITRD_NAMES = ("initrd.img-{v}", "initramfs-{v}.img", "initrd-{v}", "initramfs-{v}")
GRUBENV_SIZE = 1024
GRUBENV_HEADER = "# GRUB Environment Block\n"
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_~-]*")
_LINUX = re.compile(r"^\s*linux(?:16|efi)?\s+(\S+)(.*)$")
_DEFAULT = re.compile(r'^(\s*set\s+default=)("[^"$]*"|\'[^\'$]*\'|[^\s"\'$]+)[ \t]*$')


def _join(boot: str, name: str) -> str:
    return posixpath.normpath(posixpath.join(boot, name))


def installed(fs: FileAccess, boot: str) -> list[str]:
    """The kernel versions with a ``vmlinuz-VERSION`` in ``boot``."""
    if not fs.exists(boot):
        return []
    return [n.removeprefix("vmlinuz-") for n in fs.listdir(boot) if n.startswith("vmlinuz-")]


def _link_paths(boot: str) -> list[tuple[str, str]]:
    """(link, directory its target is relative to) of the Debian kernel links."""
    pairs = [(_join(boot, "vmlinuz"), boot), (_join(boot, "initrd.img"), boot)]
    if boot.rstrip("/") == "/boot":
        pairs += [("/vmlinuz", "/"), ("/initrd.img", "/")]
    return pairs


def _words(line: str) -> list[str]:
    """A GRUB command line's words, quotes removed (split on blanks when the quotes do not pair)."""
    try:
        return shlex.split(line, comments=True, posix=True)
    except ValueError:
        return line.split()


def _grub_entry(text: str, kernel: str) -> str | None:
    """The id path (``submenu>entry``) of the first non-recovery entry loading ``kernel``."""
    stack: list[str | None] = []  # ids of open blocks (None: a block that is no menu)
    pending = None
    for line in text.splitlines():
        stripped = line.strip()
        words = _words(stripped) if stripped.startswith(("menuentry", "submenu")) else []
        if words[:1] in (["menuentry"], ["submenu"]):
            ident = words[1] if len(words) > 1 else ""
            for i, word in enumerate(words[:-1]):
                if word in ("$menuentry_id_option", "--id"):
                    ident = words[i + 1]
            stack.append(ident)
            pending = None
            continue
        match = _LINUX.match(line)
        if match and stack and stack[-1] is not None and posixpath.basename(match.group(1)) == kernel:
            if not re.search(r"\b(single|recovery)\b", match.group(2)):
                pending = ">".join(i for i in stack if i is not None)
        if stripped.endswith("{") and not words:
            stack.append(None)
        if stripped == "}" and stack:
            stack.pop()
            if pending:
                return pending
    return None


def _grubenv(current: bytes | None, saved: str) -> bytes:
    variables = []
    if current:
        for line in current.decode("utf-8", errors="replace").splitlines():
            if line and not line.startswith("#") and "=" in line and not line.startswith("saved_entry="):
                variables.append(line)
    body = GRUBENV_HEADER + "".join(f"{v}\n" for v in [f"saved_entry={saved}", *variables])
    if len(body.encode()) > GRUBENV_SIZE:
        raise InvalidInput("the GRUB environment block would exceed 1024 bytes")
    return (body + "#" * (GRUBENV_SIZE - len(body.encode()))).encode()


def _extlinux_label(text: str, kernel: str) -> str | None:
    label = None
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        keyword = words[0].upper()
        if keyword == "LABEL" and len(words) > 1:
            label = words[1]
        elif keyword in ("KERNEL", "LINUX") and len(words) > 1 and label:
            if posixpath.basename(words[1]) == kernel:
                return label
    return None


class KernelCustomizer:
    """Make one installed kernel the one that boots."""

    needs_value = True

    def validate(self, item: CustomizationItem) -> None:
        check_params(item, PARAMS)

    def check_value(self, item: CustomizationItem, value: str) -> None:
        """Refuse what cannot be a kernel version before anything is written."""
        if not _VERSION.fullmatch(value.strip()):
            raise InvalidInput(f"item '{item.key}': {value.strip()!r} is not a kernel version like "
                               "6.1.0-10-amd64")

    def _paths(self, item: CustomizationItem) -> list[str]:
        boot = item.path
        paths = [_join(boot, f"{d}/{n}") for d in GRUB_DIRS for n in ("grub.cfg", "grubenv")]
        paths += [_join(boot, c) for c in EXTLINUX_CONFIGS]
        return paths + [link for link, _ in _link_paths(boot)]

    def apply(self, fs: FileAccess, item: CustomizationItem, value: str, clone_name: str) -> None:
        boot, version = item.path, value.strip()
        kernels = installed(fs, boot)
        if not _VERSION.fullmatch(version) or version not in kernels:
            raise NotFound(f"item '{item.key}': no kernel {version!r} in {boot} (installed: "
                           f"{', '.join(sorted(kernels)) or 'none'}); give one of them")
        kernel = f"vmlinuz-{version}"
        initrd = next((name for name in (n.format(v=version) for n in INITRD_NAMES)
                       if fs.exists(_join(boot, name))), None)
        changes: list[tuple[str, bytes]] = []  # planned first: nothing written if one fails
        for directory in GRUB_DIRS:
            config = _join(boot, f"{directory}/grub.cfg")
            if not fs.exists(config):
                continue
            text = fs.read(config).decode("utf-8", errors="surrogateescape")
            entry = _grub_entry(text, kernel)
            if entry is None:
                raise NotFound(f"item '{item.key}': {config} has no entry for {kernel}; run update-grub "
                               "in the guest, or pick an installed kernel it lists")
            if "${saved_entry}" in text:
                env = _join(boot, f"{directory}/grubenv")
                changes.append((env, _grubenv(fs.read(env) if fs.exists(env) else None, entry)))
            else:
                lines = [_DEFAULT.sub(lambda m, e=entry: f'{m.group(1)}"{e}"', line)
                         for line in text.splitlines(keepends=True)]
                changes.append((config, "".join(lines).encode("utf-8", errors="surrogateescape")))
        for name in EXTLINUX_CONFIGS:
            config = _join(boot, name)
            if not fs.exists(config):
                continue
            text = fs.read(config).decode("utf-8", errors="surrogateescape")
            label = _extlinux_label(text, kernel)
            if label is None:
                raise NotFound(f"item '{item.key}': {config} has no LABEL loading {kernel}; add one, "
                               "or pick a kernel it lists")
            lines = [line for line in text.splitlines(keepends=True)
                     if not line.strip().upper().startswith("DEFAULT ")]
            text = f"DEFAULT {label}\n{''.join(lines)}"
            changes.append((config, text.encode("utf-8", errors="surrogateescape")))
        links = []
        for link, base in _link_paths(boot):
            if fs.exists(link) and fs.stat(link).kind == "symlink":
                name = kernel if posixpath.basename(link) == "vmlinuz" else initrd
                if name is not None:
                    links.append((link, posixpath.relpath(_join(boot, name), base)))
        if not changes and not links:
            raise NotFound(f"item '{item.key}': no GRUB, extlinux or syslinux configuration and no "
                           f"vmlinuz link in {boot}; check the item's path")
        for path, data in changes:
            if fs.read(path) != data if fs.exists(path) else True:
                write_file(fs, path, data)
        for link, target in links:
            set_link(fs, link, target)

    def revert(self, fs: FileAccess, item: CustomizationItem, parent_fs: FileAccess | None) -> None:
        for path in self._paths(item):
            restore(fs, parent_fs, path)
