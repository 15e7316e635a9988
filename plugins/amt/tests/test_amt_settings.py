"""The addresses a platform names: listed, or a range of addresses or of ports; mistakes are one line."""

from __future__ import annotations

import pytest
from encompass_amt.settings import Endpoint, endpoints

from encompass_core.errors import ConfigError

WHERE = "[platforms.pcs]"


def test_listed_addresses_take_the_default_port_of_their_protocol():
    found, probing = endpoints({"addresses": ["10.0.0.5", "pc7:17000", "[fd00::5]:16993"]}, WHERE)
    assert not probing
    assert found == [Endpoint("10.0.0.5", 16992), Endpoint("pc7", 17000), Endpoint("fd00::5", 16993)]
    assert found[2].url == "http://[fd00::5]:16993/wsman"
    tls, _ = endpoints({"addresses": ["10.0.0.5"], "tls": True}, WHERE)
    assert tls[0].url == "https://10.0.0.5:16993/wsman"


def test_ranges_of_addresses_networks_and_ports():
    assert [e.host for e in endpoints({"range": "10.0.0.250-10.0.1.2"}, WHERE)[0]] == \
        ["10.0.0.250", "10.0.0.251", "10.0.0.252", "10.0.0.253", "10.0.0.254", "10.0.0.255",
         "10.0.1.0", "10.0.1.1", "10.0.1.2"]
    network, probing = endpoints({"range": "192.168.5.0/30", "port": 16993}, WHERE)
    assert probing and [(e.host, e.port) for e in network] == [("192.168.5.1", 16993), ("192.168.5.2", 16993)]
    ports, _ = endpoints({"range": "127.0.0.1:17000-17002"}, WHERE)
    assert [e.label for e in ports] == ["127.0.0.1:17000", "127.0.0.1:17001", "127.0.0.1:17002"]


@pytest.mark.parametrize(("table", "says"), [
    ({}, "either as addresses"),
    ({"addresses": ["a"], "range": "10.0.0.1-10.0.0.2"}, "one of the two"),
    ({"range": "10.0.0.9-10.0.0.1"}, "from the lower address"),
    ({"range": "10.0.0.0/8"}, "split it"),
    ({"range": "10.0.0.1"}, "A.B.C.D-A.B.C.E"),
    ({"range": "pc-one-pc-two"}, "range 'pc-one-pc-two'"),
    ({"addresses": ["pc:99999"]}, "no valid port"),
    ({"addresses": [5]}, "list of"),
])
def test_a_bad_address_setting_is_one_line_naming_the_table(table, says):
    with pytest.raises(ConfigError) as refused:
        endpoints(table, WHERE)
    message = str(refused.value)
    assert says in message and message.startswith(WHERE) and "\n" not in message
