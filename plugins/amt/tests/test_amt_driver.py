"""The amt driver against the lab's WS-Man responder: discovery, power, one-time boot sources,
and every way a PC can fail a request, each one line naming the platform and the PC."""

from __future__ import annotations

import socket
import time

import pytest
from amt_testing import PASSWORD, platform_driver, settings
from encompass_amt.client import AmtError
from encompass_amt.lab.responder import AmtLab, AmtPc

from encompass_core.errors import DriverError, InvalidInput, NotFound, NotSupported
from encompass_core.model import HostPort, Machine


def one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message and "Traceback" not in message
    assert "platform 'pcs'" in message
    assert PASSWORD not in message
    return message


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed when the with block ends: nothing listens


def test_discover_lists_each_pc_with_its_identity(platform, pcs, amt_lab):
    found = {machine.name: machine for machine in platform.discover()}
    assert sorted(found) == ["pc1", "pc2", "pc3"]
    for pc in pcs:
        machine = found[pc.hostname]
        assert (machine.kind, machine.platform, machine.power) == ("physical", "pcs", "off")
        assert machine.uuid == pc.uuid  # read back from the PlatformGUID's SMBIOS byte order
        assert machine.macs == pc.macs
        assert machine.addresses == (amt_lab.address(pc),)
        assert machine.host_ports == (HostPort("iscsi", f"iqn.2010-04.org.ipxe:{pc.uuid}"),)
        assert machine.extra["serial"] == pc.serial


def test_power_on_off_and_reset_reach_the_pc(platform, pcs):
    pc1 = Machine(name="pc1", platform="pcs", kind="physical")
    assert platform.power(pc1, "on").power == "on"
    assert pcs[0].backend.is_on() and not pcs[1].backend.is_on()
    assert platform.power(pc1, "reset").power == "on"
    assert pcs[0].backend.boots == ["default", "default"]  # the reset booted it again
    assert platform.power(pc1, "off").power == "off"
    assert not pcs[0].backend.is_on()
    assert platform.power_states() == {f"127.0.0.1:{port}": "off" for port in
                                       (int(e.rpartition(":")[2]) for e in platform_ports(platform))}
    with pytest.raises(InvalidInput):
        platform.power(pc1, "hibernate")


def platform_ports(platform) -> list[str]:
    return [endpoint.label for endpoint in platform.endpoints]


@pytest.mark.parametrize(("source", "boots"), [("pxe", "pxe"), ("hdd", "hdd"), ("cd", "cd"),
                                                ("ider-cd", "ider-cd"), ("ider-floppy", "ider-floppy")])
def test_a_one_time_boot_source_is_used_by_the_next_power_on_only(platform, pcs, source, boots):
    pc2 = Machine(name="pc2", platform="pcs", kind="physical")
    platform.boot_once(pc2, source)
    platform.power(pc2, "on")
    platform.power(pc2, "reset")
    assert pcs[1].backend.boots == [boots, "default"]
    assert pcs[1].boot_settings["UseIDER"] == "false"  # AMT forgot it after that boot
    assert pcs[1].boot_settings["IDERBootDevice"] == ("1" if source == "ider-cd" else "0")


def test_the_contract_boot_devices_map_to_amt_sources_once_only(platform, pcs):
    pc3 = Machine(name="pc3", platform="pcs", kind="physical")
    platform.set_boot_device(pc3, "san", once=True)
    platform.power(pc3, "on")
    assert pcs[2].backend.boots == ["hdd"]
    with pytest.raises(NotSupported) as refused:
        platform.set_boot_device(pc3, "pxe", once=False)
    assert "next boot only" in one_line(refused.value)
    with pytest.raises(InvalidInput):
        platform.set_boot_device(pc3, "floppy", once=True)


def test_an_unknown_machine_is_not_found(platform):
    with pytest.raises(NotFound) as missing:
        platform.power(Machine(name="pc9", platform="pcs"), "on")
    assert "no AMT PC named 'pc9'" in one_line(missing.value)


def test_a_wrong_password_is_one_line_without_the_password(amt_lab, tmp_path, monkeypatch):
    monkeypatch.setenv("AMT_TEST_PASSWORD", "not-the-password")
    with pytest.raises(DriverError) as refused:
        platform_driver(tmp_path, settings(amt_lab)).discover()
    message = one_line(refused.value)
    assert "refused user 'admin' (HTTP 401" in message and "password_env" in message
    assert "not-the-password" not in message


