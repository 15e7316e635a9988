"""``encompass demo``: the whole of Encompass on a tiny guest, in one command."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import DriverError
from . import output


class _PeerOption(click.Option):
    """``--peer``: its help names the lab peers the installed plugins offer."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        if record is None:
            return None
        try:
            from ..plugins import PluginHost

            names = [peer.name for answer in PluginHost().load().hook.encompass_lab_peers()
                     for peer in (answer or ()) if peer.kind == "platform"]
        except Exception:  # --help must show even when a plugin is broken
            names = []
        installed = ", ".join(names) or "none: pip install encompass-bladecenter or encompass-amt"
        return record[0], f"{record[1]} Installed: {installed}."


@click.command("demo")
@click.option("--count", type=click.IntRange(1, 10), default=3, show_default=True,
              help="How many clones to make, customize and boot.")
@click.option("--keep", is_flag=True, help="Keep the repository, images and machines afterwards.")
@click.option("--demo-home", type=click.Path(file_okay=False, path_type=Path),
              help="Use this folder as the demo's repository [default: a new one under /var/tmp].")
@click.option("--timeout", type=float, default=300, show_default=True,
              help="Seconds to wait for the guests' consoles.")
@click.option("--physical", is_flag=True,
              help="Deploy on physical machines of the lab instead: blades of a chassis a plugin "
                   "starts (encompass-bladecenter), booting their clones from an iSCSI SAN. Root.")
@click.option("--peer", "peer_name", metavar="NAME", cls=_PeerOption,
              help="With --physical: the lab peer to start (bladecenter: blades of a chassis, "
                   "amt: AMT PCs) [default: the first one installed].")
@click.option("--pool", "pool_kind", type=click.Choice(["san", "nas"]),
              help="Keep the clones on shared storage a plugin starts for the lab, and boot them "
                   "from it: san = a DS4xxx SAN (encompass-ds4xxx's SMcli simulator over tgt), "
                   "nas = an NFS export (encompass-nfs: nfs-ganesha). Root.")
def demo(count: int, keep: bool, demo_home: Path | None, timeout: float, physical: bool,
         peer_name: str | None, pool_kind: str | None) -> None:
    """Build a tiny bootable master from Debian packages, import it, make COW clones demo-1 ..
    demo-N, customize each (hostname + a bootscript), deploy each on a new KVM/QEMU machine
    through libvirt, boot them (software emulation where KVM is unusable), print each console's
    hostname line, then undeploy and clean up (unless --keep).

    The demo works in a repository of its own, never in ENCOMPASS_HOME, and starts a private
    libvirt daemon, so it needs no system service. With --physical the clones go to blades of a
    lab chassis instead (a plugin's lab peer, such as encompass-bladecenter's: snmpd in front of
    QEMU guests; --peer amt for AMT PCs), which boot them from a private iSCSI SAN (tgt). With
    --pool san the clones are FlashCopy logical drives of a simulated DS4xxx (its LUNs served by
    a private tgtd) and each VM boots its LUN over iSCSI; with --pool nas they are disk files on
    nfs-ganesha (in a private network namespace) and each VM reads its disk over NFSv3. Debian
    packages are cached in ~/.cache/encompass/demo.

    \b
    Examples:
      encompass demo                 three clones on KVM, kept in a local pool
      encompass demo --pool nas      the clones on an NFS export, booted over NFS
      encompass demo --physical --peer amt   on AMT PCs of the lab
      encompass demo --count 1 --keep --timeout 600
    """
    from ..demo.steps import customize_demo_clones

    if peer_name is not None and not physical:
        raise click.UsageError("--peer picks the lab peer of --physical: add --physical")
    if pool_kind and (physical or demo_home is not None):
        raise click.UsageError("--pool makes its own repository and machines: leave out "
                               "--physical and --demo-home")
    if pool_kind:
        from ..demo.shared import run_pool_demo

        booted = run_pool_demo(pool_kind, count, keep, say=output.note, timeout=timeout,
                               customize=customize_demo_clones)
    elif physical:
        from ..demo.physical import run_physical_demo

        if demo_home is not None:
            raise click.UsageError("--physical makes its own repository: leave out --demo-home")
        booted = run_physical_demo(count, keep, say=output.note, timeout=timeout,
                                   customize=customize_demo_clones, peer_name=peer_name)
    else:
        from ..demo.run import run_demo

        booted = run_demo(demo_home, count, keep, say=output.note, timeout=timeout,
                          customize=customize_demo_clones)
    output.table(("CLONE", "MACHINE", "CONSOLE", "SECONDS"),
                 [(b.clone, b.machine, b.console or "(nothing)", f"{b.seconds:.1f}") for b in booted])
    missing = [b.clone for b in booted if b.console != f"encompass-demo: hostname {b.clone}"]
    if missing:
        raise DriverError(f"demo: {', '.join(missing)} did not show its own hostname on the console "
                          "(see the console logs named above)")
    output.note("demo done: every clone booted with its own hostname")


def register(cli: click.Group) -> None:
    cli.add_command(demo)
