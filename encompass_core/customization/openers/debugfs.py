"""Driving e2fsprogs ``debugfs``: one process per session, fed requests; quoting; parsing.

A :class:`DebugfsSession` starts one ``debugfs -f -`` process and sends it requests on its
stdin for as long as the volume is open; each request is followed by a comment line holding
a random token, which debugfs echoes once the request is done (``-f`` mode writes stdout and
stderr unbuffered), so a request's output is exactly what came before its token: no name or
content in the image can fake the end of an output. Changes made with ``-w`` reach the image
when the process ends (:meth:`DebugfsSession.finish`).

debugfs exits 0 even when a request fails ("write: Ext2 file already exists"), so a request's
result is judged by its stderr and, for writes, by reading back (the caller's job): the exit
status is never trusted alone. Requests address directories by inode (``<12>``) and files
by a single quoted name in the current directory, so debugfs never resolves a multi-component
path itself on our behalf.
"""

from __future__ import annotations

import os
import re
import secrets
import select
import selectors
import shutil
import subprocess
import time

import attrs

from encompass_core import rundir
from encompass_core.customization.openers.base import kind_of_mode
from encompass_core.customization.openers.extstate import CLEAN_AGAIN, prepare_for_writing
from encompass_core.customization.openers.resolve import NAME_MAX, Entry
from encompass_core.errors import DriverError, InvalidInput

_BANNER = re.compile(rb"^debugfs \d+\.\d+")
_BENIGN_STDERR = (b"catastrophic mode - not reading inode or group bitmaps",)
_LISTING_LINE = re.compile(rb"^/(\d+)/([0-7]+)/(\d+)/(\d+)/(.*)/(\d*)/$")
DEFAULT_TIMEOUT = 600.0  # seconds; [openers.extfs] timeout (and qcow2-fuse's) changes it
_ECHO = b"debugfs: "


def debugfs_path() -> str | None:
    """The debugfs executable (Debian installs it in /sbin), or None."""
    return shutil.which("debugfs") or next(
        (path for path in ("/usr/sbin/debugfs", "/sbin/debugfs") if os.access(path, os.X_OK)),
        None,
    )


def quote(name: str, label: str) -> str:
    """One name as a debugfs argument: in double quotes, a quote doubled.

    A name like ``<12>`` is refused: quoted or not, debugfs reads it as inode 12 in some
    requests (``sif``, ``cat``), which would change or read another file (the root...). So is
    a name over 255 bytes: debugfs would write it as an empty name, which e2fsck faults.
    """
    if len(os.fsencode(name)) > NAME_MAX:
        raise InvalidInput(
            f"a name of {len(os.fsencode(name))} bytes cannot be written in {label}: "
            f"a name holds at most {NAME_MAX} bytes; shorten it"
        )
    if "\n" in name or "\r" in name or "/" in name or "\0" in name or (
        name.startswith("<") and name.endswith(">")
    ):
        raise InvalidInput(f"the name {name!r} in {label} cannot be handled by debugfs")
    return '"' + name.replace('"', '""') + '"'


def quote_source(path: str) -> str:
    """A file of this server (the source of ``write``) as a debugfs argument, quoted."""
    if "\n" in path or "\r" in path or "\0" in path:
        raise InvalidInput(f"the path {path!r} cannot be handed to debugfs")
    return '"' + path.replace('"', '""') + '"'


@attrs.frozen
class Listing:
    """A directory as ``ls -p`` shows it: its own entry (``.``), its parent's inode, its names."""

    itself: Entry
    parent: int
    entries: dict[str, Entry]


def parse_listing(output: bytes) -> Listing | None:
    """The ``ls -p`` output of one directory, or None when it holds no ``.`` (not listed)."""
    entries: dict[str, Entry] = {}
    itself: Entry | None = None
    parent = 0
    for line in output.split(b"\n"):
        match = _LISTING_LINE.match(line)
        if match is None:
            continue
        inode, mode, uid, gid, raw_name, size = match.groups()
        name = os.fsdecode(raw_name)
        mode_value = int(mode, 8)
        entry = Entry(
            kind=kind_of_mode(mode_value),
            mode=mode_value,
            uid=int(uid),
            gid=int(gid),
            size=int(size or 0),
            inode=int(inode),
        )
        if name == ".":
            itself = itself or entry
        elif name == "..":
            parent = parent or entry.inode
        else:
            entries[name] = entry
    return None if itself is None else Listing(itself, parent, entries)


@attrs.frozen
class BatchResult:
    """What one request printed: stdout split per command, and its error lines."""

    outputs: list[bytes]
    errors: list[str]


def _ended(process: subprocess.Popen[bytes]) -> str:
    """How a debugfs that printed nothing useful went: its exit status or signal."""
    code = process.poll()
    if code is None:
        return "debugfs printed nothing it was expected to"
    if code < 0:
        return f"debugfs was killed by signal {code * -1}"
    return f"debugfs exited with status {code}"


def _error_lines(stderr: bytes) -> list[str]:
    return [
        os.fsdecode(line).strip()
        for line in stderr.splitlines()
        if line.strip() and not _BANNER.match(line) and line.strip() not in _BENIGN_STDERR
    ]


