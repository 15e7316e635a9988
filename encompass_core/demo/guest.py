"""A tiny bootable Linux master for ``encompass demo`` and the hypervisor tests.

The master is built from two Debian packages, without root and without mounting anything:

- ``apt-get download`` fetches the Debian cloud kernel and ``busybox-static`` into a cache
  directory (reused on the next run); ``dpkg-deb -x`` unpacks them into a temporary tree.
- A gzip'ed newc initramfs, written here in Python, loads the virtio modules the cloud kernel
  builds as modules, mounts ``root=`` (ext4 on ``/dev/vda``) and ``switch_root``'s into it.
- The root filesystem is an ext4 raw image made by ``mke2fs -d`` from a tree written here.
  Its ``/sbin/init`` prints ``encompass-demo: hostname <name>`` on the console, runs the
  executable bootscripts of ``/etc/encompass/boot.d`` (where the ``bootscript`` customization
  item drops them) and powers the machine off, so a demo run ends by itself.

The kernel and the initramfs are also stored inside the root filesystem as ``/boot/vmlinuz``
and ``/boot/initrd.img``: a platform driver extracts them from a clone for direct kernel boot,
as pygrub does for Xen PV guests.
"""

from __future__ import annotations

import gzip
import io
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs

from encompass_core.errors import DriverError

#: Bump when the layout of the master changes, so cached masters are rebuilt.
BUILD_VERSION = 3
KERNEL_METAPACKAGE = "linux-image-cloud-amd64"
BUSYBOX_PACKAGE = "busybox-static"
#: Modules the guest needs to reach its disk; ext4 and the 8250 serial port are built in.
GUEST_MODULES = ("virtio_pci", "virtio_blk")
DISK_SIZE_MIB = 64
CMDLINE = "console=ttyS0 root=/dev/vda rw quiet"
HOSTNAME = "master"
BOOTSCRIPT_DIR = "/etc/encompass/boot.d"

_KERNEL_DEB = re.compile(r"linux-image-(\d[^_]*-cloud-amd64)_[^_]+_amd64\.deb")
_BUSYBOX_DEB = re.compile(r"busybox-static_[^_]+_amd64\.deb")

Progress = Callable[[str], None] | None
#: Names busybox lists as applets that the master provides itself.
_NOT_APPLETS = frozenset({"busybox", "init", "linuxrc"})


@attrs.frozen
class DemoMaster:
    """A built demo master: its raw ext4 disk and the kernel boot triple it carries."""

    disk: Path
    kernel: Path
    initrd: Path
    cmdline: str
    kernel_release: str


def build_demo_master(workdir: Path, cache: Path, progress: Progress = None) -> DemoMaster:
    """Build the demo master in ``workdir`` (``master.raw``, ``vmlinuz``, ``initrd.img``).

    Idempotent: when ``workdir`` already holds a master of this :data:`BUILD_VERSION` it is
    returned at once. Downloaded packages are kept in ``cache`` and reused. Raises
    :class:`DriverError` when a tool (apt-get, dpkg-deb, mke2fs, debugfs) is missing or fails.
    """
    workdir = Path(workdir)
    stamp = workdir / "demo-master.json"
    built = _read_stamp(stamp, workdir)
    if built is not None:
        return built
    workdir.mkdir(parents=True, exist_ok=True)
    kernel_deb, busybox_deb = fetch_packages(Path(cache), progress)
    with tempfile.TemporaryDirectory(prefix="demo-build-", dir=workdir) as tmp:
        tmpdir = Path(tmp)
        unpacked = tmpdir / "unpacked"
        for deb in (kernel_deb, busybox_deb):
            _say(progress, f"unpacking {deb.name}")
            _run(["dpkg-deb", "-x", str(deb), str(unpacked)], "dpkg-deb", "dpkg",
                 hint=f"delete {deb} to download it again")
        release = _KERNEL_DEB.fullmatch(kernel_deb.name).group(1)
        busybox = unpacked / "bin" / "busybox"
        applets = _busybox_applets(busybox)
        _say(progress, "writing the initramfs")
        initrd = tmpdir / "initrd.img"
        initrd.write_bytes(build_initramfs(unpacked, release, busybox, applets))
        kernel = tmpdir / "vmlinuz"
        shutil.copyfile(unpacked / "boot" / f"vmlinuz-{release}", kernel)
        _say(progress, "writing the root filesystem")
        tree = tmpdir / "root"
        write_root_tree(tree, busybox, applets, kernel, initrd)
        disk = tmpdir / "master.raw"
        make_ext4_image(tree, disk, DISK_SIZE_MIB)
        for path in (disk, kernel, initrd):
            os.replace(path, workdir / path.name)
    master = DemoMaster(
        disk=workdir / "master.raw",
        kernel=workdir / "vmlinuz",
        initrd=workdir / "initrd.img",
        cmdline=CMDLINE,
        kernel_release=release,
    )
    _write_stamp(stamp, master)
    _say(progress, f"demo master ready: {master.disk}")
    return master


