"""A deployed clone rebased onto a new master version: undeployed from its VM, rebuilt, and
deployed again on the same VM, which then boots the new volumes with the clone's hostname."""

from __future__ import annotations

import json
import re
from pathlib import Path

import libvirt
import pytest
from libvirt_testing import add_platform, import_demo, wait_for_line


def show(run_cli, name: str) -> dict:
    return json.loads(run_cli("image", "show", name, "--json").out)


@pytest.mark.slow
def test_a_deployed_clone_is_rebased_and_deployed_again_on_its_machine(home, run_cli, demo_master, daemon):
    add_platform(home, "kvm", {"driver": "kvm", "uri": "private", "private_dir": str(daemon.dirs.base),
                               "domain_type": "qemu", "shutdown_timeout": 0})
    import_demo(run_cli, demo_master)
    assert run_cli("master", "items", "add", "demo", "hostname", "--type", "file",
                   "--path", "/etc/hostname", "--partition", "2").code == 0
    assert run_cli("clone", "demo", "web01", "patched").code == 0
    assert run_cli("customize", "web01", "--set", "hostname=web01").code == 0
    deployed = run_cli("deploy", "web01", "--new", "--platform", "kvm")
    assert deployed.code == 0, deployed.err
    console = Path(re.search(r"console log: (\S+)", deployed.out + deployed.err).group(1))
    wait_for_line(console, "encompass-demo: hostname web01")
    updated = run_cli("master", "update", "demo", "--from", "patched")
    assert updated.code == 0, updated.err
    console.write_text("")  # what the next boot prints, only

    rebased = run_cli("rebase", "web01", "--json")

    assert rebased.code == 0, rebased.err
    [result] = json.loads(rebased.out)
    assert (result["state"], result["to_version"], result["machine"]) == ("deployed", 2, "web01")
    clone = show(run_cli, "web01")
    assert (clone["state"], clone["machine"], clone["master_version"]) == ("deployed", "web01", 2)
    with libvirt.open(daemon.uri) as connection:
        domain = connection.lookupByName("web01")
        assert domain.isActive()
        assert clone["volumes"][0]["location"] in domain.XMLDesc(0)  # the new volume boots
    assert clone["volumes"][0]["location"].endswith("web01.v2/vol0.qcow2")
    wait_for_line(console, "encompass-demo: hostname web01")
    operations = [e["operation"] for e in json.loads(run_cli("image", "history", "web01", "--json").out)]
    assert operations[-6:] == ["undeploy", "undeploy", "rebase", "rebase", "deploy", "deploy"]
    assert run_cli("undeploy", "web01", "--remove-machine").code == 0
