"""Thin, checked calls of ``qemu-img`` (Debian package ``qemu-utils``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from ..errors import DriverError


def qemu_img(*args: str, timeout: float | None = None) -> str:
    """Run ``qemu-img ARGS``; its stdout, or a :class:`DriverError` carrying its stderr."""
    exe = shutil.which("qemu-img")
    if exe is None:
        raise DriverError(
            "qemu-img is not installed; install the Debian package qemu-utils "
            "(./setup_plugins does this when run as root)"
        )
    try:
        done = subprocess.run(
            [exe, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise DriverError(f"qemu-img {args[0]} did not finish in {timeout} s") from exc
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        detail = message[-1] if message else f"exit status {done.returncode}"
        raise DriverError(f"qemu-img {args[0]} failed: {detail.removeprefix('qemu-img: ')}")
    return done.stdout


def info(path: str) -> dict[str, Any]:
    """``qemu-img info`` of one file (not its chain), as a dict."""
    return json.loads(qemu_img("info", "--output=json", "-U", path))


def sniff_format(path: str) -> str:
    """``qcow2`` when the file starts with the qcow2 magic, else ``raw``."""
    with open(path, "rb") as handle:
        return "qcow2" if handle.read(4) == b"QFI\xfb" else "raw"
