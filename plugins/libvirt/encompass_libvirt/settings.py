"""What a libvirt platform's ``[platforms.NAME]`` table may hold: a module of its own, light,
because the plugin's entry point declares it without importing the driver (every command that
loads plugins pays for what entry points import)."""

from __future__ import annotations

from encompass_core.settings import Setting

#: What libxl runs to read a PV guest's kernel from its own disk (found in Xen's libexec dir): a
#: Xen PV machine's bootloader when nothing is deployed.
PYGRUB = "pygrub"

SETTINGS = (
    Setting("uri", str, help="the libvirt URI, or \"private\" (a daemon Encompass starts itself)"),
    Setting("domain_type", str, "auto", "kvm when the host offers it, else qemu",
            choices=("auto", "kvm", "qemu")),
    Setting("network", str, help="new machines' NIC: user, network:NAME, bridge:NAME or none"),
    Setting("shutdown_timeout", float, 10, "seconds an undeploy waits for an ACPI shutdown", minimum=0),
    Setting("console_dir", str, help="where console logs go (default: beside each machine's boot files)"),
    Setting("xen_mode", str, "pv", "new Xen machines' mode", choices=("pv", "pvh", "hvm")),
    Setting("bootloader", str, PYGRUB, "a Xen PV machine's bootloader when nothing is deployed"),
    Setting("private_dir", str, help="the private daemon's folder (default: ENCOMPASS_HOME/libvirt/NAME)"),
)