# --- packages -----------------------------------------------------------------------------


def fetch_packages(cache: Path, progress: Progress = None) -> tuple[Path, Path]:
    """Return the cached kernel and busybox ``.deb`` files, downloading the missing ones."""
    cache.mkdir(parents=True, exist_ok=True)
    kernel = _newest(cache, _KERNEL_DEB)
    if kernel is None:
        meta = _download(cache, KERNEL_METAPACKAGE, progress)
        depends = _run(["dpkg-deb", "-f", str(meta), "Depends"], "dpkg-deb", "dpkg")
        names = [d.split()[0] for d in depends.split(",") if d.strip().startswith("linux-image-")]
        if not names:
            raise DriverError(f"cannot build the demo master: {meta.name} depends on no kernel")
        kernel = _download(cache, names[0], progress)
        meta.unlink()
    busybox = _newest(cache, _BUSYBOX_DEB) or _download(cache, BUSYBOX_PACKAGE, progress)
    return kernel, busybox


def _newest(cache: Path, pattern: re.Pattern[str]) -> Path | None:
    found = [p for p in cache.iterdir() if pattern.fullmatch(p.name)]
    # Numbers compare as numbers: 6.1.0-10 is newer than 6.1.0-9.
    return max(found, key=lambda p: [int(part) if part.isdigit() else part
                                     for part in re.split(r"(\d+)", p.name)], default=None)


def _download(cache: Path, package: str, progress: Progress) -> Path:
    """``apt-get download`` one package into ``cache``, through a temporary directory."""
    _say(progress, f"downloading {package}")
    command = ["apt-get", "download", "-q"]
    if os.geteuid() == 0:
        # apt drops to the _apt user, which may not write into the cache directory.
        command += ["-o", "APT::Sandbox::User=root"]
    with tempfile.TemporaryDirectory(prefix="download-", dir=cache) as tmp:
        _run([*command, package], "apt-get", "apt", cwd=tmp,
             hint=f"put the .deb of {package} into {cache} by hand on a non-Debian system")
        (deb,) = Path(tmp).glob("*.deb")
        return deb.rename(cache / deb.name)


# --- kernel modules -----------------------------------------------------------------------


def module_load_order(modules_dir: Path, wanted: Iterable[str]) -> list[Path]:
    """The ``.ko`` files to load, dependencies first, skipping modules built into the kernel.

    Debian ships no ``modules.dep`` (depmod writes it on install), so dependencies are read
    from each module's ``.modinfo`` ELF section.
    """
    builtin = {
        _module_name(line) for line in (modules_dir / "modules.builtin").read_text().split()
    }
    index = {
        _module_name(p.name): p
        for pattern in ("*.ko", "*.ko.xz") for p in (modules_dir / "kernel").rglob(pattern)
    }
    order: list[Path] = []

    def visit(name: str) -> None:
        name = _module_name(name)
        if name in builtin or index.get(name) in order:
            return
        if name not in index:
            raise DriverError(f"cannot build the demo initramfs: no kernel module {name!r}")
        for dependency in _modinfo(index[name]).get("depends", "").split(","):
            if dependency:
                visit(dependency)
        order.append(index[name])

    for name in wanted:
        visit(name)
    return order


def _module_name(path: str) -> str:
    return Path(path).name.removesuffix(".xz").removesuffix(".ko").replace("-", "_")


def module_bytes(ko: Path) -> bytes:
    """A module's ELF bytes; ``.ko.xz`` (newer Debian kernels) is decompressed here, so the
    initramfs needs no decompressing insmod."""
    data = ko.read_bytes()
    return lzma.decompress(data) if ko.name.endswith(".xz") else data


