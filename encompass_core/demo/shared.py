"""``encompass demo --pool san|nas``: the demo's clones kept on shared storage, booted from it.

A plugin's storage lab peer (``encompass_lab_peers`` of kind ``san`` or ``nas``: the ds4xxx
plugin's SMcli simulator over a private tgtd, the nfs plugin's nfs-ganesha in a private network
namespace) is started and becomes the demo repository's default pool. The demo master is imported
onto it, cloned (FlashCopy logical drives on the SAN; full copies on the NAS, as QEMU cannot
follow a copy-on-write overlay's backing file over NFS), each clone customized, then deployed on a
new KVM machine of a private libvirt daemon, which boots it from its LUN (a libvirt iSCSI network
disk) or from its disk file over NFSv3 (a libvirt NFS network disk). The consoles show each
clone's hostname.

A NAS peer keeps this thread in its network namespace while it runs, so the libvirt daemon and its
QEMU started from here reach the server (QEMU's NFS client asks the portmapper on port 111).
Everything lives under one folder in /var/tmp and is stopped and removed at the end (the
repository stays with ``keep``, the servers do not). Needs root, QEMU with its iSCSI and NFS
drivers (``qemu-block-extra``), libvirt and the plugin that offers the peer.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..config import toml_table
from ..context import Context
from ..errors import NotSupported
from .physical import environment, lab_peers, needs_root
from .run import Booted, clean_up, deploy_on_new_machines, import_demo_master, make_clones, stop_platform

QEMU_MODULES = Path("/usr/lib/x86_64-linux-gnu/qemu")
#: What each kind of pool needs here, and what the clones are.
KINDS = {
    "san": {"module": "block-iscsi.so", "tools": ("tgtd", "tgtadm"), "mode": "cow",
            "packages": "tgt", "plugin": "encompass-ds4xxx",
            "boots": "from its LUN (libvirt iSCSI network disk)"},
    "nas": {"module": "block-nfs.so", "tools": ("ganesha.nfsd", "rpcbind"), "mode": "full",
            "packages": "nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils", "plugin": "encompass-nfs",
            "boots": "from its disk file over NFSv3 (libvirt NFS network disk)"},
}
PLATFORM = {"driver": "kvm", "uri": "private", "shutdown_timeout": 0}


def _check_tools(kind: str) -> None:
    needs = KINDS[kind]
    tools = ("libvirtd", "qemu-system-x86_64", *needs["tools"])
    missing = [tool for tool in tools if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None]
    if missing or not (QEMU_MODULES / needs["module"]).exists():
        raise NotSupported(f"encompass demo --pool {kind} needs "
                           f"{', '.join(missing) or 'QEMU ' + needs['module']}: apt-get install "
                           f"libvirt-daemon-system qemu-system-x86 qemu-block-extra {needs['packages']}")
    needs_root(f"encompass demo --pool {kind} starts its storage server privately")


def run_pool_demo(kind: str, count: int = 3, keep: bool = False, say: Callable[[str], None] = print,
                  timeout: float = 300.0,
                  customize: Callable[[Context, list[str]], None] | None = None) -> list[Booted]:
    """Run the demo with its clones on a lab pool of ``kind`` (``san`` or ``nas``)."""
    if kind not in KINDS:
        raise NotSupported(f"encompass demo --pool takes san or nas, not {kind!r}")
    _check_tools(kind)
    base = Path(tempfile.mkdtemp(prefix=f"encompass-demo-{kind}-", dir="/var/tmp"))
    base.chmod(0o755)  # the private libvirt daemon's user reaches its folder through here
    home = base / "home"
    home.mkdir()
    names = [f"demo-{i}" for i in range(1, count + 1)]
    try:
        peers = [record for record in lab_peers(Context(home=home)) if record.kind == kind]
        if not peers:
            raise NotSupported(f"encompass demo --pool {kind} needs a plugin with a {kind} lab peer: "
                               f"pip install {KINDS[kind]['plugin']}")
        record = peers[0]
        say(f"demo repository: {home}")
        with record.start(base / "lab", None, count) as peer:
            say(f"started the lab {kind.upper()}: {record.description}")
            (home / "encompass.toml").write_text(
                f'[defaults]\npool = "{peer.name}"\n' + toml_table(f"pools.{peer.name}", peer.pool)
                + toml_table("platforms.kvm", PLATFORM))
            with environment(peer.environment):
                ctx = Context(home=home)
                try:
                    return _run(ctx, kind, names, say, timeout, customize)
                finally:
                    if not keep:
                        clean_up(ctx, names, say)
                    stop_platform(ctx, say)
    finally:
        if keep:
            say(f"kept the repository: ENCOMPASS_HOME={home} (the lab {kind.upper()} is stopped)")
        else:
            shutil.rmtree(base, ignore_errors=True)


def _run(ctx: Context, kind: str, names: list[str], say: Callable[[str], None], timeout: float,
         customize: Callable[[Context, list[str]], None] | None) -> list[Booted]:
    import_demo_master(ctx, say)
    make_clones(ctx, names, KINDS[kind]["mode"], say, customize)
    return deploy_on_new_machines(ctx, names, say, timeout, f"it boots {KINDS[kind]['boots']}")
