"""Guest layouts for the service, network and kernel item tests, built from Debian packages.

Unit files and init scripts come from the real ``.deb`` files (``dpkg-deb -x``): the apt cache
when it holds them, else ``apt-get download`` into the tests' cache once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from encompass_core.testing.demo import test_cache

APT_ARCHIVES = Path("/var/cache/apt/archives")
SERVICE_PACKAGES = ("openssh-server", "rsync", "systemd")


def deb(package: str) -> Path:
    """The ``.deb`` of ``package`` (amd64 or all), downloaded once into the tests' cache."""
    for directory in (APT_ARCHIVES, test_cache() / "item-packages"):
        found = sorted(directory.glob(f"{package}_*.deb")) if directory.is_dir() else []
        if found:
            return found[-1]
    target = test_cache() / "item-packages"
    target.mkdir(exist_ok=True)
    command = ["apt-get", "download", "-q", package]
    if os.geteuid() == 0:
        command[2:2] = ["-o", "APT::Sandbox::User=root"]
    subprocess.run(command, cwd=target, check=True, capture_output=True)
    return sorted(target.glob(f"{package}_*.deb"))[-1]


def unpack(root: Path, *packages: str) -> Path:
    """``dpkg-deb -x`` each package into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for package in packages:
        subprocess.run(["dpkg-deb", "-x", str(deb(package)), str(root)], check=True)
    return root


def systemd_guest(root: Path) -> Path:
    """A Debian guest's systemd side: systemd itself, ssh and rsync units, an empty /etc/systemd/system."""
    unpack(root, *SERVICE_PACKAGES)
    (root / "etc" / "systemd" / "system").mkdir(parents=True, exist_ok=True)
    return root


def sysv_guest(root: Path) -> Path:
    """A SysV-init guest: the packages' init scripts and empty /etc/rc?.d, no systemd."""
    unpack(root, "openssh-server", "rsync")
    shutil.rmtree(root / "lib" / "systemd")
    for level in "0123456S":
        (root / "etc" / f"rc{level}.d").mkdir(parents=True, exist_ok=True)
    # As Debian's installation left it: ssh started in 2-5 (insserv numbering).
    for level in "2345":
        (root / "etc" / f"rc{level}.d" / "S01ssh").symlink_to("../init.d/ssh")
    return root


def links(root: Path) -> dict[str, str]:
    """Every symlink under ``root`` and its target."""
    return {str(p.relative_to(root)): os.readlink(p) for p in sorted(root.rglob("*")) if p.is_symlink()}


def tree_state(root: Path) -> dict[str, object]:
    """Everything a revert must restore: each path's kind, mode, owner, bytes or link target."""
    state: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            what: object = ("link", os.readlink(path))
        elif path.is_dir():
            what = ("dir",)
        else:
            what = ("file", path.read_bytes())
        state[str(path.relative_to(root))] = (*what, info.st_mode, info.st_uid, info.st_gid)
    return state


def systemctl(root: Path, *args: str) -> subprocess.CompletedProcess:
    """``systemctl --root=ROOT ...`` offline (SysV scripts left alone, as the item does)."""
    env = dict(os.environ, SYSTEMCTL_SKIP_SYSV="1")
    return subprocess.run(["systemctl", f"--root={root}", *args], capture_output=True, text=True, env=env)


def is_enabled(root: Path, *units: str) -> list[str]:
    return systemctl(root, "is-enabled", *units).stdout.split()


def extract(image: Path, target: Path, partition_offset: int = 0) -> Path:
    """The whole ext filesystem of a raw or qcow2 image as a tree (``debugfs rdump``), to be
    read by the guest's own tools (systemctl, ifquery, grub-editenv)."""
    raw = image
    if image.suffix == ".qcow2":
        raw = target.with_name(target.name + ".raw")
        subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", str(image), str(raw)], check=True)
    target.mkdir(parents=True)
    device = f"{raw}?offset={partition_offset}" if partition_offset else str(raw)
    subprocess.run(["debugfs", "-R", f"rdump / {target}", device], check=True, capture_output=True)
    return target
