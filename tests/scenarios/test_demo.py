"""The README's first command: `encompass demo` boots three customized clones and cleans up."""

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ENCOMPASS = str(Path(sys.executable).with_name("encompass"))
PR_SET_CHILD_SUBREAPER = 36


def daemons_of(home: Path) -> list[int]:
    """Processes that live under the demo's folder (a private libvirtd, its QEMUs)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(home).encode() in environ and state != "Z":
            found.append(int(proc.name))
    return found


@pytest.fixture
def home():
    """The demo's repository: under /var/tmp (the daemon's user must reach it), removed after."""
    path = Path("/var/tmp") / f"encompass-demo-test-{os.getpid()}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_demo_boots_three_customized_clones_and_cleans_up(tmp_path, home):
    user_home = tmp_path / "user-home"  # the demo must never touch ENCOMPASS_HOME
    env = dict(os.environ, ENCOMPASS_HOME=str(user_home))
    done = subprocess.run([ENCOMPASS, "demo", "--demo-home", str(home), "--timeout", "240"],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    for name in ("demo-1", "demo-2", "demo-3"):
        assert f"encompass-demo: hostname {name}" in done.stdout
        assert f"{name}: console says 'demo-bootscript: {name} was customized by Encompass'" in done.stderr
    assert "undeployed and deleted the clones and the master" in done.stderr
    assert not user_home.exists()
    # A given --demo-home stays, emptied: the listings below read the demo's own store.
    assert (home / "encompass.toml").is_file()
    listing = subprocess.run([ENCOMPASS, "--home", str(home), "image", "list", "--json"],
                             capture_output=True, text=True, check=True)
    assert listing.stdout.strip() == "[]"
    machines = subprocess.run([ENCOMPASS, "--home", str(home), "machine", "list", "--json"],
                              capture_output=True, text=True, check=True)
    assert machines.stdout.strip() == "[]"
    assert daemons_of(home) == [], "the demo's private libvirt daemon is still running"


@pytest.mark.slow
def test_physical_demo_boots_three_clones_on_blades_from_the_san(tmp_path):
    pytest.importorskip("encompass_bladecenter", reason="the lab chassis is the bladecenter plugin's")
    if shutil.which("snmpd", path="/usr/sbin:/usr/bin") is None or shutil.which("tgtd") is None:
        pytest.skip("snmpd and tgtd are not installed (apt-get install snmpd tgt)")
    env = dict(os.environ, ENCOMPASS_HOME=str(tmp_path / "user-home"))
    before = set(Path("/var/tmp").glob("encompass-demo-physical-*"))

    done = subprocess.run([ENCOMPASS, "demo", "--physical", "--peer", "bladecenter", "--timeout", "240"],
                          capture_output=True, text=True, env=env, timeout=900, check=False)

    assert done.returncode == 0, done.stderr
    for number in (1, 2, 3):
        assert f"demo-{number}  chassis1-blade{number}  encompass-demo: hostname demo-{number}" in done.stdout
        assert f"deployed demo-{number} on machine 'chassis1-blade{number}'" in done.stderr
    assert "discovered 3 machines on platform 'chassis1'" in done.stderr
    assert set(Path("/var/tmp").glob("encompass-demo-physical-*")) == before  # all removed
    leftovers = subprocess.run(["pgrep", "-f", "encompass-demo-physical-"], capture_output=True, text=True)
    assert leftovers.stdout == "", "the lab's snmpd, tgtd or a blade still runs"


@pytest.fixture
def adopted_orphans():
    """This process adopts what its children leave behind (PR_SET_CHILD_SUBREAPER) and reaps the
    adopted ones that end (libvirtd waits for its QEMU to vanish, a zombie would hang it); the
    function it yields runs a command and lists the live processes the command left."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip("prctl(PR_SET_CHILD_SUBREAPER) is refused here")
    before = set(_children())

    def adopted(command: int) -> list[int]:
        return [pid for pid in _children() if pid not in before and pid != command]

    def run(args: list[str], env: dict[str, str], timeout: float) -> tuple[int, str, str, list[str]]:
        with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) as command:
            done = threading.Event()
            reaper = threading.Thread(target=_reap, args=(lambda: adopted(command.pid), done))
            reaper.start()
            try:
                out, err = command.communicate(timeout=timeout)
            finally:
                done.set()
                reaper.join()
        left = []
        for pid in adopted(command.pid):  # what the command left: said, then ended (ours to end)
            with contextlib.suppress(OSError):
                left.append(f"{pid}: {_command_line(pid)}")
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        return command.returncode, out, err, left

    try:
        yield run
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _reap(adopted, done: threading.Event) -> None:
    """Reap the adopted processes that end, until ``done`` (and once more after)."""
    while True:
        for pid in adopted():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        if done.wait(0.2):
            for pid in adopted():
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
            return


def _command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]


def _children() -> list[int]:
    pids = []
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            pids += [int(pid) for pid in (task / "children").read_text().split()]
    return pids


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "plugin", "tools", "boots"), [
    ("san", "encompass_ds4xxx", ("tgtd",), "from its LUN (libvirt iSCSI network disk)"),
    ("nas", "encompass_nfs", ("ganesha.nfsd", "rpcbind"),
     "from its disk file over NFSv3 (libvirt NFS network disk)"),
])
def test_pool_demo_boots_its_clones_from_shared_storage(tmp_path, adopted_orphans, kind, plugin, tools,
                                                        boots):
    pytest.importorskip(plugin, reason=f"the lab {kind.upper()} is {plugin}'s")
    pytest.importorskip("encompass_libvirt", reason="the kvm platform is encompass-libvirt's")
    if any(shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin") is None for tool in (*tools, "libvirtd")):
        pytest.skip(f"{', '.join(tools)} or libvirtd is not installed")
    env = dict(os.environ, ENCOMPASS_HOME=str(tmp_path / "user-home"))
    before = set(Path("/var/tmp").glob(f"encompass-demo-{kind}-*"))

    # What a user runs: three clones (about 35 s here, the boots overlapping).
    code, out, err, left = adopted_orphans([ENCOMPASS, "demo", "--pool", kind, "--timeout", "240"], env, 900)

    assert code == 0, err
    for name in ("demo-1", "demo-2", "demo-3"):
        assert re.search(rf"^{name}\s+{name}\s+encompass-demo: hostname {name}\s", out, re.M)
        assert f"deployed {name} on a new virtual machine '{name}': it boots {boots}" in err
        assert f"{name}: console says 'demo-bootscript: {name} was customized by Encompass'" in err
    assert "undeployed and deleted the clones and the master" in err
    assert set(Path("/var/tmp").glob(f"encompass-demo-{kind}-*")) == before  # all removed
    assert left == [], "the lab's servers, libvirtd or a guest still run"
    assert not (tmp_path / "user-home").exists()
