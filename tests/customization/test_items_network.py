"""The ``network`` item: each format written as its own tools read it, values checked first.

ifupdown's result is read back with ``ifquery -i FILE IFACE`` (package ifupdown); keyfiles and
.network units with configparser, as NetworkManager's and networkd's INI readers would.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest
from item_layouts import tree_state

from encompass_core.customization.access import VolumeRef
from encompass_core.customization.items import build_item
from encompass_core.customization.itemtypes.network import NetworkCustomizer
from encompass_core.customization.openers.dirtree import DirTreeOpener
from encompass_core.errors import InvalidInput, NotFound

# As Debian's installer writes it.
DEBIAN_INTERFACES = """\
# This file describes the network interfaces available on your system
# and how to activate them. For more information, see interfaces(5).

# The loopback network interface
auto lo
iface lo inet loopback

# The primary network interface
allow-hotplug eth0
iface eth0 inet dhcp
\tdns-search example.net

# A second card
auto eth1
iface eth1 inet manual
"""
STATIC = "192.0.2.10/24,gateway=192.0.2.1,dns=192.0.2.2,dns=192.0.2.3,mtu=1450"


def item(**params) -> object:
    return build_item({"key": "net", "type": "network", "path": "/",
                       "params": params or {"interface": "eth0"}})


def apply(root: Path, value: str, net=None) -> None:
    net = net or item()
    NetworkCustomizer().validate(net)
    with DirTreeOpener().open(VolumeRef(str(root), "dir"), True) as fs:
        NetworkCustomizer().apply(fs, net, value, "web01")


def revert(root: Path, parent: Path, net=None) -> None:
    with DirTreeOpener().open(VolumeRef(str(root), "dir"), True) as fs, \
            DirTreeOpener().open(VolumeRef(str(parent), "dir"), False) as parent_fs:
        NetworkCustomizer().revert(fs, net or item(), parent_fs)


def clone_of(master: Path, tmp_path: Path) -> Path:
    shutil.copytree(master, tmp_path / "clone", symlinks=True)
    return tmp_path / "clone"


def ifquery(root: Path, interface: str) -> dict[str, str]:
    done = subprocess.run(["ifquery", "-i", str(root / "etc/network/interfaces"), interface],
                          capture_output=True, text=True, check=True)
    return dict(line.split(": ", 1) for line in done.stdout.splitlines())


@pytest.fixture
def debian(tmp_path) -> Path:
    master = tmp_path / "master"
    (master / "etc/network").mkdir(parents=True)
    (master / "etc/network/interfaces").write_text(DEBIAN_INTERFACES)
    return master


def test_ifupdown_static_then_dhcp_then_revert(debian, tmp_path):
    clone = clone_of(debian, tmp_path)
    apply(clone, STATIC)
    assert ifquery(clone, "eth0") == {"address": "192.0.2.10", "netmask": "255.255.255.0",
                                      "broadcast": "192.0.2.255", "gateway": "192.0.2.1",
                                      "dns-nameservers": "192.0.2.2 192.0.2.3", "mtu": "1450"}
    assert ifquery(clone, "eth1") == {}  # the other stanzas are as they were
    text = (clone / "etc/network/interfaces").read_text()
    assert "allow-hotplug eth0" not in text and "auto eth0\niface eth0 inet static" in text
    assert text.index("auto eth0") < text.index("# A second card")  # in the old stanza's place
    apply(clone, "dhcp")  # applied again over itself: one stanza, now DHCP
    assert (clone / "etc/network/interfaces").read_text().count("iface eth0") == 1
    assert ifquery(clone, "eth0") == {}
    assert "iface eth0 inet dhcp" in (clone / "etc/network/interfaces").read_text()
    revert(clone, debian)
    assert tree_state(clone) == tree_state(debian)


def test_ipv6_on_a_new_interface_is_appended(debian, tmp_path):
    clone = clone_of(debian, tmp_path)
    net = item(interface="eth2")
    apply(clone, "2001:db8::10/64,gateway=2001:db8::1", net)
    found = ifquery(clone, "eth2")
    assert (found["address"], found.get("netmask", "64"), found["gateway"]) == (
        "2001:db8::10", "64", "2001:db8::1"), found
    assert (clone / "etc/network/interfaces").read_text().startswith(DEBIAN_INTERFACES)


@pytest.mark.parametrize(("value", "message"), [
    ("192.0.2.10", "has no prefix length"),
    ("192.0.2.300/24", "is not an address/prefix"),
    ("192.0.2.0/24", "network address"),
    ("192.0.2.10/24,gateway=198.51.100.1", "not in the network 192.0.2.0/24"),
    ("192.0.2.10/24,gateway=2001:db8::1", "not in the network"),
    ("192.0.2.10/24,dns=resolver", "dns 'resolver' is not an IP address"),
    ("192.0.2.10/24,mtu=9", "mtu='9'"),
    ("dhcp,gateway=192.0.2.1", "a gateway comes from DHCP"),
    ("192.0.2.10/24,vlan=3", "unknown option 'vlan'"),
    ("", "no network configuration"),
])
def test_bad_values_are_refused_before_writing(debian, tmp_path, value, message):
    clone = clone_of(debian, tmp_path)
    with pytest.raises(InvalidInput, match=message) as refused:
        apply(clone, value)
    assert "\n" not in str(refused.value)
    assert tree_state(clone) == tree_state(debian)


def test_bad_parameters():
    with pytest.raises(InvalidInput, match="say which interface"):
        NetworkCustomizer().validate(build_item({"key": "n", "type": "network", "path": "/"}))
    with pytest.raises(InvalidInput, match="not a MAC address"):
        NetworkCustomizer().validate(item(mac="52:54:00"))
    with pytest.raises(InvalidInput, match="format='wicked'"):
        NetworkCustomizer().validate(item(interface="eth0", format="wicked"))


def ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read_string(path.read_text())
    return parser


def test_networkmanager_keyfile_matched_by_mac(tmp_path):
    master = tmp_path / "master"
    (master / "usr/sbin").mkdir(parents=True)
    (master / "usr/sbin/NetworkManager").write_bytes(b"\x7fELF")
    (master / "etc/NetworkManager/system-connections").mkdir(parents=True)
    (master / "etc/network").mkdir()
    (master / "etc/network/interfaces").write_text("auto lo\niface lo inet loopback\n")
    clone = clone_of(master, tmp_path)
    net = item(mac="52:54:00:AB:cd:01")
    apply(clone, STATIC, net)
    path = clone / "etc/NetworkManager/system-connections/encompass-net.nmconnection"
    assert path.stat().st_mode & 0o777 == 0o600  # NetworkManager ignores keyfiles others can read
    keyfile = ini(path)
    assert keyfile["ethernet"]["mac-address"] == "52:54:00:AB:CD:01"
    assert dict(keyfile["ipv4"]) == {"method": "manual", "address1": "192.0.2.10/24,192.0.2.1",
                                     "dns": "192.0.2.2;192.0.2.3;"}
    assert keyfile["ethernet"]["mtu"] == "1450"
    revert(clone, master, net)
    assert tree_state(clone) == tree_state(master)


def test_networkd_netplan_and_ifcfg(tmp_path):
    layouts = {
        "networkd": ("lib/systemd/systemd-networkd",
                     "etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
                     "etc/systemd/network/10-encompass-net.network"),
        "netplan": ("usr/sbin/netplan", "etc/netplan/50-cloud-init.yaml",
                    "etc/netplan/90-encompass-net.yaml"),
        "ifcfg": ("etc/sysconfig/network-scripts/ifcfg-lo", None, "etc/sysconfig/network-scripts/ifcfg-eth0"),
    }
    for fmt, (marker, extra, written) in layouts.items():
        master = tmp_path / fmt / "master"
        for path in (marker, extra):
            if path:
                (master / path).parent.mkdir(parents=True, exist_ok=True)
                (master / path).write_text("")
        clone = clone_of(master, tmp_path / fmt)
        apply(clone, STATIC)
        text = (clone / written).read_text()
        expected = {"networkd": ["Name=eth0", "Address=192.0.2.10/24", "Gateway=192.0.2.1", "DNS=192.0.2.3",
                                 "MTUBytes=1450"],
                    "netplan": ['"eth0":', "dhcp4: false", 'addresses: ["192.0.2.10/24"]',
                                'via: "192.0.2.1"', "mtu: 1450"],
                    "ifcfg": ["DEVICE=eth0", "IPADDR=192.0.2.10", "PREFIX=24", "GATEWAY=192.0.2.1",
                              "DNS2=192.0.2.3", "MTU=1450"]}[fmt]
        for line in expected:
            assert line in text, (fmt, text)
        revert(clone, master)
        assert tree_state(clone) == tree_state(master), fmt


def test_no_network_system_is_one_line(tmp_path):
    (tmp_path / "etc").mkdir()
    with pytest.raises(NotFound, match="no network configuration system found"):
        apply(tmp_path, STATIC)
