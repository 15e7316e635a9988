"""Driving e2fsprogs ``debugfs``: batches of requests, quoting, and output parsing.

debugfs exits 0 even when a request fails ("write: Ext2 file already exists"), so a batch's
result is judged by its stderr and, for writes, by reading back (the caller's job): the exit
status is never trusted alone. Requests address directories by inode (``<12>``) and files
by a single quoted name in the current directory, so debugfs never resolves a multi-component
path itself on our behalf.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

import attrs

from encompass_core.customization.openers.base import kind_of_mode
from encompass_core.customization.openers.resolve import Entry
from encompass_core.errors import DriverError, InvalidInput

_BANNER = re.compile(rb"^debugfs \d+\.\d+")
_BENIGN_STDERR = (b"catastrophic mode - not reading inode or group bitmaps",)
_LISTING_LINE = re.compile(rb"^/(\d+)/([0-7]+)/(\d+)/(\d+)/(.*)/(\d*)/$")
_TIMEOUT = 600


def debugfs_path() -> str | None:
    """The debugfs executable (Debian installs it in /sbin), or None."""
    return shutil.which("debugfs") or next(
        (path for path in ("/usr/sbin/debugfs", "/sbin/debugfs") if os.access(path, os.X_OK)),
        None,
    )


def quote(name: str, label: str) -> str:
    """One name as a debugfs argument: in double quotes, a quote doubled."""
    if "\n" in name or "\r" in name or "/" in name or "\0" in name:
        raise InvalidInput(f"the name {name!r} in {label} cannot be handled by debugfs")
    return '"' + name.replace('"', '""') + '"'


def parse_listing(output: bytes) -> dict[str, Entry]:
    """The entries of ``ls -p`` output by name (without ``.`` and ``..``), plus ``.`` itself."""
    entries: dict[str, Entry] = {}
    for line in output.split(b"\n"):
        match = _LISTING_LINE.match(line)
        if match is None:
            continue
        inode, mode, uid, gid, raw_name, size = match.groups()
        name = os.fsdecode(raw_name)
        if name == ".." or (name == "." and "." in entries):
            continue
        mode_value = int(mode, 8)
        entries[name] = Entry(
            kind=kind_of_mode(mode_value),
            mode=mode_value,
            uid=int(uid),
            gid=int(gid),
            size=int(size or 0),
            inode=int(inode),
        )
    return entries


@attrs.frozen
class BatchResult:
    """What one debugfs run printed: stdout split per request, and its error lines."""

    outputs: list[bytes]
    errors: list[str]


class Debugfs:
    """Runs debugfs on one ext filesystem: a file, or a region of it from ``offset``."""

    def __init__(self, image_path: str, offset: int, label: str) -> None:
        executable = debugfs_path()
        if executable is None:
            raise DriverError(f"cannot open {label}: debugfs is not installed; install e2fsprogs")
        self.executable = executable
        self.label = label
        self._linkdir: str | None = None
        if "?" in image_path:  # unix_io would read the rest as its options: hide it
            self._linkdir = tempfile.mkdtemp(prefix="encompass-debugfs-")
            link = os.path.join(self._linkdir, "image")
            os.symlink(os.path.abspath(image_path), link)
            image_path = link
        self.device = f"{image_path}?offset={offset}" if offset else image_path

    def _run(self, arguments: list[str], stdin: bytes | None) -> tuple[bytes, list[str]]:
        try:
            done = subprocess.run(
                [self.executable, *arguments, self.device],
                input=stdin,
                capture_output=True,
                timeout=_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise DriverError(f"debugfs failed on {self.label}: {error}") from error
        errors = [
            os.fsdecode(line).strip()
            for line in done.stderr.splitlines()
            if line.strip() and not _BANNER.match(line) and line.strip() not in _BENIGN_STDERR
        ]
        if done.returncode != 0 and not errors:
            errors.append(f"debugfs exited with status {done.returncode}")
        return done.stdout, errors

    def request(self, command: str, catastrophic: bool = False) -> tuple[bytes, list[str]]:
        """Run one read-only request (``-R``); its stdout is exactly the request's output."""
        options = ["-c"] if catastrophic else []
        return self._run([*options, "-R", command], None)

    def batch(self, commands: list[str], writable: bool = False) -> BatchResult:
        """Run requests in one debugfs process (``-f -``); stdout is split per request."""
        script = "".join(command + "\n" for command in commands)
        stdout, errors = self._run(["-w", "-f", "-"] if writable else ["-f", "-"], os.fsencode(script))
        outputs = []
        position = 0
        for index, command in enumerate(commands):
            marker = b"debugfs: " + os.fsencode(command) + b"\n"
            start = stdout.find(marker, position)
            if start < 0:
                raise DriverError(f"debugfs on {self.label} did not run {command!r}: {'; '.join(errors)}")
            start += len(marker)
            if index + 1 < len(commands):
                following = b"debugfs: " + os.fsencode(commands[index + 1]) + b"\n"
                end = stdout.find(following, start)
                end = len(stdout) if end < 0 else end
            else:
                end = len(stdout)
            outputs.append(stdout[start:end])
            position = end
        return BatchResult(outputs, errors)

    def close(self) -> None:
        """Remove the helper link, if any."""
        if self._linkdir is not None:
            shutil.rmtree(self._linkdir, ignore_errors=True)
            self._linkdir = None
