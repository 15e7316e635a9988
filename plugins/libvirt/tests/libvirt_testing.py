"""Helpers of the libvirt plugin's tests (a module of its own: ``conftest`` names are shared)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
ENCOMPASS = Path(sys.executable).with_name("encompass")
BOOT_TIMEOUT = 120.0


def add_platform(home: Path, name: str, settings: Mapping[str, object]) -> None:
    """Append a ``[platforms.NAME]`` table to the home's encompass.toml."""
    lines = [f"\n[platforms.{name}]"]
    for key, value in settings.items():
        lines.append(f"{key} = {value!r}".replace("'", '"') if isinstance(value, str)
                     else f"{key} = {value}")
    with open(home / "encompass.toml", "a", encoding="utf-8") as config:
        config.write("\n".join(lines) + "\n")


def import_demo(run_cli: Callable[..., Any], master: Any, name: str = "demo",
                direct_kernel: bool = False) -> None:
    """Import the demo master with the hardware profile the kvm driver reads. Its machines boot
    the disk through their firmware (SeaBIOS, then syslinux), or with ``direct_kernel`` the
    kernel the driver extracts from the root partition."""
    boot = ("--sw", "kernel=/boot/vmlinuz", "--sw", "initrd=/boot/initrd.img",
            "--sw", f"cmdline={master.cmdline}",
            "--sw", f"boot_partition={master.root_partition}") if direct_kernel else ()
    result = run_cli("master", "import", name, master.disk, "--hw", "memory=256M", *boot)
    assert result.code == 0, result.err


def wait_for_line(log: Path, text: str, timeout: float = BOOT_TIMEOUT) -> float:
    """Poll the console log until it holds ``text``; seconds waited. Fails with the log."""
    started = time.monotonic()
    delay = 0.02
    content = ""
    while time.monotonic() - started < timeout:
        try:
            content = log.read_text(errors="replace")
        except FileNotFoundError:
            content = ""
        if text in content:
            return time.monotonic() - started
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    raise AssertionError(f"no {text!r} on the console within {timeout:.0f} s; {log} holds:\n{content}")


def cli_env(home: Path) -> dict[str, str]:
    """The environment of an ``encompass`` subprocess working in ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCOMPASS_")}
    env["ENCOMPASS_HOME"] = str(home)
    env["XDG_CACHE_HOME"] = str(home.parent / "xdg-cache")
    env["COLUMNS"] = "200"
    return env
