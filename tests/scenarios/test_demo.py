"""The README's first command: `encompass demo` boots three customized clones and cleans up."""

import contextlib
import ctypes
import os
import re
import shutil
import subprocess
import sys
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

    done = subprocess.run([ENCOMPASS, "demo", "--physical", "--timeout", "240"], capture_output=True,
                          text=True, env=env, timeout=900, check=False)

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
    """This process adopts what its children leave behind (PR_SET_CHILD_SUBREAPER): the
    function it yields lists the live processes a finished child left."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip("prctl(PR_SET_CHILD_SUBREAPER) is refused here")
    before = set(_children())

    def left() -> list[str]:
        alive = []
        for pid in set(_children()) - before:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if state == "Z":
                os.waitpid(pid, os.WNOHANG)
            else:
                alive.append(f"{pid}: {command[:120]}")
        return alive

    try:
        yield left
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


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

    # Two clones, not three: each boot under TCG costs CI half a minute.
    done = subprocess.run([ENCOMPASS, "demo", "--pool", kind, "--count", "2", "--timeout", "240"],
                          capture_output=True, text=True, env=env, timeout=900, check=False)

    assert done.returncode == 0, done.stderr
    for name in ("demo-1", "demo-2"):
        assert re.search(rf"^{name}\s+{name}\s+encompass-demo: hostname {name}\s", done.stdout, re.M)
        assert f"deployed {name} on a new virtual machine '{name}': it boots {boots}" in done.stderr
        assert f"{name}: console says 'demo-bootscript: {name} was customized by Encompass'" in done.stderr
    assert "undeployed and deleted the clones and the master" in done.stderr
    assert set(Path("/var/tmp").glob(f"encompass-demo-{kind}-*")) == before  # all removed
    assert adopted_orphans() == [], "the lab's servers, libvirtd or a guest still run"
    assert not (tmp_path / "user-home").exists()