def _modinfo(ko: Path) -> dict[str, str]:
    """The ``key=value`` strings of an ELF64 little-endian kernel module's ``.modinfo``."""
    data = module_bytes(ko)
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(index: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from(
            "<IIQQQQ", data, shoff + index * shentsize
        )
        return name, offset, size

    _, names_offset, _ = section(shstrndx)
    for index in range(shnum):
        name, offset, size = section(index)
        if data[names_offset + name:].startswith(b".modinfo\0"):
            fields = data[offset:offset + size].split(b"\0")
            return dict(f.decode().partition("=")[::2] for f in fields if b"=" in f)
    return {}


# --- initramfs ----------------------------------------------------------------------------

INITRAMFS_INIT = """\
#!/bin/sh
# encompass demo initramfs: load the disk drivers, mount root=, switch_root into it.
export PATH=/bin:/sbin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
for module in {modules}; do insmod /lib/modules/$module.ko; done
root=/dev/vda fstype=ext4 mode=rw
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    root=*) root="${{arg#root=}}" ;;
    rootfstype=*) fstype="${{arg#rootfstype=}}" ;;
    ro|rw) mode="$arg" ;;
  esac
done
tries=0
while [ ! -b "$root" ] && [ $tries -lt 100 ]; do usleep 100000; tries=$((tries + 1)); done
if ! mount -t "$fstype" -o "$mode" "$root" /newroot; then
  echo "encompass-demo: cannot mount $root, powering off"
  poweroff -f
fi
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /sbin/init
"""


def build_initramfs(unpacked: Path, release: str, busybox: Path, applets: list[str]) -> bytes:
    """A gzip'ed newc cpio archive: busybox, the guest modules and ``/init``."""
    modules = module_load_order(unpacked / "lib" / "modules" / release, GUEST_MODULES)
    archive = CpioWriter()
    for directory in ("bin", "sbin", "dev", "proc", "sys", "newroot", "lib", "lib/modules"):
        archive.directory(directory)
    # The kernel opens /dev/console before /init runs, before devtmpfs is mounted.
    archive.char_device("dev/console", 0o600, 5, 1)
    archive.file("bin/busybox", busybox.read_bytes(), 0o755)
    for name in sorted({Path(applet).name for applet in applets} - _NOT_APPLETS):
        archive.symlink(f"bin/{name}", "busybox")
    for ko in modules:
        archive.file(f"lib/modules/{_module_name(ko.name)}.ko", module_bytes(ko), 0o644)
    names = " ".join(_module_name(ko.name) for ko in modules)
    archive.file("init", INITRAMFS_INIT.format(modules=names).encode(), 0o755)
    return gzip.compress(archive.finish(), compresslevel=6, mtime=0)


class CpioWriter:
    """Writes a newc ("070701") cpio archive in memory: the format the kernel unpacks."""

    def __init__(self) -> None:
        self._out = io.BytesIO()
        self._inode = 1

    def directory(self, name: str, mode: int = 0o755) -> None:
        self._entry(name, 0o040000 | mode, b"", nlink=2)

    def file(self, name: str, data: bytes, mode: int) -> None:
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, 0o120777, target.encode())

    def char_device(self, name: str, mode: int, major: int, minor: int) -> None:
        self._entry(name, 0o020000 | mode, b"", rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0, b"", inode=0, nlink=1)
        return self._out.getvalue()

    def _entry(self, name: str, mode: int, data: bytes, nlink: int = 1,
               rdev: tuple[int, int] = (0, 0), inode: int | None = None) -> None:
        if inode is None:
            inode, self._inode = self._inode, self._inode + 1
        encoded = name.encode() + b"\0"
        fields = (inode, mode, 0, 0, nlink, 0, len(data), 0, 0, *rdev, len(encoded), 0)
        self._out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + encoded)
        self._pad()
        self._out.write(data)
        self._pad()

    def _pad(self) -> None:
        self._out.write(b"\0" * (-self._out.tell() % 4))


# --- root filesystem ----------------------------------------------------------------------

ROOT_INIT = f"""\
#!/bin/sh
# encompass demo init: say who we are, run rc.local and the bootscripts, power off.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
[ -c /dev/null ] || mount -t devtmpfs devtmpfs /dev
hostname -F /etc/hostname
echo "encompass-demo: hostname $(cat /etc/hostname)"
[ -x /etc/init.d/rcS ] && /etc/init.d/rcS
if [ -x /etc/rc.local ]; then
  echo "encompass-demo: running /etc/rc.local"
  /etc/rc.local
fi
for script in {BOOTSCRIPT_DIR}/*; do
  [ -f "$script" ] && [ -x "$script" ] || continue
  echo "encompass-demo: bootscript $script"
  "$script"
  echo "encompass-demo: bootscript $script exited $?"
done
echo "encompass-demo: powering off"
sync
mount -o remount,ro /
poweroff -f
"""


