"""Running the host tools that build the demo master, and reporting progress."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from encompass_core.errors import DriverError

Progress = Callable[[str], None] | None


def run_tool(command: list[str], tool: str, package: str, cwd: str | None = None,
             hint: str = "", timeout: float = 600) -> str:
    """Run ``command`` and return its stdout; a missing or failing tool is a :class:`DriverError`
    that names the Debian ``package`` providing it, and ``hint`` as another way out. A tool
    still running after ``timeout`` seconds (a download that hangs) is stopped."""
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DriverError(f"cannot build the demo master: {' '.join(command[:3])} did not finish in "
                          f"{timeout:g} s and was stopped" + (f". You may {hint}" if hint else "")) from None
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


def say(progress: Progress, message: str) -> None:
    if progress is not None:
        progress(message)
