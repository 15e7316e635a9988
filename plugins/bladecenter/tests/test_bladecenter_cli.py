"""As a user: a chassis configured in encompass.toml, `encompass discover` lists its blades with
their identities, `encompass machine power` turns them on and off. The community reaches
neither the metadata, nor the output, nor a log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bladecenter_testing import COMMUNITY_ENV, encompass, toml_table


@pytest.fixture
def home(tmp_path: Path, chassis) -> Path:
    folder = tmp_path / "home"
    assert encompass(folder, "init").returncode == 0
    with open(folder / "encompass.toml", "a", encoding="utf-8") as config:
        config.write(toml_table("chassis1", chassis.platform_table(COMMUNITY_ENV)))
    return folder


def test_discover_lists_the_blades_and_power_turns_them_on_and_off(home, chassis):
    env = {COMMUNITY_ENV: chassis.community}
    found = encompass(home, "discover", "--apply", **env)
    assert found.returncode == 0, found.stderr
    assert "platform:chassis1" in found.stdout and "chassis1-blade3" in found.stdout

    listed = json.loads(encompass(home, "machine", "list", "--json", **env).stdout)
    assert {(m["name"], m["kind"], m["power"]) for m in listed} == {
        (f"chassis1-blade{slot}", "physical", "off") for slot in (1, 2, 3, 4)}
    shown = json.loads(encompass(home, "machine", "show", "chassis1-blade3", "--json", **env).stdout)
    identity = chassis.blade(3).identity
    assert shown["uuid"] == identity.uuid and shown["macs"] == [identity.mac]
    assert shown["host_ports"] == [{"kind": "iscsi", "address": identity.initiator}]

    powered = encompass(home, "machine", "power", "chassis1-blade3", "on", **env)
    assert powered.returncode == 0, powered.stderr
    assert "machine 'chassis1-blade3' is on" in powered.stdout + powered.stderr
    assert chassis.blade(3).power_state() == "on"
    stopped = encompass(home, "machine", "power", "chassis1-blade3", "off", **env)
    assert "is off" in stopped.stdout + stopped.stderr and chassis.blade(3).power_state() == "off"

    said = found.stdout + found.stderr + powered.stdout + powered.stderr
    stored = "".join(path.read_text(errors="replace") for path in home.rglob("*") if path.is_file())
    assert chassis.community not in said and chassis.community not in stored


def test_a_community_written_in_the_file_is_refused(home, chassis):
    config = home / "encompass.toml"
    config.write_text(config.read_text().replace(f'community_env = "{COMMUNITY_ENV}"',
                                                 'community = "public-secret"'))
    refused = encompass(home, "discover")
    assert refused.returncode != 0
    assert "do not write the secret 'community' in the file" in refused.stderr
    assert "public-secret" not in refused.stderr and "Traceback" not in refused.stderr


def test_a_wrong_community_is_one_line_on_stderr(home, chassis):
    config = home / "encompass.toml"
    config.write_text(config.read_text().replace("timeout = 5.0", "timeout = 0.5"))
    refused = encompass(home, "discover", "--platform", "chassis1", **{COMMUNITY_ENV: "wrong-one"})
    assert refused.returncode != 0
    lines = [line for line in refused.stderr.splitlines() if "chassis1" in line]  # not other plugins'
    assert len(lines) == 1 and "did not answer in 0.5 s" in lines[0], refused.stderr
    assert "Traceback" not in refused.stderr
    assert "wrong-one" not in refused.stderr + refused.stdout
