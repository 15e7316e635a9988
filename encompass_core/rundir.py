"""Each process's private run directory, the helper processes it starts, and sweeping both
after a process died.

Every process that reaches inside volumes gets ``$ENCOMPASS_HOME/run/<host>-<pid>-<start>/``
(mode 0700; under ``$TMPDIR/encompass-run-<uid>/`` when no home is known). Openers make
their mount points and work files there, never in a shared temporary folder, and record there
each helper process they start (qemu-storage-daemon, debugfs, guestfish, qemu-img): its pid,
its start time (so a reused pid is never taken for it) and what it is. The directory is
removed when the process ends normally.

When a process is killed, its directory stays: :func:`sweep` (run by ``encompass repair`` and
when an operation first opens a volume) finds directories whose owner is gone, ends the
recorded helpers and their children, unmounts what is mounted below the directory and
removes it. :func:`start` and :func:`run` start helpers in their own session (a Ctrl-C meant
for Encompass does not reach them) and, through ``setpriv --pdeathsig``, make them receive
SIGTERM when the thread that started them dies, so most helpers end on their own.

Data that must reach a helper as a file (a secret input written into a volume) goes through
:func:`private_file`: an anonymous memory file when the kernel has them, never on disk.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from .errors import DriverError
from .store import process_start_time

_TERM_GRACE = 10.0  # seconds a helper gets to flush and exit after SIGTERM, before SIGKILL
_state: dict[str, Any] = {"base": None, "dir": None, "pid": None, "swept": set()}
_lock = threading.RLock()


@attrs.frozen
class Leftover:
    """What was found (and, unless a dry run, cleaned) of a process that died."""

    pid: int
    directory: str
    helpers: tuple[str, ...]  # "qemu-storage-daemon 1234"...
    mounts: tuple[str, ...]
    action: str


# -- where ---------------------------------------------------------------------------------


def _fallback_base() -> Path:
    return Path(tempfile.gettempdir()) / f"encompass-run-{os.getuid()}"


def _default_base() -> Path:
    """Where run directories go when no Context said (``use_home``): under ``$ENCOMPASS_HOME``
    when it is set, else a private folder of the temporary directory."""
    home = os.environ.get("ENCOMPASS_HOME")
    return Path(home).expanduser() / "run" if home else _fallback_base()


def use_home(home: Path | str) -> None:
    """Make run directories under ``home/run`` (before this process makes its own)."""
    with _lock:
        if _state["dir"] is None:
            _state["base"] = Path(home) / "run"


def _owner_name(pid: int, started: float) -> str:
    return f"{socket.gethostname()}-{pid}-{int(started)}"


def current() -> Path:
    """This process's run directory (made, mode 0700, on first use; removed at exit)."""
    with _lock:
        if _state["dir"] is not None and _state["pid"] == os.getpid():
            return _state["dir"]
        base = _state["base"] or _default_base()
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        pid = os.getpid()
        path = base / _owner_name(pid, process_start_time(pid) or 0.0)
        path.mkdir(mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)
        (path / "helpers").mkdir(mode=0o700, exist_ok=True)
        _state.update(dir=path, pid=pid)
        atexit.register(_clean_own, path, pid)
        return path


def make_dir(prefix: str) -> str:
    """A new private directory (0700) in this process's run directory."""
    return tempfile.mkdtemp(prefix=prefix, dir=current())


def _clean_own(path: Path, pid: int) -> None:
    if os.getpid() == pid:  # not in a forked child
        _clean(path, dry_run=False, since=process_start_time(pid) or 0.0)


# -- helpers -------------------------------------------------------------------------------


def record_helper(pid: int, what: str) -> None:
    """Note that ``pid`` (a helper started by this process) must end with it."""
    record = {"pid": pid, "started": process_start_time(pid), "what": what}
    target = current() / "helpers" / str(pid)
    partial = target.with_suffix(".tmp")
    partial.write_text(json.dumps(record))
    os.replace(partial, target)


def forget_helper(pid: int) -> None:
    """The helper ``pid`` ended: drop its record."""
    with contextlib.suppress(FileNotFoundError):
        (current() / "helpers" / str(pid)).unlink()


