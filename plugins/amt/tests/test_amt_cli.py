"""The amt platform through the encompass command, as a user meets it: discover the PCs, list
them with their identities, power them; the password appears nowhere a user or a file could
show it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading

import pytest
from amt_testing import PASSWORD, init_home, run_cli, settings, toml_table
from encompass_amt.lab.responder import AmtLab, AmtPc


@pytest.fixture
def home(tmp_path, amt_lab: AmtLab):
    home = init_home(tmp_path / "home")
    with open(home / "encompass.toml", "a", encoding="utf-8") as config:
        config.write(toml_table("pcs", settings(amt_lab)))
    return home


def everything_written(home) -> str:
    """Every file of ENCOMPASS_HOME (configuration, metadata, logs), as text."""
    return "".join(path.read_text(errors="replace") for path in home.rglob("*") if path.is_file())


def test_discover_lists_the_pcs_and_power_turns_them_on_and_off(home, pcs, amt_lab):
    found = run_cli(home, "discover", "--platform", "pcs", "--apply")
    assert found.code == 0, found.err
    listed = json.loads(run_cli(home, "machine", "list", "--json").out)
    by_name = {machine["name"]: machine for machine in listed}
    assert sorted(by_name) == ["pc1", "pc2", "pc3"]
    assert (by_name["pc2"]["kind"], by_name["pc2"]["power"]) == ("physical", "off")
    shown = run_cli(home, "machine", "show", "pc2", "--json")
    record = json.loads(shown.out)
    assert record["uuid"] == pcs[1].uuid and record["macs"] == list(pcs[1].macs)
    assert record["addresses"] == [amt_lab.address(pcs[1])]

    on = run_cli(home, "machine", "power", "pc2", "on")
    assert on.code == 0, on.err
    assert pcs[1].backend.is_on() and not pcs[0].backend.is_on()
    off = run_cli(home, "machine", "power", "pc2", "off")
    assert off.code == 0, off.err
    assert not pcs[1].backend.is_on()

    for result in (found, on, off, shown):
        assert PASSWORD not in result.out + result.err
    assert PASSWORD not in everything_written(home)


def test_amt_power_shows_every_pc_and_amt_boot_sets_the_next_boot_only(home, pcs, amt_lab):
    assert run_cli(home, "discover", "--platform", "pcs", "--apply").code == 0
    pcs[2].backend.on = True
    shown = run_cli(home, "amt", "power", "pcs", "--json")
    assert shown.code == 0, shown.err
    assert json.loads(shown.out) == {amt_lab.address(pc): ("on" if pc is pcs[2] else "off") for pc in pcs}

    booted = run_cli(home, "amt", "boot", "pc1", "pxe")
    assert booted.code == 0, booted.err
    assert "boots pxe at its next power-on" in booted.err + booted.out
    assert run_cli(home, "machine", "power", "pc1", "on").code == 0
    assert run_cli(home, "machine", "power", "pc1", "reset").code == 0
    assert pcs[0].backend.boots == ["pxe", "default"]
    refused = run_cli(home, "amt", "boot", "pc1", "floppy")
    assert refused.code != 0 and "floppy" in refused.err


def test_a_wrong_password_is_one_line_and_no_secret(home, amt_lab):
    os.environ["AMT_TEST_PASSWORD"] = "Wrong-Guess-123"  # the amt_password fixture restores it
    refused = run_cli(home, "discover", "--platform", "pcs")
    assert refused.code != 0
    lines = refused.err.strip().splitlines()
    assert len(lines) == 1 and "refused user 'admin' (HTTP 401" in lines[0], refused.err
    assert "Wrong-Guess-123" not in refused.out + refused.err
    assert "Wrong-Guess-123" not in everything_written(home)


def test_a_password_written_in_the_file_is_refused_before_anything_runs(tmp_path, amt_lab):
    home = init_home(tmp_path / "home")
    table = settings(amt_lab, password_env=None)
    with open(home / "encompass.toml", "a", encoding="utf-8") as config:
        config.write(toml_table("pcs", table) + f'password = "{PASSWORD}"\n')
    refused = run_cli(home, "discover", "--platform", "pcs")
    assert refused.code != 0
    assert "do not write the secret 'password'" in refused.err and PASSWORD not in refused.err


def test_discover_with_a_seed_proposes_a_platform_of_the_pcs_that_answer(tmp_path):
    home = init_home(tmp_path / "home")
    with AmtLab([AmtPc("pc1"), AmtPc("pc2")], "admin", PASSWORD, consecutive=True) as lab:
        first = int(lab.endpoints[0].rpartition(":")[2])
        with socket.socket() as web:  # a web server that is not AMT answers in the range too
            web.bind(("127.0.0.1", first + 2))
            web.listen()
            threading.Thread(target=lambda: plain_http(web), daemon=True).start()
            found = run_cli(home, "discover", "--seed", f"127.0.0.1:{first - 1}-{first + 2}", "--json")
    assert found.code == 0, found.err
    proposed = [table for table in json.loads(found.out) if table.get("driver") == "amt"]
    assert proposed == [{"name": "amt1", "driver": "amt", "addresses": lab.endpoints, "user": "admin",
                         "password_env": "AMT_PASSWORD"}]


def plain_http(server: socket.socket) -> None:
    """Answer every connection as a web server asking for basic authentication."""
    with contextlib.suppress(OSError):
        while True:
            client, _ = server.accept()
            with client:
                client.recv(65536)
                client.sendall(b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm="router", '
                               b'nonce="1", qop="auth"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')


def test_a_bad_seed_is_one_line(tmp_path):
    home = init_home(tmp_path / "home")
    refused = run_cli(home, "discover", "--seed", "10.0.0.9-10.0.0.1")
    assert refused.code != 0
    assert refused.err.strip().splitlines()[-1].startswith("encompass: amt discovery, seed")
