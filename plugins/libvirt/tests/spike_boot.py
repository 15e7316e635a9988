"""Spike (to become a test): boot a customized clone of the demo master through libvirt.

Builds the demo master, clones it as a qcow2 overlay, writes another hostname and a bootscript
into the clone, starts a private libvirt daemon, boots the clone under QEMU software emulation
(domain type ``qemu``) with the kernel and initramfs extracted from the clone, waits for the
hostname line on the serial console, and tears everything down. Prints the timings.

    .venv/bin/python plugins/libvirt/tests/spike_boot.py [--keep] [--base DIR] [--cache DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[2])]

import libvirt  # noqa: E402
from encompass_libvirt.daemon import start_private_daemon  # noqa: E402
from encompass_libvirt.domxml import kvm_domain_xml  # noqa: E402

from encompass_core.demo.guest import build_demo_master  # noqa: E402

HOSTNAME = "web01"
BOOT_TIMEOUT = 180.0
BOOTSCRIPT = b"#!/bin/sh\necho \"bootscript says: I am $(hostname)\"\n"


def run(*command: str | Path) -> str:
    return subprocess.run([str(c) for c in command], check=True, capture_output=True,
                          text=True).stdout


def clone_and_customize(master_disk: Path, guests: Path, scratch: Path) -> Path:
    """A qcow2 overlay of the master holding a new hostname and a bootscript.

    debugfs edits only raw images, so the overlay goes through a sparse raw scratch copy;
    ``qemu-img rebase`` then puts into the overlay only the clusters that differ from the master.
    """
    clone = guests / "clone.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", master_disk, clone)
    raw = scratch / "clone.raw"
    run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", clone, raw)
    (scratch / "hostname").write_text(f"{HOSTNAME}\n")
    (scratch / "hello").write_bytes(BOOTSCRIPT)
    commands = scratch / "customize.debugfs"
    commands.write_text("\n".join([
        "rm /etc/hostname",
        f"write {scratch / 'hostname'} /etc/hostname",
        "sif /etc/hostname mode 0100644",
        f"write {scratch / 'hello'} /etc/encompass/boot.d/50-hello",
        "sif /etc/encompass/boot.d/50-hello mode 0100755",
        *(f"sif {p} {field} 0" for p in ("/etc/hostname", "/etc/encompass/boot.d/50-hello")
          for field in ("uid", "gid")),
    ]) + "\n")
    run("debugfs", "-w", "-f", commands, raw)
    # An empty overlay of the edited copy, rebased onto the master: qemu-img rebase compares
    # the two backing files and copies into the overlay only the clusters that differ.
    clone.unlink()
    run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", raw, clone)
    run("qemu-img", "rebase", "-q", "-f", "qcow2", "-F", "raw", "-b", master_disk, clone)
    raw.unlink()
    return clone


def extract_boot_files(clone: Path, guests: Path, scratch: Path) -> tuple[Path, Path]:
    """Dump /boot/vmlinuz and /boot/initrd.img out of the clone, like pygrub."""
    raw = scratch / "boot-view.raw"
    run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", clone, raw)
    kernel, initrd = guests / "vmlinuz", guests / "initrd.img"
    run("debugfs", "-R", f"dump /boot/vmlinuz {kernel}", raw)
    run("debugfs", "-R", f"dump /boot/initrd.img {initrd}", raw)
    raw.unlink()
    if not kernel.stat().st_size or not initrd.stat().st_size:
        raise SystemExit("spike: could not extract the kernel or initrd from the clone")
    return kernel, initrd


def wait_for_console(log: Path, started: float, domain_active) -> dict[str, float]:
    """Seconds from ``started`` to the first console line, the hostname line, power-off."""
    marks: dict[str, float] = {}
    deadline = started + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        now = time.monotonic() - started
        if text.strip() and "first line" not in marks:
            marks["first line"] = now
        if f"encompass-demo: hostname {HOSTNAME}" in text and "hostname line" not in marks:
            marks["hostname line"] = now
        if not domain_active():
            marks["powered off"] = now
            return marks
        time.sleep(0.05)
    raise SystemExit(f"spike: no power-off within {BOOT_TIMEOUT:.0f} s; console:\n{text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--cache", type=Path, help="package cache (default: "
                        "$ENCOMPASS_HOME/cache/demo)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--loud", action="store_true", help="boot without 'quiet'")
    args = parser.parse_args()
    home = Path(os.environ.get("ENCOMPASS_HOME", Path.home() / ".encompass"))
    cache = args.cache or home / "cache" / "demo"
    base = args.base or Path(tempfile.mkdtemp(prefix="encompass-spike-"))
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)  # the daemon may run as nobody and must traverse it
    timings: dict[str, float] = {}

    t = time.monotonic()
    master = build_demo_master(base / "demo", cache, progress=lambda m: print("  ", m))
    timings["build master"] = time.monotonic() - t
    t = time.monotonic()
    master = build_demo_master(base / "demo", cache)
    timings["build master again (cached)"] = time.monotonic() - t

    t = time.monotonic()
    daemon = start_private_daemon(base / "libvirt")
    timings["start daemon"] = time.monotonic() - t
    print(f"daemon pid {daemon.pid} as {daemon.user}: {daemon.uri}")
    try:
        guests, scratch = daemon.dirs.guests, base / "scratch"
        scratch.mkdir(exist_ok=True)
        t = time.monotonic()
        clone = clone_and_customize(master.disk, guests, scratch)
        timings["clone + customize"] = time.monotonic() - t
        t = time.monotonic()
        kernel, initrd = extract_boot_files(clone, guests, scratch)
        timings["extract kernel/initrd"] = time.monotonic() - t
        daemon.grant(master.disk, writable=False)
        for path in (clone, kernel, initrd):
            daemon.grant(path)
        print(f"clone overlay: {clone.stat().st_blocks * 512 // 1024} KiB allocated")

        console = guests / "console.log"
        cmdline = master.cmdline.replace(" quiet", "") if args.loud else master.cmdline
        xml = kvm_domain_xml("spike-web01", 256, 1, [(clone, "qcow2")], kernel, initrd,
                             cmdline, console, domain_type="qemu")
        (base / "domain.xml").write_text(xml)
        if shutil.which("virt-xml-validate") and shutil.which("xmllint"):
            run("virt-xml-validate", base / "domain.xml", "domain")  # raises when invalid
            print("domain XML validates against libvirt's schema")

        libvirt.registerErrorHandler(lambda _context, _error: None, None)
        libvirt.virEventRegisterDefaultImpl()
        threading.Thread(target=_run_event_loop, daemon=True).start()
        connection = libvirt.open(daemon.uri)
        t = time.monotonic()
        domain = connection.createXML(xml, 0)
        timings["createXML returned"] = time.monotonic() - t
        marks = wait_for_console(console, t, lambda: _active(domain))
        timings.update({f"python: {k}": v for k, v in marks.items()})
        print("console:\n" + console.read_text(errors="replace"))
        connection.close()

        # The same domain through virsh, to compare.
        console.unlink()
        t = time.monotonic()
        run("virsh", "-q", "-c", daemon.uri, "create", base / "domain.xml")
        check = libvirt.open(daemon.uri)
        domain = check.lookupByName("spike-web01")
        marks = wait_for_console(console, t, lambda: _active(domain))
        check.close()
        timings.update({f"virsh: {k}": v for k, v in marks.items()})
    finally:
        t = time.monotonic()
        daemon.stop()
        timings["stop daemon"] = time.monotonic() - t
        if not args.keep and args.base is None:
            shutil.rmtree(base)
    for name, seconds in timings.items():
        print(f"{name:32} {seconds:7.2f} s")
    return 0


def _active(domain: libvirt.virDomain) -> bool:
    try:
        return bool(domain.isActive())
    except libvirt.libvirtError:
        return False  # a transient domain is gone once it powers off


def _run_event_loop() -> None:
    while True:
        libvirt.virEventRunDefaultImpl()


if __name__ == "__main__":
    sys.exit(main())