class DebugfsSession:
    """One debugfs process on one ext filesystem (a file, or a region of it from ``offset``),
    started at the first request; ``writable`` runs it with ``-w``, else read-only with ``-c``
    (no bitmaps read: quicker, and enough to read)."""

    def __init__(self, image_path: str, offset: int, label: str, writable: bool,
                 timeout: float = DEFAULT_TIMEOUT) -> None:  # fmt: skip
        executable = debugfs_path()
        if executable is None:
            raise DriverError(f"cannot open {label}: debugfs is not installed; install e2fsprogs")
        self.executable = executable
        self.label = label
        self.writable = writable
        self.timeout = timeout  # seconds one request (or writing the changes out) may take
        self._process: subprocess.Popen[bytes] | None = None
        self.failed = False  # a request could not run: its caller got the error already
        self.repaired = False  # e2fsck repaired what a writer killed earlier left (extstate)
        self._image = (image_path, offset)
        self._linkdir: str | None = None
        if "?" in image_path:  # unix_io would read the rest as its options: hide it
            self._linkdir = rundir.make_dir("debugfs-")
            link = os.path.join(self._linkdir, "image")
            os.symlink(os.path.abspath(image_path), link)
            image_path = link
        self.device = f"{image_path}?offset={offset}" if offset else image_path

    def _start(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            mode = "-w" if self.writable else "-c"
            if self.writable:
                self.repaired = prepare_for_writing(self.executable, self.device, self._image,
                                                    self.label, self.timeout)
            self._process = rundir.start(
                [self.executable, mode, "-f", "-", self.device],
                "debugfs",
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        return self._process

    def batch(self, commands: list[str]) -> BatchResult:
        """Run ``commands`` in the session's process; stdout is split per command."""
        try:
            return self._batch(commands)
        except DriverError:
            self.failed = True
            raise

    def _batch(self, commands: list[str]) -> BatchResult:
        process = self._start()
        token = secrets.token_hex(16)
        requests = [
            (os.fsencode(command), f"# encompass {token} {index}\n".encode())
            for index, command in enumerate(commands)
        ]
        script = b"".join(command + b"\n" + marker for command, marker in requests)
        stdout, stderr, ended = self._exchange(process, script, requests[-1][1])
        if ended:  # the process is gone: no later request can run
            self._process = None
            process.wait()
            rundir.forget_helper(process.pid)
        outputs = []
        position = 0
        for command, marker in requests:
            end = stdout.find(marker, position)
            echo = _ECHO + command + b"\n"
            if end < 0 or not stdout.startswith(echo, position):
                said = _error_lines(stderr) or _error_lines(stdout[position:].split(_ECHO, 1)[0])
                errors = "; ".join(said) or _ended(process)
                raise DriverError(f"debugfs on {self.label} did not run {os.fsdecode(command)!r}: {errors}")
            outputs.append(stdout[position + len(echo) : end])
            position = end + len(marker)
        return BatchResult(outputs, _error_lines(stderr))

    def _exchange(
        self, process: subprocess.Popen[bytes], script: bytes, last_marker: bytes
    ) -> tuple[bytes, bytes, bool]:
        """Send ``script``, read until ``last_marker`` (or the end); True when it ended."""
        assert process.stdin and process.stdout and process.stderr
        deadline = time.monotonic() + self.timeout
        stdout, stderr = bytearray(), bytearray()
        pending = memoryview(script)
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ, stdout)
            selector.register(process.stderr, selectors.EVENT_READ, stderr)
            selector.register(process.stdin, selectors.EVENT_WRITE)
            while True:
                if stdout.endswith(last_marker):
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._process = None
                    rundir.stop(process, grace=2.0)
                    raise DriverError(
                        f"debugfs on {self.label} did not answer in {self.timeout:g} s and was "
                        "stopped; raise [openers.extfs] timeout in encompass.toml if it needs longer"
                    )
                events = selector.select(remaining)
                for key, _ in events:
                    if key.fileobj is process.stdin:  # at most PIPE_BUF: never blocks
                        try:
                            written = os.write(process.stdin.fileno(), pending[: select.PIPE_BUF])
                        except BrokenPipeError:
                            written = len(pending)
                        pending = pending[written:]
                        if not pending:
                            selector.unregister(process.stdin)
                        continue
                    chunk = os.read(key.fileobj.fileno(), 65536)
                    if chunk:
                        key.data.extend(chunk)
                    else:
                        selector.unregister(key.fileobj)
                        if key.fileobj is process.stdout:
                            return bytes(stdout), bytes(stderr) + process.stderr.read(), True
            # The process wrote its errors before the marker: they are in the pipe already.
            os.set_blocking(process.stderr.fileno(), False)
            try:
                while chunk := os.read(process.stderr.fileno(), 65536):
                    stderr.extend(chunk)
            except BlockingIOError:
                pass
            finally:
                os.set_blocking(process.stderr.fileno(), True)
        return bytes(stdout), bytes(stderr), False

    def finish(self) -> list[str]:
        """End the process (with ``-w`` it writes the changes out); its error lines."""
        process, self._process = self._process, None
        if process is None:
            return []
        try:
            ending = f"{CLEAN_AGAIN}\n".encode() if self.writable else None
            _, stderr = process.communicate(ending, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            rundir.stop(process, grace=2.0)
            return [f"debugfs did not finish in {self.timeout:g} s"]
        finally:
            rundir.forget_helper(process.pid)
        errors = _error_lines(stderr)
        if process.returncode != 0 and not errors:
            errors.append(f"debugfs exited with status {process.returncode}")
        return errors

    def close(self) -> None:
        """End the process if it runs, and remove the helper link, if any."""
        try:
            self.finish()
        finally:
            if self._linkdir is not None:
                shutil.rmtree(self._linkdir, ignore_errors=True)
                self._linkdir = None