def write_root_tree(tree: Path, busybox: Path, applets: list[str], kernel: Path,
                    initrd: Path) -> None:
    """Write the root filesystem's files, with their modes, under ``tree``."""
    for directory, mode in (
        ("", 0o755), ("bin", 0o755), ("sbin", 0o755), ("usr", 0o755), ("usr/bin", 0o755),
        ("usr/sbin", 0o755), ("etc", 0o755), ("etc/init.d", 0o755),
        ("etc/encompass", 0o755), (BOOTSCRIPT_DIR.lstrip("/"), 0o755), ("boot", 0o755),
        ("dev", 0o755), ("proc", 0o555), ("sys", 0o555), ("run", 0o755), ("root", 0o700),
        ("tmp", 0o1777), ("var", 0o755), ("var/tmp", 0o1777), ("mnt", 0o755),
    ):
        path = tree / directory
        path.mkdir(exist_ok=True)
        path.chmod(mode)
    _put(tree / "bin/busybox", busybox.read_bytes(), 0o755)
    _put(tree / "sbin/init", ROOT_INIT.encode(), 0o755)
    _put(tree / "etc/hostname", f"{HOSTNAME}\n".encode(), 0o644)
    _put(tree / "etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{HOSTNAME}\n".encode(), 0o644)
    _put(tree / "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
    _put(tree / "etc/group", b"root:x:0:\n", 0o644)
    _put(tree / "boot/vmlinuz", kernel.read_bytes(), 0o644)
    _put(tree / "boot/initrd.img", initrd.read_bytes(), 0o644)
    # Links last: busybox lists sbin/init and linuxrc too, and a link must not shadow a file.
    for applet in applets:
        link = tree / applet
        if link.name not in _NOT_APPLETS and not link.exists() and not link.is_symlink():
            link.symlink_to(os.path.relpath(tree / "bin/busybox", link.parent))


def make_ext4_image(tree: Path, disk: Path, size_mib: int) -> None:
    """``mke2fs -d`` a sparse ext4 image of ``tree``; every inode owned by root."""
    _run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "encompass-demo", "-E", "root_owner=0:0",
          "-d", str(tree), str(disk), f"{size_mib}M"], "mke2fs", "e2fsprogs")
    if os.geteuid() != 0:
        # mke2fs -d copies the builder's uid/gid; debugfs rewrites them without mounting.
        commands = []
        for path in sorted(tree.rglob("*")):
            inside = "/" + path.relative_to(tree).as_posix()
            commands += [f'sif "{inside}" uid 0', f'sif "{inside}" gid 0']
        script = disk.with_suffix(".debugfs")
        script.write_text("\n".join(commands) + "\n")
        _run(["debugfs", "-w", "-f", str(script), str(disk)], "debugfs", "e2fsprogs")
        script.unlink()


def _busybox_applets(busybox: Path) -> list[str]:
    """Applet paths (``bin/cat``, ``sbin/poweroff``, ...) from the busybox binary itself."""
    return _run([str(busybox), "--list-full"], "busybox", "busybox-static").split()


def _put(path: Path, data: bytes, mode: int) -> None:
    path.write_bytes(data)
    path.chmod(mode)


# --- plumbing -----------------------------------------------------------------------------


def _run(command: list[str], tool: str, package: str, cwd: str | None = None,
         hint: str = "") -> str:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise DriverError(
            f"cannot build the demo master: {tool} is not installed. "
            f"Install the Debian package {package!r}" + (f", or {hint}" if hint else "")
        ) from None
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise DriverError(
            f"cannot build the demo master: {' '.join(command[:3])} failed "
            f"(exit {done.returncode}): {tail}" + (f". You may {hint}" if hint else "")
        )
    return done.stdout


def _read_stamp(stamp: Path, workdir: Path) -> DemoMaster | None:
    try:
        document = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return None
    if document.get("build_version") != BUILD_VERSION:
        return None
    master = DemoMaster(
        disk=workdir / document["disk"], kernel=workdir / document["kernel"],
        initrd=workdir / document["initrd"], cmdline=document["cmdline"],
        kernel_release=document["kernel_release"],
    )
    if all(p.is_file() for p in (master.disk, master.kernel, master.initrd)):
        return master
    return None


def _write_stamp(stamp: Path, master: DemoMaster) -> None:
    # Names relative to the work directory, so a moved work directory stays valid.
    document = {
        "build_version": BUILD_VERSION,
        **{key: str(value) for key, value in attrs.asdict(master).items()},
        **{key: getattr(master, key).name for key in ("disk", "kernel", "initrd")},
    }
    temporary = stamp.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(temporary, stamp)


def _say(progress: Progress, message: str) -> None:
    if progress is not None:
        progress(message)
