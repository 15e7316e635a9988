"""What a new user does against a running vCenter (vcsim): a master of the local pool cloned
onto a datastore, deployed as a new VM, powered off and on, undeployed; errors in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from encompass_core.testing import make_source_image

ENCOMPASS = Path(sys.executable).with_name("encompass")


def table(name: str, settings: dict) -> str:
    lines = [f"\n[{name}]"]
    for key, value in settings.items():
        shown = json.dumps(value) if isinstance(value, str) else str(value).lower()
        lines.append(f"{key} = {shown}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def cli(vcsim, tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCOMPASS_")}
    env.update(ENCOMPASS_HOME=str(home), VCSIM_PASSWORD="pass", COLUMNS="200")

    def run(*args: object, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(ENCOMPASS), *map(str, args)], env={**env, **extra},
                              capture_output=True, text=True, timeout=300, check=False)

    assert run("init").returncode == 0
    with open(home / "encompass.toml", "a", encoding="utf-8") as config:
        config.write(table("platforms.vc", vcsim.settings()))
        config.write(table("pools.ds1", vcsim.settings(datastore="LocalDS_0", folder="cli")))
    return run


def test_a_local_master_is_cloned_onto_a_datastore_deployed_and_powered(cli, tmp_path, platform):
    listed = cli("plugins")
    assert any(line.split()[:2] == ["esx", "active"] for line in listed.stdout.splitlines())
    master = make_source_image(tmp_path / "master.raw", size_mib=8)
    assert cli("master", "import", "demo", master, "--hw", "memory=256M").returncode == 0
    cloned = cli("clone", "demo", "web01", "--pool", "ds1", "--mode", "full")
    assert cloned.returncode == 0, cloned.stderr
    web01 = json.loads(cli("image", "show", "web01", "--json").stdout)
    assert web01["volumes"][0]["location"] == "[LocalDS_0] cli/web01/vol0.vmdk"
    assert web01["volumes"][0]["format"] == "vmdk"

    deployed = cli("deploy", "web01", "--new", "--platform", "vc")
    assert deployed.returncode == 0, deployed.stderr
    vm = next(m for m in platform.discover() if m.name == "web01")
    assert vm.power == "on" and vm.disks == ("[LocalDS_0] cli/web01/vol0.vmdk",)
    assert (vm.hardware.memory_mib, vm.hardware.cpus) == (256, 1)
    assert cli("machine", "power", "web01", "off").returncode == 0
    assert next(m for m in platform.discover() if m.name == "web01").power == "off"
    assert cli("machine", "power", "web01", "on").returncode == 0

    moved = cli("esx", "migrate", "web01", "--host", "DC0_C0_H1", "--datastore", "LocalDS_1")
    assert moved.returncode == 0, moved.stderr
    assert "host DC0_C0_H1, datastore LocalDS_1" in moved.stdout + moved.stderr
    vm = next(m for m in platform.discover() if m.name == "web01")
    assert (vm.extra["host"], vm.extra["datastores"], vm.power) == ("DC0_C0_H1", ["LocalDS_1"], "on")
    resized = cli("esx", "reconfigure", "web01", "--cpus", "2", "--memory", "1G")
    assert resized.returncode == 0, resized.stderr
    shown = json.loads(cli("machine", "show", "web01", "--json").stdout)
    assert (shown["hardware"]["cpus"], shown["hardware"]["memory_mib"]) == (2, 1024)
    assert shown["extra"]["host"] == "DC0_C0_H1"
    nowhere = cli("esx", "migrate", "web01", "--host", "DC9_H9")
    assert nowhere.returncode == 3 and "no host 'DC9_H9'" in nowhere.stderr
    # The core's commands reach the same: vMotion of the clone's machine, resize in the profile.
    live = cli("migrate", "web01", "--host", "DC0_C0_H2")
    assert live.returncode == 0, live.stderr
    assert next(m for m in platform.discover() if m.name == "web01").extra["host"] == "DC0_C0_H2"
    assert "moved live to host 'DC0_C0_H2'" in cli("image", "history", "web01").stdout
    resized = cli("machine", "resize", "web01", "--cpus", "3")
    assert resized.returncode == 0, resized.stderr
    assert next(m for m in platform.discover() if m.name == "web01").hardware.cpus == 3
    below = cli("machine", "resize", "web01", "--memory", "128M")
    assert below.returncode == 4 and "hardware profile needs 256 MiB" in below.stderr

    undeployed = cli("undeploy", "web01", "--remove-machine")
    assert undeployed.returncode == 0, undeployed.stderr
    assert "web01" not in [m.name for m in platform.discover()]
    # The VM went; the clone's VMDK stayed in the pool.
    assert cli("image", "show", "web01", "--json").returncode == 0


def test_the_inventory_lists_datacenters_clusters_hosts_datastores_and_networks(cli):
    done = cli("esx", "inventory", "vc", "--json")
    assert done.returncode == 0, done.stderr
    found = {kind: [item["name"] for item in items] for kind, items in json.loads(done.stdout).items()}
    assert found["datacenters"] == ["DC0"] and found["clusters"] == ["DC0_C0"]
    assert sorted(found["hosts"]) == ["DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2", "DC0_H0"]
    assert sorted(found["datastores"]) == ["LocalDS_0", "LocalDS_1"]
    assert "VM Network" in found["networks"] and "DC0_DVPG0" in found["networks"]


def test_a_wrong_password_is_one_line_and_exit_code_7(cli):
    done = cli("discover", "--platform", "vc", VCSIM_PASSWORD="wrong")
    assert done.returncode == 7
    assert done.stderr.strip().count("\n") == 0 and "refused the login" in done.stderr
    assert "wrong" not in done.stderr.replace("wrong user", "")


def test_a_clone_of_hostname_and_address_items_is_customized_by_vsphere_or_else_in_its_files(
        cli, tmp_path, vcsim, platform):
    with open(tmp_path / "home" / "encompass.toml", "a", encoding="utf-8") as config:
        config.write(table("platforms.vcnet", vcsim.settings(network="VM Network")))
        config.write(table("platforms.notools", vcsim.settings(network="VM Network",
                                                               guest_customization=False)))
    master = make_source_image(tmp_path / "master.raw", size_mib=8)
    assert cli("master", "import", "base", master, "--hw", "memory=256M").returncode == 0
    for key, path in (("hostname", "/etc/hostname"), ("ip", "/etc/encompass/ip"),
                      ("netmask", "/etc/encompass/netmask")):
        added = cli("master", "items", "add", "base", key, "--type", "file", "--path", path,
                    "--platform-key", key)
        assert added.returncode == 0, added.stderr
    original = cli("image", "cat", "base", "/etc/hostname").stdout

    for clone, address in (("web11", "10.0.0.11"), ("web12", "10.0.0.12")):
        assert cli("clone", "base", clone, "--pool", "ds1", "--mode", "full").returncode == 0
        done = cli("customize", clone, "--set", f"hostname={clone}", "--set", f"ip={address}",
                   "--set", "netmask=255.255.255.0")
        assert done.returncode == 0, done.stderr
        applied = json.loads(cli("image", "show", clone, "--json").stdout)["applied"]
        assert {r["by"] for r in applied.values()} == {"platform"}
        assert {r["machine"] for r in applied.values()} == {None}
        # Nothing was written into the clone's files.
        assert cli("image", "cat", clone, "/etc/hostname").stdout == original

    # A platform that customizes guests: vSphere's spec, applied as the guest starts.
    deployed = cli("deploy", "web11", "--new", "--platform", "vcnet")
    assert deployed.returncode == 0, deployed.stderr
    vm = next(m for m in platform.discover() if m.name == "web11")
    assert vm.extra["guest_hostname"] == "web11" and vm.addresses == ("10.0.0.11",)
    applied = json.loads(cli("image", "show", "web11", "--json").stdout)["applied"]
    assert {r["machine"] for r in applied.values()} == {"web11"}
    assert cli("image", "cat", "web11", "/etc/hostname").stdout == original

    # One that does not (guests without VMware Tools): the core writes the files first.
    deployed = cli("deploy", "web12", "--new", "--platform", "notools")
    assert deployed.returncode == 0, deployed.stderr
    assert cli("image", "cat", "web12", "/etc/hostname").stdout == "web12\n"
    assert cli("image", "cat", "web12", "/etc/encompass/ip").stdout == "10.0.0.12\n"
    applied = json.loads(cli("image", "show", "web12", "--json").stdout)["applied"]
    assert not any("by" in r for r in applied.values())
    vm = next(m for m in platform.discover() if m.name == "web12")
    assert vm.extra.get("guest_hostname") != "web12"  # no spec was sent

    for clone in ("web11", "web12"):
        assert cli("undeploy", clone, "--remove-machine").returncode == 0
