"""A customize killed with SIGKILL leaves nothing running, mounted, locked or on disk after
``encompass repair``; a tool past its time limit is stopped with one clear error line."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ENCOMPASS, assert_one_line_error, cli_env

SECRET = "Sw0rdf1sh-kill-test-7Q"
HELPERS = ("qemu-storage-daemon", "debugfs", "guestfish", "qemu-img", "qemu-system")


def guest_tree(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("master\n")
    (root / "etc" / "rootpw").write_text("master-password\n")
    return root


def add_items(run_cli, master: str) -> None:
    assert run_cli("master", "items", "add", master, "hostname", "--type", "file",
                   "--path", "/etc/hostname").code == 0
    assert run_cli("master", "items", "add", master, "rootpw", "--type", "file", "--path", "/etc/rootpw",
                   "--secret", "--param", "mode=0600").code == 0


@pytest.fixture
def clones(run_cli, tmp_path) -> list[str]:
    """Three qcow2 clones of a qcow2 master and three raw clones of a raw master."""
    raw = tmp_path / "disk.raw"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(guest_tree(tmp_path / "tree")), str(raw), "32M"],
                   check=True)
    qcow2 = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(qcow2)], check=True)
    assert run_cli("master", "import", "base", qcow2).code == 0
    assert run_cli("master", "import", "rawbase", raw).code == 0
    add_items(run_cli, "base")
    add_items(run_cli, "rawbase")
    assert run_cli("clone", "base", "q1", "q2", "q3").code == 0
    assert run_cli("clone", "rawbase", "r1", "r2", "r3", "--mode", "full").code == 0
    return ["q1", "r1", "q2", "r2", "q3", "r3"]


def command_line(pid: int) -> list[str]:
    try:
        return [os.fsdecode(a) for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return []


def pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def helpers_in(home: Path) -> list[str]:
    """Helper processes still running whose command line points into ``home``."""
    found = []
    for pid in pids():
        arguments = command_line(pid)
        if arguments and any(h in os.path.basename(arguments[0]) for h in HELPERS) and any(
            str(home) in a for a in arguments
        ):
            status = Path(f"/proc/{pid}/stat").read_text()
            if status[status.rfind(")") + 2] != "Z":
                found.append(" ".join(arguments))
    return found


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as mounts:
        return [line for line in mounts if line.split()[4].startswith(str(path))]


def dead_socket_folders(folders: set[Path]) -> list[Path]:
    """Those of libguestfs's socket folders (root's are in /tmp) whose socket nobody listens on
    any more: left by a server that was ended (another test's live appliance answers)."""
    dead = []
    for folder in sorted(folders):
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(folder / "guestfsd.sock"))
            except FileNotFoundError:
                continue  # removed meanwhile, or not made yet
            except ConnectionRefusedError:
                dead.append(folder)
    return dead


def files_holding(root: Path, value: bytes, skip: Path | None = None) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if skip is not None and path.is_relative_to(skip):
            continue
        if path.is_file() and not path.is_symlink() and value in path.read_bytes():
            found.append(path)
    return found