def test_a_pc_that_is_down_is_one_line(tmp_path):
    driver = platform_driver(tmp_path, settings(addresses=[f"127.0.0.1:{closed_port()}"]))
    with pytest.raises(DriverError) as down:
        driver.discover()
    assert "does not answer" in one_line(down.value)


def test_a_pc_slower_than_the_timeout_is_one_line(amt_lab, pcs, tmp_path):
    amt_lab.endpoint(pcs[0]).stall = True
    driver = platform_driver(tmp_path, settings(addresses=[amt_lab.address(pcs[0])], timeout=0.5))
    with pytest.raises(DriverError) as slow:
        driver.discover()
    assert "within 0.5 s (the platform's timeout setting)" in one_line(slow.value)


def test_a_soap_fault_is_one_line_with_its_code_and_reason(amt_lab, pcs, platform):
    pcs[0].denied.add("RequestPowerStateChange")
    with pytest.raises(AmtError) as denied:
        platform.power(Machine(name="pc1", platform="pcs"), "on")
    message = one_line(denied.value)
    assert "refused power the PC on: AccessDenied: The sender was not authorized" in message
    assert not pcs[0].backend.is_on()


def test_a_listed_pc_that_is_down_stays_listed_and_a_range_skips_silence(amt_lab, pcs, tmp_path):
    down = f"127.0.0.1:{closed_port()}"
    listed = platform_driver(tmp_path, settings(addresses=[*amt_lab.endpoints, down])).discover()
    ghost = next(machine for machine in listed if machine.addresses == (down,))
    assert ghost.power == "unknown" and "does not answer" in ghost.extra["error"]
    assert len(listed) == 4


def test_a_range_lists_the_pcs_that_answer_and_skips_silent_addresses(tmp_path):
    with AmtLab([AmtPc("pc1"), AmtPc("pc2")], "admin", PASSWORD, consecutive=True) as lab:
        first = int(lab.endpoints[0].rpartition(":")[2])
        assert lab.endpoints[1] == f"127.0.0.1:{first + 1}"
        span = f"127.0.0.1:{first - 2}-{first + 3}"  # four addresses around them answer nothing
        probed = platform_driver(tmp_path, settings(range=span, timeout=1.0)).discover()
    assert [(machine.name, machine.addresses) for machine in probed] == \
        [("pc1", (lab.endpoints[0],)), ("pc2", (lab.endpoints[1],))]


def test_a_hundred_pcs_are_polled_at_once(tmp_path):
    with AmtLab([AmtPc(f"pc{n}", latency=0.1) for n in range(100)], "admin", PASSWORD) as lab:
        driver = platform_driver(tmp_path, settings(lab))
        assert list(driver.power_states().values()) == ["off"] * 100  # digest challenges answered
        lab.pcs[7].backend.on = True
        started = time.monotonic()
        states = driver.power_states()
        took = time.monotonic() - started
    assert [label for label, state in states.items() if state == "on"] == [lab.endpoints[7]]
    assert took < 100 * 0.1 / 3, f"100 PCs answering in 0.1 s each took {took:.2f} s: not concurrent"


def test_a_challenge_kept_from_an_earlier_poll_is_renewed_when_the_pc_forgot_it(platform, pcs, amt_lab):
    assert set(platform.power_states().values()) == {"off"}
    for pc in pcs:  # as after the PC's firmware restarted: its nonces are gone
        amt_lab.endpoint(pc).gate._nonces.clear()
    assert set(platform.power_states().values()) == {"off"}


class BrokenBackend:
    """A PC whose insides fail: the responder answers HTTP 500, as a web server does."""

    blocking = False

    def is_on(self) -> bool:
        raise RuntimeError("the chipset does not answer")


def test_a_pc_answering_an_http_error_is_one_line(tmp_path):
    with AmtLab([AmtPc("pc1", backend=BrokenBackend())], "admin", PASSWORD) as lab:
        with pytest.raises(AmtError) as failed:
            platform_driver(tmp_path, settings(lab)).power_states()
    message = one_line(failed.value)
    assert "answered Get CIM_AssociatedPowerManagementService with HTTP 500" in message
