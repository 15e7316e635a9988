"""`encompass discover` against a real libvirt daemon changed behind Encompass' back: a domain
created is new, one removed is missing, one renamed is moved (matched by UUID), a guest whose
MAC shows on the Xen host is moved there; an unreachable platform is reported and nothing of it
marked missing; --apply twice changes nothing the second time."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import libvirt
import pytest
from encompass_libvirt.domxml import interface_xml, kvm_domain_xml
from libvirt_testing import DATA, add_platform

from encompass_core.context import Context
from encompass_core.model import Machine

UNREACHABLE = "qemu+unix:///session?socket=/nonexistent/libvirt-sock"


def report(run_cli, *args: str, code: int = 0) -> dict[str, dict]:
    """``discover --json`` by machine name (platforms and pools by theirs)."""
    result = run_cli("discover", "--json", *args)
    assert result.code == code, result.err
    return {f["name"]: f for f in json.loads(result.out) if f["subject"] in ("machine", "platform")}


def machines(home: Path) -> dict[str, Machine]:
    with Context(home).store.snapshot() as tx:
        return {m.name: attrs.evolve(m, discovered=None) for m in tx.machines()}


@pytest.fixture
def lab(home: Path, daemon):
    """A home with the private daemon (kvm), libvirt's test driver with a Xen host (xen), and a
    platform whose libvirt is not running (lost); domains are defined behind its back."""
    add_platform(home, "kvm", {"driver": "kvm", "uri": "private", "domain_type": "qemu",
                               "private_dir": str(daemon.dirs.base), "shutdown_timeout": 0})
    add_platform(home, "xen", {"driver": "xen", "uri": f"test://{DATA / 'xen-host.xml'}"})
    add_platform(home, "lost", {"driver": "kvm", "uri": UNREACHABLE})
    connection = libvirt.open(daemon.uri)
    made = []

    def define(name: str, mac: str):
        xml = kvm_domain_xml(name, 64, 1, [], None, None, "", daemon.dirs.guests / f"{name}.log",
                             domain_type="qemu", interfaces=[interface_xml("user", mac=mac)])
        made.append(connection.defineXML(xml))
        return made[-1]

    yield define
    for domain in made:
        try:
            domain.undefine()
        except libvirt.libvirtError:
            pass  # removed by the test itself
    connection.close()


def test_domains_changed_by_hand_are_new_moved_and_missing(lab, home, run_cli):
    gone = lab("recon-a", "52:54:00:00:0a:01")
    renamed = lab("recon-b", "52:54:00:00:0a:02")
    first = report(run_cli, "--platform", "kvm", "--apply")
    assert first["recon-a"]["status"] == first["recon-b"]["status"] == "new"
    assert machines(home)["recon-a"].uuid == gone.UUIDString()
    with Context(home).store.transaction() as tx:
        # Recorded earlier: one machine on the platform that is down, and a PV guest that was
        # on the kvm platform and whose MAC now shows on the Xen host.
        tx.put_machine(Machine(name="far1", platform="lost", uuid="0e0e0e0e-0000-4000-8000-000000000001"))
        tx.put_machine(Machine(name="old-pv", platform="kvm", macs=("00:16:3e:12:34:56",)))

    gone.undefine()
    renamed.rename("recon-b2", 0)
    added = lab("recon-c", "52:54:00:00:0a:03")
    found = report(run_cli, code=7)

    assert found["lost"]["status"] == "unreachable" and "cannot reach libvirt" in found["lost"]["why"]
    assert "1 recorded machine(s) left as they were" in found["lost"]["action"]

    assert found["recon-c"]["status"] == "new" and "no record has its UUID" in found["recon-c"]["why"]
    moved = found["recon-b2"]
    assert moved["status"] == "moved" and moved["action"] == "record renamed"
    assert f"by UUID {renamed.UUIDString()}" in moved["why"] and "'recon-b' is now 'recon-b2'" in moved["why"]
    assert found["legacy-pv"]["status"] == "moved"
    assert "by MAC 00:16:3e:12:34:56" in found["legacy-pv"]["why"]
    assert "now on platform xen (was kvm)" in found["legacy-pv"]["why"]
    assert found["recon-a"]["status"] == "missing" and "marked missing" in found["recon-a"]["action"]
    assert "far1" not in found  # its platform did not answer: not missing
    assert "recon-c" not in machines(home)  # a report changes nothing

    applied = report(run_cli, "--apply", code=7)

    recorded = machines(home)
    assert recorded["recon-c"].uuid == added.UUIDString()
    assert "recon-b" not in recorded and recorded["recon-b2"].uuid == renamed.UUIDString()
    assert "old-pv" not in recorded and recorded["legacy-pv"].platform == "xen"
    assert recorded["recon-a"].missing and recorded["recon-a"].uuid == gone.UUIDString()
    assert recorded["far1"].missing is None
    assert applied["recon-a"]["action"].endswith("(done)")

    again = report(run_cli, "--apply", code=7)

    assert machines(home) == recorded
    assert {again[n]["status"] for n in ("recon-b2", "recon-c", "legacy-pv")} == {"matched"}
    assert again["recon-a"]["status"] == "missing" and "already" in again["recon-a"]["action"]
    shown = run_cli("discover")
    assert shown.code == 7 and "unreachable" in shown.err and "missing" in shown.err


def test_a_stale_record_under_a_taken_name_is_a_conflict_with_its_command(lab, home, run_cli):
    lab("recon-d", "52:54:00:00:0a:04")
    with Context(home).store.transaction() as tx:
        tx.put_machine(Machine(name="recon-d", platform="kvm",
                               uuid="0e0e0e0e-0000-4000-8000-000000000002"))

    found = report(run_cli, "--platform", "kvm", "--apply")

    conflict = found["recon-d"]
    assert conflict["status"] == "conflict" and "another machine under the same name" in conflict["why"]
    assert "encompass machine forget recon-d" in conflict["action"]
    assert machines(home)["recon-d"].uuid == "0e0e0e0e-0000-4000-8000-000000000002"  # left alone
    assert run_cli("machine", "forget", "recon-d").code == 0
    assert report(run_cli, "--platform", "kvm", "--apply")["recon-d"]["status"] == "new"


def test_a_missing_machine_claiming_a_clone_is_settled_by_repair(lab, home, run_cli, tmp_path):
    disk = tmp_path / "tiny.raw"
    disk.write_bytes(b"\0" * 1024 * 1024)
    assert run_cli("master", "import", "tiny", disk).code == 0
    assert run_cli("clone", "tiny", "web07").code == 0
    with Context(home).store.transaction() as tx:
        # Deployed on a domain that was removed by hand since.
        tx.put_machine(Machine(name="ghost7", platform="kvm", image="web07",
                               uuid="0e0e0e0e-0000-4000-8000-000000000007"))
        tx.put_image(attrs.evolve(tx.image("web07"), state="deployed", machine="ghost7"))

    found = report(run_cli, "--platform", "kvm", "--apply")

    assert found["ghost7"]["status"] == "missing"
    assert "claims image 'web07' (encompass repair settles the claim)" in found["ghost7"]["why"]
    repaired = run_cli("repair", "--json")
    assert repaired.code == 0, repaired.err
    [claim] = json.loads(repaired.out)["claims"]
    assert claim["finding"] == "no platform has that machine any more"
    shown = json.loads(run_cli("image", "show", "web07", "--json").out)
    assert (shown["state"], shown["machine"]) == ("ready", None)
    assert machines(home)["ghost7"].image is None and machines(home)["ghost7"].missing
    assert run_cli("machine", "forget", "ghost7").code == 0
