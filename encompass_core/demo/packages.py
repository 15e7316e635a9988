"""The Debian packages the demo master is made of: fetched into a cache, unpacked into a tree."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from encompass_core.errors import DriverError

from .tools import Progress, run_tool, say

KERNEL_METAPACKAGE = "linux-image-cloud-amd64"
BUSYBOX_PACKAGE = "busybox-static"

_KERNEL_DEB = re.compile(r"linux-image-(\d[^_]*-cloud-amd64)_[^_]+_amd64\.deb")
_BUSYBOX_DEB = re.compile(r"busybox-static_[^_]+_amd64\.deb")


def fetch_packages(cache: Path, progress: Progress = None) -> tuple[Path, Path]:
    """Return the cached kernel and busybox ``.deb`` files, downloading the missing ones."""
    cache.mkdir(parents=True, exist_ok=True)
    kernel = _newest(cache, _KERNEL_DEB)
    if kernel is None:
        meta = _download(cache, KERNEL_METAPACKAGE, progress)
        depends = run_tool(["dpkg-deb", "-f", str(meta), "Depends"], "dpkg-deb", "dpkg")
        names = [d.split()[0] for d in depends.split(",") if d.strip().startswith("linux-image-")]
        if not names:
            raise DriverError(f"cannot build the demo master: {meta.name} depends on no kernel")
        kernel = _download(cache, names[0], progress)
        meta.unlink()
    busybox = _newest(cache, _BUSYBOX_DEB) or _download(cache, BUSYBOX_PACKAGE, progress)
    return kernel, busybox


def kernel_release(kernel_deb: Path) -> str:
    """The kernel release (``6.1.0-10-cloud-amd64``) a kernel ``.deb`` of the cache carries."""
    return _KERNEL_DEB.fullmatch(kernel_deb.name).group(1)


def unpack(deb: Path, tree: Path, progress: Progress = None) -> None:
    """``dpkg-deb -x`` a package into ``tree``."""
    say(progress, f"unpacking {deb.name}")
    run_tool(["dpkg-deb", "-x", str(deb), str(tree)], "dpkg-deb", "dpkg",
             hint=f"delete {deb} to download it again")


def _newest(cache: Path, pattern: re.Pattern[str]) -> Path | None:
    found = [p for p in cache.iterdir() if pattern.fullmatch(p.name)]
    # Numbers compare as numbers: 6.1.0-10 is newer than 6.1.0-9.
    return max(found, key=lambda p: [int(part) if part.isdigit() else part
                                     for part in re.split(r"(\d+)", p.name)], default=None)


def _download(cache: Path, package: str, progress: Progress) -> Path:
    """``apt-get download`` one package into ``cache``, through a temporary directory."""
    say(progress, f"downloading {package}")
    command = ["apt-get", "download", "-q"]
    if os.geteuid() == 0:
        # apt drops to the _apt user, which may not write into the cache directory.
        command += ["-o", "APT::Sandbox::User=root"]
    hint = f"run apt-get update, or put the .deb of {package} into {cache} by hand"
    with tempfile.TemporaryDirectory(prefix="download-", dir=cache) as tmp:
        try:
            run_tool([*command, package], "apt-get", "apt", cwd=tmp, hint=hint)
        except DriverError:
            if os.geteuid() != 0:
                raise
            # A machine whose package lists were never fetched (or were cleaned): fetch, retry.
            say(progress, "updating the package lists (apt-get update)")
            run_tool(["apt-get", "update", "-q"], "apt-get", "apt", hint=hint)
            run_tool([*command, package], "apt-get", "apt", cwd=tmp, hint=hint)
        (deb,) = Path(tmp).glob("*.deb")
        return deb.rename(cache / deb.name)
