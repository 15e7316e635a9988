"""Thin, checked calls of ``qemu-img`` (Debian package ``qemu-utils``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from .. import rundir
from ..errors import DriverError

DEFAULT_TIMEOUT = 120.0  # seconds: enough for metadata work (info, check, create)


def qemu_img(*args: str, timeout: float = DEFAULT_TIMEOUT, setting: str | None = None) -> str:
    """Run ``qemu-img ARGS``; its stdout, or a :class:`DriverError` carrying its stderr.

    It is a recorded helper (:mod:`encompass_core.rundir`), killed past ``timeout`` seconds:
    callers copying whole volumes pass a longer one and the ``setting`` it comes from.
    """
    exe = shutil.which("qemu-img")
    if exe is None:
        raise DriverError(
            "qemu-img is not installed; install the Debian package qemu-utils "
            "(./setup_plugins does this when run as root)"
        )
    done = rundir.run([exe, *args], f"qemu-img {args[0]}", timeout, setting,
                      stdin=subprocess.DEVNULL)
    stdout, stderr = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    if done.returncode != 0:
        message = (stderr or stdout).strip().splitlines()
        detail = message[-1] if message else f"exit status {done.returncode}"
        raise DriverError(f"qemu-img {args[0]} failed: {detail.removeprefix('qemu-img: ')}")
    return stdout


def info(path: str) -> dict[str, Any]:
    """``qemu-img info`` of one file (not its chain), as a dict."""
    return json.loads(qemu_img("info", "--output=json", "-U", path))


def sniff_format(path: str) -> str:
    """``qcow2`` when the file starts with the qcow2 magic, else ``raw``."""
    with open(path, "rb") as handle:
        return "qcow2" if handle.read(4) == b"QFI\xfb" else "raw"