def wait_for_child(parent: subprocess.Popen, name: str, nth: int, timeout: float = 120) -> None:
    """Poll until the ``nth`` distinct ``name`` child of ``parent`` has run (or runs)."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and parent.poll() is None:
        for pid in pids():
            arguments = command_line(pid)
            if arguments and name in " ".join(arguments[:4]):
                try:
                    status = Path(f"/proc/{pid}/stat").read_text()
                except OSError:
                    continue
                if int(status[status.rfind(")") + 2 :].split()[1]) == parent.pid:
                    seen.add(pid)
        if len(seen) >= nth:
            return
        time.sleep(0.01)  # polling the process table: the child's appearance has no other signal
    pytest.fail(f"no {nth} {name} child appeared (customize ended with {parent.poll()})")


@pytest.mark.parametrize(("helper", "nth"), [("qemu-storage-daemon", 1), ("debugfs", 1), ("debugfs", 3)])
def test_a_killed_customize_leaves_nothing_behind(run_cli, encompass_home, clones, tmp_path, helper, nth):
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    env = cli_env(encompass_home, {"TMPDIR": str(private_tmp)})
    if helper == "debugfs":
        # Each debugfs run lasts milliseconds on an idle machine: a wrapper first on PATH makes
        # it stay long enough to be seen (and killed) as the nth one, then runs the real tool.
        real = shutil.which("debugfs", path="/usr/sbin:/sbin:/usr/bin:/bin")
        wrappers = tmp_path / "bin"
        wrappers.mkdir()
        (wrappers / "debugfs").write_text(f'#!/bin/sh\nsleep 0.3\nexec {real} "$@"\n')
        (wrappers / "debugfs").chmod(0o755)
        env["PATH"] = f"{wrappers}:{env.get('PATH', '')}"
    customize = subprocess.Popen(
        [str(ENCOMPASS), "customize", *clones, "--parallel", "3",
         "--set", "hostname={clone}", "--set", f"rootpw={SECRET}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_child(customize, helper, nth)
    finally:
        customize.send_signal(signal.SIGKILL)
        customize.wait()

    repaired = run_cli("repair", "--json", env={"TMPDIR": str(private_tmp)})
    assert repaired.code == 0, repaired.err
    report = repaired.json()
    assert {row["name"] for row in report["images"]} <= set(clones)
    assert all(row["owner"] == "gone" for row in report["images"])
    assert all(str(encompass_home / "run") in row["directory"] for row in report["leftovers"])

    assert helpers_in(encompass_home) == []
    assert mounts_under(encompass_home) == [] and mounts_under(private_tmp) == []
    assert not (encompass_home / "run").exists() or list((encompass_home / "run").iterdir()) == []
    assert list(private_tmp.iterdir()) == []
    assert files_holding(encompass_home, SECRET.encode(), skip=encompass_home / "pool") == []

    # Nothing is locked any more: every clone is customized again, and reads back.
    again = run_cli("customize", *clones, "--parallel", "3", "--set", "hostname={clone}",
                    "--set", f"rootpw={SECRET}", "--json", env={"TMPDIR": str(private_tmp)})
    assert again.code == 0, again.out + again.err
    assert {row["state"] for row in again.json()} == {"ready"}
    for name in ("q2", "r3"):
        assert run_cli("image", "cat", name, "/etc/hostname").out == f"{name}\n"
    assert helpers_in(encompass_home) == [] and mounts_under(encompass_home) == []
    assert list(private_tmp.iterdir()) == []


# A process that records a helper which ignores its death (like a daemon it forked), keeps a
# work file, then dies without cleaning: what SIGKILL leaves at the worst moment.
ABANDON = """
import os, subprocess, sys
from encompass_core import rundir
from encompass_core.context import Context
Context()
helper = subprocess.Popen(["sleep", "600"], start_new_session=True, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
rundir.record_helper(helper.pid, "sleep")
with open(os.path.join(rundir.make_dir("work-"), "content"), "w") as work:
    work.write(sys.argv[1])
print(helper.pid, rundir.current(), flush=True)
os._exit(0)
"""


def test_repair_ends_the_helpers_of_a_dead_process(run_cli, encompass_home):
    done = subprocess.run([sys.executable, "-c", ABANDON, SECRET], env=cli_env(encompass_home),
                          capture_output=True, text=True, check=True)
    helper_pid, run_dir = done.stdout.split()
    assert Path(run_dir).parent == encompass_home / "run"
    assert (Path(run_dir).stat().st_mode & 0o777) == 0o700
    assert command_line(int(helper_pid))[:1] == ["sleep"]

    dry = run_cli("repair", "--dry-run")
    assert dry.code == 0 and f"sleep {helper_pid}" in dry.out and "would have" in dry.out
    assert command_line(int(helper_pid))[:1] == ["sleep"]  # a dry run ends nothing

    repaired = run_cli("repair", "--json")
    assert repaired.code == 0, repaired.err
    [leftover] = repaired.json()["leftovers"]
    assert leftover["helpers"] == [f"sleep {helper_pid}"] and leftover["directory"] == run_dir
    deadline = time.monotonic() + 10
    while command_line(int(helper_pid))[:1] == ["sleep"] and time.monotonic() < deadline:
        time.sleep(0.05)  # its parent (init) reaps it
    assert command_line(int(helper_pid))[:1] != ["sleep"]
    assert not Path(run_dir).exists()
    assert files_holding(encompass_home, SECRET.encode()) == []
    assert run_cli("repair", "--json").json() == {"images": [], "removals": [], "claims": [], "leftovers": []}


@pytest.mark.skipif(not os.path.exists("/usr/bin/guestfish"), reason="libguestfs-tools is not installed")
def test_a_tool_past_its_time_limit_is_stopped_with_one_clear_line(run_cli, encompass_home, tmp_path):
    # A Minix volume (util-linux makes one): only libguestfs opens it (ext has debugfs, FAT
    # mtools, NTFS ntfs-3g); one second is far too short to boot its appliance.
    disk = tmp_path / "disk.raw"
    subprocess.run(["truncate", "-s", "16M", str(disk)], check=True)
    subprocess.run(["mkfs.minix", str(disk)], check=True, capture_output=True)
    assert run_cli("master", "import", "minix", disk).code == 0
    assert run_cli("clone", "minix", "f1", "--mode", "full").code == 0
    with open(encompass_home / "encompass.toml", "a") as config:
        config.write("\n[openers.guestfs]\nforce_tcg = true\ntimeout = 1\n")

    before = set(Path("/tmp").glob("libguestfs*"))
    started = time.monotonic()
    result = run_cli("image", "cat", "f1", "/hello")
    assert time.monotonic() - started < 60
    assert_one_line_error(result, "guestfish", "1 s", "[openers.guestfs] timeout")
    assert helpers_in(encompass_home) == []
    assert dead_socket_folders(set(Path("/tmp").glob("libguestfs*")) - before) == []
    assert not (encompass_home / "run").exists() or list((encompass_home / "run").iterdir()) == []