def _death_signal_prefix() -> list[str]:
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def start(command: Sequence[str], what: str, **popen: Any) -> subprocess.Popen:
    """Start a helper (recorded, in its own session, ended when the starting thread dies).

    Close it with :func:`stop` (or wait for it and call :func:`forget_helper`).
    """
    try:
        process = subprocess.Popen(
            [*_death_signal_prefix(), *command], start_new_session=True, **popen
        )
    except OSError as error:
        raise DriverError(f"cannot run {what}: {error}") from error
    record_helper(process.pid, what)
    return process


def stop(process: subprocess.Popen, grace: float = _TERM_GRACE) -> None:
    """End a helper from :func:`start` and its children (SIGTERM, then SIGKILL)."""
    if process.poll() is None:
        _end_tree(process.pid, grace)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    forget_helper(process.pid)


def end_helper(pid: int, grace: float = _TERM_GRACE) -> None:
    """End a recorded helper that is not our child (a daemon it forked) and its children."""
    record = next((r for r in _recorded_helpers(current()) if r[0] == pid), None)
    if record is not None and record[1] is not None and process_start_time(pid) == record[1]:
        _end_tree(pid, grace)
    forget_helper(pid)


def run(command: Sequence[str], what: str, timeout: float | None, setting: str | None = None,
        **popen: Any) -> subprocess.CompletedProcess:  # fmt: skip
    """Run a helper to its end, like :func:`subprocess.run` with ``capture_output``.

    Past ``timeout`` seconds it is killed (with its children) and a :class:`DriverError`
    names ``what``, the time and the ``setting`` of encompass.toml that sets it, if any.
    """
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    process = start(command, what, **popen)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(process, grace=2.0)
        advice = f"; raise {setting} in encompass.toml if it needs longer" if setting else ""
        raise DriverError(f"{what} did not finish in {timeout:g} s and was stopped{advice}") from None
    except BaseException:
        stop(process, grace=2.0)
        raise
    forget_helper(process.pid)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


# -- private files -------------------------------------------------------------------------


@contextlib.contextmanager
def private_file(data: bytes | None = None) -> Iterator[tuple[str, Any]]:
    """A file only this user's processes can open, holding ``data``: ``(path, stream)``.

    An anonymous memory file (``memfd``, reached as ``/proc/<pid>/fd/<n>``) when the kernel
    has them: its content never touches a disk and vanishes with this process, killed or not.
    Else a 0600 file in the run directory, removed on the way out. A helper may also write
    into the path; read it back from ``stream`` (seek to 0 first).
    """
    try:
        fd = os.memfd_create("encompass-input", os.MFD_CLOEXEC)
        path = f"/proc/{os.getpid()}/fd/{fd}"
    except (AttributeError, OSError):
        fd, path = tempfile.mkstemp(prefix="input-", dir=current())  # mkstemp: mode 0600
    stream = os.fdopen(fd, "w+b")
    try:
        if data is not None:
            stream.write(data)
            stream.flush()
        yield path, stream
    finally:
        stream.close()
        if not path.startswith("/proc/"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


# -- ending processes ----------------------------------------------------------------------


def _children_table() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rfind(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry))
    return children


def tree(pid: int) -> list[int]:
    """``pid`` and every descendant, parents first."""
    table = _children_table()
    found, queue = [], [pid]
    while queue:
        current_pid = queue.pop(0)
        found.append(current_pid)
        queue.extend(table.get(current_pid, []))
    return found


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _end_tree(pid: int, grace: float) -> None:
    """SIGTERM ``pid`` and its descendants; SIGKILL whatever still runs after ``grace``."""
    processes = [(p, process_start_time(p)) for p in tree(pid)]
    _signal_all([p for p, _ in processes], signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if all(process_start_time(p) != started or _zombie(p) for p, started in processes):
            return
        time.sleep(0.05)
    _signal_all([p for p, started in processes if process_start_time(p) == started], signal.SIGKILL)


def running(pid: int, started: float | None) -> bool:
    """Whether the process ``pid`` that started at ``started`` (:func:`process_start_time`) still
    runs: not ended, not a zombie, and the pid not taken by another process since."""
    return started is not None and process_start_time(pid) == started and not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2 :].split()[0] in ("Z", "X")


# -- sweeping ------------------------------------------------------------------------------

_MOUNT_ESCAPE = re.compile(r"\\([0-7]{3})")


