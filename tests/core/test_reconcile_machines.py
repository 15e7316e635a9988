"""The machine side of reconciliation as a pure comparison: what platforms answered against the
records (the libvirt plugin's tests do the same against a real daemon)."""

from __future__ import annotations

from encompass_core.model import Image, Machine, Volume
from encompass_core.operations.reconcile_machines import compare


def statuses(answers, stored, images=(), configured=None):
    entries = compare(answers, stored, list(images), configured or set(answers))
    return {(e.finding.subject, e.finding.name): e.finding for e in entries}


def test_a_blade_is_matched_by_serial_after_it_moved_to_another_chassis():
    stored = [Machine(name="blade3", platform="chassis1", kind="physical", serial="KQ12345")]
    found = [Machine(name="blade7", platform="chassis2", kind="physical", serial="kq12345 ")]

    report = statuses({"chassis1": [], "chassis2": found}, stored)

    moved = report[("machine", "blade7")]
    assert moved.status == "moved" and "by serial kq12345" in moved.why
    assert "'blade3' is now 'blade7'" in moved.why and "now on platform chassis2" in moved.why
    assert ("machine", "blade3") not in report  # moved, not missing


def test_two_machines_sharing_a_mac_are_a_conflict_not_two_matches():
    stored = [Machine(name="vm1", platform="kvm", macs=("52:54:00:00:00:01",))]
    found = [Machine(name="vm1", platform="kvm", macs=("52:54:00:00:00:01",)),
             Machine(name="vm1-copy", platform="kvm", macs=("52:54:00:00:00:01",))]

    report = statuses({"kvm": found}, stored)

    assert report[("machine", "vm1")].status == "matched"
    copy = report[("machine", "vm1-copy")]
    assert copy.status == "conflict" and "two machines share it" in copy.why


def test_a_machine_running_another_image_than_recorded_is_a_conflict():
    images = [Image(name=n, kind="clone", state="deployed",
                    volumes=(Volume(0, "local", "qcow2", f"/pool/{n}/vol0.qcow2"),))
              for n in ("web01", "web02")]
    stored = [Machine(name="vm1", platform="kvm", uuid="U1", image="web01")]
    found = [Machine(name="vm1", platform="kvm", uuid="u1", disks=("/pool/web02/vol0.qcow2",))]

    conflict = statuses({"kvm": found}, stored, images)[("machine", "vm1")]

    assert conflict.status == "conflict"
    assert "uses the volumes of image 'web02', the records say it runs 'web01'" in conflict.why
    assert "encompass repair" in conflict.action


def test_a_record_without_identity_is_matched_by_name_and_an_unasked_platform_is_left_alone():
    stored = [Machine(name="pc1", platform="office"), Machine(name="vm9", platform="kvm")]

    report = statuses({"office": [Machine(name="pc1", platform="office")]}, stored,
                      configured={"office", "kvm"})

    assert report[("machine", "pc1")].why == "matched by name (the record has no UUID, serial or MAC)"
    assert ("machine", "vm9") not in report
