"""SLPv2: the codec against the bytes RFC 2608 lays out, and the discovery of Management Modules
from seed addresses against a loopback responder, up to `encompass discover --seed`."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

import pytest
from bladecenter_testing import encompass
from encompass_bladecenter import slp
from encompass_bladecenter.plugin import BladeCenterPlugin
from encompass_bladecenter.slpfind import find_modules, seed_targets
from slp_responder import Responder

from encompass_core.errors import InvalidInput
from encompass_core.records import DiscoveryContext

MM_URL = "service:management-hardware.IBM:management-module://127.0.0.1"
ATTRIBUTES = ("(enclosure-name=Rack 4 Chassis),(enclosure-serial-number=KQ1234X),"
              "(enclosure-machinetype-model=8852HC1),(fru-number=39Y9661),(ip-address=127.0.0.1)")


def test_a_service_request_has_the_layout_of_rfc_2608():
    message = slp.encode(slp.ServiceRequest(slp.MM_SERVICE), xid=0x1234)

    service = slp.MM_SERVICE.encode()
    body = b"\x00\x00" + struct.pack("!H", len(service)) + service + b"\x00\x07DEFAULT" + b"\x00\x00" * 2
    assert message == (bytes([2, 1]) + (16 + len(body)).to_bytes(3, "big") + b"\x00\x00" + b"\x00\x00\x00"
                       + b"\x12\x34" + b"\x00\x02" + b"en" + body)
    header, decoded = slp.decode(message)
    assert (header.function, header.xid, header.language) == (slp.SRV_RQST, 0x1234, "en")
    assert decoded == slp.ServiceRequest(slp.MM_SERVICE)


def test_a_service_reply_from_another_implementation_is_read():
    url = MM_URL.encode()
    auth_block = struct.pack("!HH", 2, 10) + b"\x00" * 6  # one URL auth block, to be skipped
    body = struct.pack("!HH", 0, 1) + b"\x00" + struct.pack("!HH", 300, len(url)) + url + b"\x01" + auth_block
    message = bytes([2, 2]) + (16 + len(body)).to_bytes(3, "big") + b"\x00" * 5 + b"\x00\x07\x00\x02en" + body

    header, reply = slp.decode(message)

    assert header.xid == 7 and reply == slp.ServiceReply(((MM_URL, 300),))


def test_garbage_is_refused_in_one_line():
    for data, reason in ((b"\x01" * 20, "version 1"), (b"\x02\x01\x00", "too short"),
                         (slp.encode(slp.ServiceRequest("x"), 1)[:-3], "says")):
        with pytest.raises(slp.SlpError, match=reason):
            slp.decode(data)


def test_attributes_are_parsed_with_their_escapes():
    parsed = slp.parse_attributes(r"(enclosure-name=Rack 4\2c left),secure,(a=1)")
    assert parsed == {"enclosure-name": "Rack 4, left", "secure": "", "a": "1"}


def test_seeds_are_addresses_ports_and_ranges():
    assert seed_targets(["10.0.0.5", "127.0.0.1:4270", "10.1.0.0/30"]) == [
        ("10.0.0.5", 427), ("127.0.0.1", 4270), ("10.1.0.1", 427), ("10.1.0.2", 427)]
    with pytest.raises(ValueError, match="spans 65536 addresses"):
        seed_targets(["10.0.0.0/16"])


def test_a_management_module_is_found_from_its_address():
    with Responder(MM_URL, ATTRIBUTES) as responder, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as idle:
        idle.bind(("127.0.0.1", 0))  # a seed where nothing answers: it times out, the rest goes on
        found = asyncio.run(find_modules([f"127.0.0.1:{responder.port}",
                                          f"127.0.0.1:{idle.getsockname()[1]}"], timeout=0.5))
    assert [(m.url, m.address) for m in found] == [(MM_URL, "127.0.0.1")]
    assert found[0].attributes["enclosure-serial-number"] == "KQ1234X"
    assert isinstance(responder.requests[0], slp.ServiceRequest)


def test_the_hook_proposes_a_platform_table_and_refuses_a_bad_seed():
    plugin = BladeCenterPlugin()
    with Responder(MM_URL, ATTRIBUTES) as responder:
        tables = plugin.encompass_discover_platforms(DiscoveryContext(seeds=(f"127.0.0.1:{responder.port}",)))
    assert tables == [{"name": "rack-4-chassis", "driver": "bladecenter", "address": "127.0.0.1",
                       "version": "2c", "community_env": "ENCOMPASS_RACK_4_CHASSIS_COMMUNITY"}]
    with pytest.raises(InvalidInput, match="not an address"):
        plugin.encompass_discover_platforms(DiscoveryContext(seeds=("not an address",)))


def test_encompass_discover_seed_prints_the_tables_to_add(tmp_path: Path):
    home = tmp_path / "home"
    assert encompass(home, "init").returncode == 0
    with Responder(MM_URL, ATTRIBUTES) as responder:
        found = encompass(home, "discover", "--seed", f"127.0.0.1:{responder.port}")
    assert found.returncode == 0, found.stderr
    assert "[platforms.rack-4-chassis]\ndriver = 'bladecenter'\naddress = '127.0.0.1'" in found.stdout
    assert "community_env = 'ENCOMPASS_RACK_4_CHASSIS_COMMUNITY'" in found.stdout