def _mounts_under(path: Path) -> list[tuple[str, str]]:
    """``(mount point, filesystem type)`` of every mount at or below ``path``, deepest first."""
    prefix = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
        for line in mounts:
            fields = line.split()
            point = _MOUNT_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), fields[4])
            fstype = fields[fields.index("-") + 1]
            if point == prefix or point.startswith(prefix + "/"):
                found.append((point, fstype))
    return sorted(found, key=lambda m: -len(m[0]))


def _unmount(point: str, fstype: str) -> None:
    if fstype.startswith("fuse") and shutil.which("fusermount3"):
        done = subprocess.run(["fusermount3", "-u", "-z", point], capture_output=True, timeout=30,
                              check=False)  # fmt: skip
        if done.returncode == 0:
            return
    subprocess.run(["umount", "-l", point], capture_output=True, timeout=30, check=False)


def _recorded_helpers(path: Path) -> list[tuple[int, float | None, str]]:
    helpers = []
    with contextlib.suppress(FileNotFoundError):
        for record_path in (path / "helpers").iterdir():
            try:
                record = json.loads(record_path.read_text())
                helpers.append((int(record["pid"]), record.get("started"), str(record["what"])))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a record cut short by the kill: nothing to trust in it
    return helpers


def _using(path: Path, since: float) -> list[tuple[int, float | None, str]]:
    """Processes started since ``since`` whose command line names a file below ``path``: the
    helpers started just before their owner died, too soon to be recorded."""
    needle = os.fsencode(str(path) + "/")
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            arguments = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        started = process_start_time(int(entry))
        if started is not None and started >= since and any(needle in a for a in arguments):
            found.append((int(entry), started, os.path.basename(os.fsdecode(arguments[0]))))
    return found


def _clean(path: Path, dry_run: bool, since: float = 0.0) -> tuple[list[str], list[str]]:
    """End the live helpers recorded in ``path`` (or naming it), unmount below it, remove it."""
    ended = []
    helpers = {pid: (pid, started, what) for pid, started, what in _using(path, since)}
    helpers.update({pid: (pid, started, what) for pid, started, what in _recorded_helpers(path)})
    for pid, started, what in helpers.values():
        if started is None or process_start_time(pid) != started or _zombie(pid):
            continue  # gone, or the pid now belongs to another process
        ended.append(f"{what} {pid}")
        if not dry_run:
            _end_tree(pid, _TERM_GRACE)
    mounts = _mounts_under(path)
    if not dry_run:
        for point, fstype in mounts:
            _unmount(point, fstype)
        shutil.rmtree(path, ignore_errors=True)
    return ended, [point for point, _ in mounts]


def _parse_owner(name: str) -> tuple[int, float] | None:
    host, _, rest = name.rpartition("-")
    host, _, pid = host.rpartition("-")
    if host != socket.gethostname() or not pid.isdigit() or not rest.isdigit():
        return None  # another host's process (a shared home): not ours to judge
    return int(pid), float(rest)


def _owner_gone(pid: int, started: float) -> bool:
    now = process_start_time(pid)
    return now is None or int(now) != int(started) or _zombie(pid)


def sweep(home: Path | str | None = None, dry_run: bool = False) -> list[Leftover]:
    """Clean the run directories (under ``home/run`` and the fallback) whose owner is gone."""
    bases = [_fallback_base()]
    if home is not None:
        bases.insert(0, Path(home) / "run")
    found = []
    for base in bases:
        try:
            names = sorted(os.listdir(base))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            owner = _parse_owner(name)
            if owner is None or not _owner_gone(*owner):
                continue
            path = base / name
            try:
                claim = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue  # another sweeper removed it meanwhile
            try:
                fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)  # one sweeper per directory
            except OSError:
                os.close(claim)
                continue
            try:
                if not path.exists():
                    continue
                helpers, mounts = _clean(path, dry_run, since=owner[1])
            finally:
                os.close(claim)
            parts = [f"ended {', '.join(helpers)}"] if helpers else []
            parts += [f"unmounted {len(mounts)} mount(s)"] if mounts else []
            parts.append(f"removed {path}")
            action = "; ".join(parts) if not dry_run else "would have " + "; ".join(parts)
            found.append(Leftover(owner[0], str(path), tuple(helpers), tuple(mounts), action))
    return found


def sweep_once(home: Path | str) -> None:
    """:func:`sweep` the first time this process opens volumes in ``home`` (quietly)."""
    key = str(Path(home))
    with _lock:
        if key in _state["swept"]:
            return
        _state["swept"].add(key)
    sweep(home)
