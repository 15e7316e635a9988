"""What goes wrong between the driver and a Management Module is one clear line naming the
platform: a wrong community, no answer, an agent that is down, an object the MM does not have,
a refused SNMPv3 user or password. No secret ever shows in a message."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest
from bladecenter_testing import make_driver
from encompass_bladecenter.lab_peer import V3_USER

from encompass_core.errors import ConfigError, DriverError, EncompassError

V3_AUTH_ENV, V3_PRIV_ENV = "ENCOMPASS_TEST_BC_AUTH", "ENCOMPASS_TEST_BC_PRIV"


def refusal(driver) -> str:
    with pytest.raises(DriverError) as refused:
        driver.discover()
    driver.shutdown()
    message = str(refused.value)
    assert "\n" not in message and "'chassis1'" in message
    return message


def v3_driver(chassis, monkeypatch, auth: str | None = None, priv: str | None = None, **more):
    monkeypatch.setenv(V3_AUTH_ENV, auth or chassis.auth_password)
    monkeypatch.setenv(V3_PRIV_ENV, priv or chassis.priv_password)
    settings = {"version": "3", "community_env": None, "user": V3_USER, "auth_password_env": V3_AUTH_ENV,
                "priv_password_env": V3_PRIV_ENV, **more}
    return make_driver(chassis, **settings)


def test_a_wrong_community_is_one_line_that_names_it_and_shows_no_secret(chassis, monkeypatch):
    monkeypatch.setenv("ENCOMPASS_TEST_WRONG_COMMUNITY", "not-the-community")
    message = refusal(make_driver(chassis, community_env="ENCOMPASS_TEST_WRONG_COMMUNITY", timeout=0.5,
                                  retries=0))
    assert "did not answer in 0.5 s" in message and "community" in message
    assert "not-the-community" not in message and chassis.community not in message


def test_an_agent_that_does_not_answer_times_out(chassis):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        driver = make_driver(chassis, port=silent.getsockname()[1], timeout=0.3, retries=1)
        message = refusal(driver)
    assert "did not answer in 0.3 s (2 tries)" in message


def test_an_agent_that_is_down_is_told_apart(chassis):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    message = refusal(make_driver(chassis, port=closed, timeout=0.3, retries=0))
    assert f"no SNMP agent at 127.0.0.1:{closed} (the port is closed)" in message


def test_an_object_the_mm_does_not_have_is_named(chassis):
    driver = make_driver(chassis)

    async def ask():
        async with driver.chassis() as opened:
            return await opened.power_state(15)  # a 14-slot chassis has no slot 15

    with pytest.raises(DriverError) as refused:
        asyncio.run(ask())
    assert "has no object 1.3.6.1.4.1.2.3.51.2.22.1.4.1.1.4.15 (NoSuchInstance)" in str(refused.value)


def test_snmpv3_with_authentication_and_privacy_works(chassis, monkeypatch):
    driver = v3_driver(chassis, monkeypatch)
    assert len(driver.discover()) == 4
    driver.shutdown()


def test_a_wrong_snmpv3_password_or_user_is_one_line(chassis, monkeypatch):
    message = refusal(v3_driver(chassis, monkeypatch, auth="wrong-password-1"))
    assert "refused the SNMPv3 authentication password" in message
    assert "wrong-password-1" not in message and chassis.auth_password not in message
    message = refusal(v3_driver(chassis, monkeypatch, user="nobody-here"))
    assert "does not know the SNMPv3 user 'nobody-here'" in message


def test_settings_that_cannot_authenticate_are_refused_before_any_packet(chassis, monkeypatch):
    monkeypatch.delenv("ENCOMPASS_TEST_BLADECENTER_COMMUNITY", raising=False)
    with pytest.raises(ConfigError, match="needs its community"):
        make_driver(chassis, community_env=None)
    monkeypatch.setenv(V3_AUTH_ENV, "short")
    with pytest.raises(EncompassError, match="shorter than 8"):
        make_driver(chassis, version="3", community_env=None, user=V3_USER, auth_password_env=V3_AUTH_ENV)


def test_the_secrets_are_in_no_process_argument_list_and_no_log(chassis):
    secrets = [chassis.community, chassis.auth_password, chassis.priv_password]
    logs = [chassis.directory / "snmpd.log", chassis.directory / "agent.log",
            *(chassis.blade(slot).log for slot in chassis.slots)]
    for log in (path for path in logs if path.exists()):
        assert not any(secret in log.read_text(errors="replace") for secret in secrets), log
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                arguments = open(f"/proc/{entry}/cmdline", "rb").read().decode(errors="replace")
            except OSError:
                continue
            assert not any(secret in arguments for secret in secrets), arguments
