"""A user's walk through a SAN pool with the ``encompass`` command: import a master onto the
subsystem, clone it both ways, customize a clone, read it back, delete; and ``encompass repair``
after a clone process was killed in the middle of its VolumeCopy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from ds4xxx_testing import ENCOMPASS, SMCLI, UTILITY_INITIATOR, cli_env, encompass, ok

from encompass_core.testing import make_source_image

MIB = 1 << 20


def shown_as(size: int, shown: int) -> bool:
    """SMcli shows capacities with three decimals of their unit (1.600 MB): close enough."""
    return abs(size - shown) <= size // 2000 + 1


def test_import_clone_customize_read_and_delete_on_the_san(home, simulator, tmp_path):
    assert "ds4xxx" in ok(home, "plugins")
    ok(home, "master", "import", "debian", str(make_source_image(tmp_path / "debian.raw")))
    ok(home, "master", "items", "add", "debian", "hostname", "--type", "file", "--path",
       "/etc/hostname", "--default", "conformance")
    ok(home, "clone", "debian", "web01")  # cow: a FlashCopy
    ok(home, "clone", "debian", "web02", "--mode", "full")  # a VolumeCopy
    assert simulator.labels() >= {"debian_0_RO", "web01_0", "web02_0"}
    flash = next(d for d in simulator.state()["drives"].values() if d["label"] == "web01_0")
    assert flash["kind"] == "flashcopy"

    shown = json.loads(ok(home, "ds4xxx", "show", "san", "--json"))
    state = simulator.state()
    assert shown["name"] == "DS4700-sim" and shown["portal"] == simulator.portal
    drives = {d["label"]: d for d in shown["drives"]}
    for drive in state["drives"].values():
        assert drives[drive["label"]]["wwn"].replace(":", "") == drive["wwn"]
        assert drives[drive["label"]]["owner"] == drive["owner"]
        assert shown_as(drive["capacity"], drives[drive["label"]]["capacity"])
    assert (drives["web01_0"]["kind"], drives["web01_0"]["base"], drives["web01_0"]["image"]) == (
        "flashcopy", "debian_0_RO", "web01")
    assert drives["web01_0-R"]["kind"] == "repository"
    used = sum(d["capacity"] for d in state["drives"].values() if d["kind"] != "flashcopy")
    assert [array["number"] for array in shown["arrays"]] == ["1"]
    assert shown_as(256 * MIB - used, shown["arrays"][0]["free"])
    assert shown["hosts"] == [{"label": "encompass-utility", "ports": [UTILITY_INITIATOR],
                               "target": state["hosts"]["encompass-utility"]["target"]}]

    ok(home, "customize", "web01", "--set", "hostname=web01")
    assert ok(home, "image", "cat", "web01", "/etc/hostname") == "web01\n"
    assert ok(home, "image", "cat", "web02", "/etc/hostname") == "conformance\n"
    assert ok(home, "image", "cat", "debian", "/etc/hostname") == "conformance\n"
    assert simulator.mappings() == {}, "nothing stays mapped to the utility server"

    ok(home, "image", "delete", "web01", "web02")
    assert simulator.labels() == {"debian_0_RO"}


def test_a_clone_killed_during_its_volume_copy_is_repaired(home, simulator, tmp_path):
    ok(home, "master", "import", "debian", str(make_source_image(tmp_path / "debian.raw")))
    simulator.set(copy_rate=MIB // 8)  # a minute for 8 MiB
    clone = subprocess.Popen([str(ENCOMPASS), "clone", "debian", "web03", "--mode", "full"],
                             env=cli_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not simulator.state()["copies"]:
            assert clone.poll() is None and time.monotonic() < deadline, "the copy never started"
            time.sleep(0.1)
        while "web03_0_P" not in ok(home, "image", "show", "web03", "--json"):
            assert time.monotonic() < deadline, "the job was never recorded on the image"
            time.sleep(0.1)
    finally:
        os.killpg(clone.pid, signal.SIGKILL)
        clone.wait()
    assert "web03_0_P" in simulator.labels()

    repaired = ok(home, "repair")
    assert "web03" in repaired
    assert simulator.labels() == {"debian_0_RO"}
    assert simulator.state()["copies"] == {}
    assert encompass(home, "image", "show", "web03").returncode != 0  # never made: gone


def test_discover_follows_a_logical_drive_renamed_on_the_subsystem_by_its_wwn(home, simulator, tmp_path):
    ok(home, "master", "import", "debian", str(make_source_image(tmp_path / "debian.raw")))
    ok(home, "clone", "debian", "web01")  # a FlashCopy reading through debian_0_RO
    ok(home, "clone", "debian", "web02", "--mode", "full")
    simulator.smcli('set logicalDrive ["web02_0"] userLabel="web02-old_0";')

    report = {f["name"]: f for f in json.loads(ok(home, "discover", "--pool", "san", "--json"))}

    assert report["web01/volume 0"]["status"] == "matched"  # its backing is what lineage says
    moved = report["web02/volume 0"]
    assert moved["status"] == "moved" and "by WWN" in moved["why"]
    assert "it was at web02_0, now at web02-old_0" in moved["why"]
    ok(home, "discover", "--pool", "san", "--apply")
    shown = json.loads(ok(home, "image", "show", "web02", "--json"))
    assert shown["volumes"][0]["location"] == "web02-old_0"
    assert ok(home, "image", "cat", "web02", "/etc/hostname") == "conformance\n"
    again = {f["name"]: f for f in json.loads(ok(home, "discover", "--pool", "san", "--apply", "--json"))}
    assert {f["status"] for f in again.values()} == {"matched"}


def test_flashcopies_cost_one_smcli_call_each_as_typed_by_hand(home, simulator, tmp_path):
    ok(home, "master", "import", "base", str(make_source_image(tmp_path / "base.raw")))
    # From here every SMcli call goes through a wrapper that writes down its script.
    log = tmp_path / "smcli.log"
    recorder = tmp_path / "SMcli-recording"
    recorder.write_text(f"#!/bin/sh\nfor last; do :; done\nprintf '%s\\n' \"$last\" >> {log}\n"
                        f"exec {SMCLI} \"$@\"\n")
    recorder.chmod(0o755)
    config = home / "encompass.toml"
    config.write_text(config.read_text().replace(str(SMCLI), str(recorder)))

    ok(home, "clone", "base", "--count", "4", "--prefix", "f")

    scripts = log.read_text().splitlines()
    assert len(scripts) == 4, scripts  # no read of the whole subsystem before each
    assert all(s.startswith('create FlashCopyLogicalDrive baseLogicalDrive="base_0_RO"') for s in scripts)
    assert {f"f{n}_0" for n in range(1, 5)} <= simulator.labels()
    shown = json.loads(ok(home, "image", "show", "f3", "--json"))
    assert shown["state"] == "ready" and shown["volumes"][0]["data"]["subsystem"] == "DS4700-sim"

    # A label taken behind Encompass's back is still named, from the profile read then.
    simulator.smcli('create logicalDrive array=1 capacity=4 MB userLabel="f5_0";')
    refused = encompass(home, "clone", "base", "f5")
    assert refused.returncode != 0 and "logical drive f5_0" in refused.stderr, refused.stderr
