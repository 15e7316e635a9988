"""The redfish platform against sushy-emulator's fake driver: what discovery tells of each
server, the one-time boot source, virtual media, refused credentials, and the BMC password
kept out of every output and of the repository."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from redfish_testing import PASSWORD, make_driver

from encompass_core.errors import DriverError, InvalidInput, NotFound

ENCOMPASS = Path(sys.executable).with_name("encompass")


def server(driver, name: str):
    return next(m for m in driver.discover() if m.name == name)


def test_discovery_tells_each_server_by_uuid_mac_and_power(fake_driver):
    found = {m.name: m for m in fake_driver.discover()}
    assert sorted(found) == ["rack1-srv1", "rack1-srv2", "rack1-srv3"]
    second = found["rack1-srv2"]
    assert second.uuid == "4c4c4544-0000-1000-8000-000000000002"
    assert second.macs == ("52:54:00:ab:00:02",)
    assert (second.kind, second.platform) == ("physical", "bmc")
    assert second.power in ("on", "off")
    assert second.extra["redfish_id"] == f"/redfish/v1/Systems/{second.uuid}"


def test_systems_limits_the_platform_to_the_servers_named(tmp_path, fake_emulator, password_file):
    driver = make_driver(tmp_path, {"address": fake_emulator.url, "username": "admin",
                                    "password_file": str(password_file), "systems": ["rack1-srv3"]})
    assert [m.name for m in driver.discover()] == ["rack1-srv3"]
    with pytest.raises(NotFound, match="no system named 'rack1-srv1'"):
        driver.power(server(make_driver(tmp_path, {"address": fake_emulator.url, "username": "admin",
                                                   "password_file": str(password_file)}),
                            "rack1-srv1"), "on")


@pytest.mark.parametrize(("device", "target"), [("pxe", "Pxe"), ("disk", "Hdd"), ("media", "Cd")])
def test_the_boot_source_is_set_for_the_next_boot(fake_driver, fake_emulator, device, target):
    machine = server(fake_driver, "rack1-srv2")
    changed = fake_driver.set_boot_device(machine, device, once=True)
    boot = fake_emulator.get(machine.extra["redfish_id"])["Boot"]
    assert boot["BootSourceOverrideTarget"] == target
    # The emulator reads Once back as Continuous (PEERS.md): what it stored is checked, the
    # driver asked for Once (a real BMC clears it after the boot).
    assert boot["BootSourceOverrideEnabled"] in ("Once", "Continuous")
    assert changed.extra["boot_target"] == target
    with pytest.raises(InvalidInput, match="boot device 'floppy'"):
        fake_driver.set_boot_device(machine, "floppy", once=True)


def test_virtual_media_is_inserted_from_a_url_and_ejected(fake_driver, fake_emulator, tmp_path):
    image = tmp_path / "boot.iso"
    image.write_bytes(b"\0" * 65536)
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    http_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    try:
        machine = server(fake_driver, "rack1-srv3")
        url = f"http://127.0.0.1:{http_server.server_port}/boot.iso"
        fake_driver.insert_media(machine, url)
        manager = fake_emulator.get(fake_emulator.get(machine.extra["redfish_id"])
                                    ["Links"]["ManagedBy"][0]["@odata.id"])
        drive = fake_emulator.get(manager["VirtualMedia"]["@odata.id"] + "/Cd")
        assert drive["Inserted"] is True and drive["Image"] == url
        fake_driver.eject_media(machine)
        assert fake_emulator.get(manager["VirtualMedia"]["@odata.id"] + "/Cd")["Inserted"] is False
        fake_driver.eject_media(machine)  # already empty: not an error
    finally:
        http_server.shutdown()
        http_server.server_close()


def test_a_wrong_password_is_one_line_that_does_not_repeat_it(tmp_path, fake_emulator, monkeypatch):
    monkeypatch.setenv("BMC_PASSWORD", "Wrong-pass-9931")
    driver = make_driver(tmp_path, {"address": fake_emulator.url, "username": "admin",
                                    "password_env": "BMC_PASSWORD"})
    with pytest.raises(DriverError) as refused:
        driver.discover()
    message = str(refused.value)
    assert "refused the credentials of 'admin'" in message and "\n" not in message
    assert "Wrong-pass-9931" not in message


def test_the_bmc_password_never_reaches_output_logs_or_the_repository(tmp_path, fake_emulator):
    """Configured as a user would, through the CLI: discover, list, power; the password (in an
    environment variable) is in no output, no file of ENCOMPASS_HOME, no argv."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCOMPASS_")}
    env.update(ENCOMPASS_HOME=str(home), BMC_PASSWORD=PASSWORD, COLUMNS="200")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(ENCOMPASS), *args], env=env, capture_output=True, text=True,
                              timeout=300)

    assert cli("init").returncode == 0
    with (home / "encompass.toml").open("a") as config:
        config.write(f'\n[platforms.rack1]\ndriver = "redfish"\naddress = "{fake_emulator.url}"\n'
                     'username = "admin"\npassword_env = "BMC_PASSWORD"\npower_timeout = 60\n')
    # -v: tracebacks and every detail a failure would show are part of what is checked.
    runs = [cli("-v", "discover", "--platform", "rack1", "--apply"), cli("-v", "machine", "list", "--json"),
            cli("machine", "power", "rack1-srv3", "on"), cli("machine", "show", "rack1-srv3", "--json")]
    for done in runs:
        assert done.returncode == 0, done.stderr
        assert PASSWORD not in done.stdout + done.stderr
    assert "rack1-srv3" in runs[1].stdout
    shown = json.loads(runs[3].stdout)
    assert shown["uuid"] == "4c4c4544-0000-1000-8000-000000000003" and shown["power"] == "on"
    for path in home.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), f"the password is in {path}"
    assert PASSWORD not in fake_emulator.log.read_text(errors="replace")

    env["BMC_PASSWORD"] = "Wrong-pass-9931"
    refused = cli("machine", "power", "rack1-srv3", "off")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "refused the credentials" in refused.stderr and "Wrong-pass-9931" not in refused.stderr
