"""``network``: a static or DHCP configuration of one interface, in the image's own format.

The value is ``dhcp`` or ``ADDRESS/PREFIX[,gateway=IP][,dns=IP]...[,mtu=N]`` (see
:mod:`.netconfig`), checked before anything is written. The interface is named by the
parameter ``interface`` (``eth0``) or ``mac`` (``52:54:00:12:34:56``). The item's path is the
root of the guest's system (usually ``/``). The format is the parameter ``format``, else found:

* ``ifupdown`` when ``/etc/network/interfaces`` (or a file of ``interfaces.d``) already has a
  stanza for the interface: that stanza (and its ``auto``/``allow-hotplug`` mention) is
  replaced in place; names only, no MAC;
* ``netplan`` (``/etc/netplan`` holds YAML, or netplan is installed):
  ``/etc/netplan/90-encompass-KEY.yaml``, mode 0600;
* ``networkmanager`` (NetworkManager installed): a keyfile
  ``/etc/NetworkManager/system-connections/encompass-KEY.nmconnection``, mode 0600, with a
  higher autoconnect priority than the image's own connections;
* ``networkd`` (systemd-networkd enabled): ``/etc/systemd/network/10-encompass-KEY.network``;
* ``ifcfg`` (``/etc/sysconfig/network-scripts``): ``ifcfg-INTERFACE`` (``ifcfg-encompass-KEY``
  when matched by MAC);
* ``ifupdown`` when ``/etc/network/interfaces`` exists: a stanza appended to it.

Host names stay the ``file``/``regexp`` items' business. Revert: every file a format could
have written comes back as in the parent image (``/etc/network/interfaces`` and the files of
``interfaces.d`` included).
"""

from __future__ import annotations

import posixpath
import re
import uuid

from ...errors import InvalidInput, NotFound
from ...model import CustomizationItem
from ..access import FileAccess
from ..fsutil import prune_directories, restore, write_file
from ..items import check_params
from .netconfig import NetConfig, interface_match, parse_netconfig

PARAMS = {"interface", "mac", "format"}
FORMATS = ("ifupdown", "netplan", "networkmanager", "networkd", "ifcfg")
INTERFACES = "/etc/network/interfaces"
INTERFACES_D = "/etc/network/interfaces.d"
NETWORKD_BINARIES = ("/lib/systemd/systemd-networkd", "/usr/lib/systemd/systemd-networkd")
NETWORKD_ENABLED = "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
NM_BINARIES = ("/usr/sbin/NetworkManager", "/usr/bin/NetworkManager")
IFCFG_DIR = "/etc/sysconfig/network-scripts"
# Keywords that start a new stanza in interfaces(5): what follows an iface's options.
_STANZA = re.compile(r"^\s*(iface|mapping|auto|allow-\S+|source|source-directory|rename|no-auto-down"
                     r"|no-scripts)\b")


def _inside(root: str, path: str) -> str:
    return posixpath.normpath(posixpath.join(root, path.lstrip("/")))


def paths_of(item: CustomizationItem) -> dict[str, str]:
    """The file each format writes (ifupdown: the main interfaces file)."""
    name, _ = interface_match(item)
    return {
        "netplan": f"/etc/netplan/90-encompass-{item.key}.yaml",
        "networkmanager": f"/etc/NetworkManager/system-connections/encompass-{item.key}.nmconnection",
        "networkd": f"/etc/systemd/network/10-encompass-{item.key}.network",
        "ifcfg": f"{IFCFG_DIR}/ifcfg-{name or 'encompass-' + item.key}",
        "ifupdown": INTERFACES,
    }


def _interfaces_files(fs: FileAccess, root: str) -> list[str]:
    files = [_inside(root, INTERFACES)] if fs.exists(_inside(root, INTERFACES)) else []
    directory = _inside(root, INTERFACES_D)
    if fs.exists(directory) and fs.stat(directory).kind == "dir":
        files += [f"{directory}/{name}" for name in fs.listdir(directory)
                  if fs.stat(f"{directory}/{name}").kind == "file"]
    return files


def _stanza_file(fs: FileAccess, root: str, name: str | None) -> str | None:
    """The interfaces file holding a stanza for ``name``, if any."""
    if name is None:
        return None
    pattern = re.compile(rf"^\s*iface\s+{re.escape(name)}\s", re.MULTILINE)
    for path in _interfaces_files(fs, root):
        if pattern.search(fs.read(path).decode("utf-8", errors="replace")):
            return path
    return None


def detect_format(fs: FileAccess, item: CustomizationItem) -> str:
    """The network format of the guest under the item's root (parameter ``format``, else found)."""
    named = str(item.params.get("format", "")).strip().lower()
    if named:
        return named
    root = item.path
    name, _ = interface_match(item)

    def has(path: str) -> bool:
        return fs.exists(_inside(root, path))

    netplan_dir = _inside(root, "/etc/netplan")
    if _stanza_file(fs, root, name):
        return "ifupdown"
    if (has("/etc/netplan") and fs.stat(netplan_dir).kind == "dir"
            and any(n.endswith(".yaml") for n in fs.listdir(netplan_dir))) or has("/usr/sbin/netplan"):
        return "netplan"
    if any(has(p) for p in NM_BINARIES):
        return "networkmanager"
    if any(has(p) for p in NETWORKD_BINARIES) and has(NETWORKD_ENABLED):
        return "networkd"
    if has(IFCFG_DIR):
        return "ifcfg"
    if has(INTERFACES):
        return "ifupdown"
    raise NotFound(f"item '{item.key}': no network configuration system found under {root} "
                   "(ifupdown, netplan, NetworkManager, systemd-networkd, ifcfg); check the "
                   f"item's path, or set --param format=({'|'.join(FORMATS)})")


# ------------------------------------------------------------------------ the formats


def _ifupdown_stanza(item: CustomizationItem, name: str, config: NetConfig) -> str:
    family = "inet6" if config.version == 6 else "inet"
    lines = [f"# encompass:{item.key}", f"auto {name}",
             f"iface {name} {family} {'dhcp' if config.dhcp else 'static'}"]
    if config.address is not None:
        lines.append(f"    address {config.address.with_prefixlen}")
    if config.gateway is not None:
        lines.append(f"    gateway {config.gateway}")
    if config.dns:
        lines.append(f"    dns-nameservers {' '.join(map(str, config.dns))}")
    if config.mtu is not None:
        lines.append(f"    mtu {config.mtu}" if not config.dhcp
                     else f"    post-up ip link set dev {name} mtu {config.mtu}")
    return "\n".join(lines) + "\n"


def replace_stanza(text: str, name: str, stanza: str, key: str) -> str:
    """``text`` (an interfaces(5) file) with the stanzas of ``name`` replaced by ``stanza`` (at
    the first one's place, else at the end), ``name`` dropped from ``auto``/``allow-*`` lines."""
    out: list[str] = []
    at = None
    skipping = False
    for line in text.splitlines(keepends=True):
        words = line.split()
        if skipping:
            # An iface's options run until a blank line, a comment or the next stanza.
            if words and not words[0].startswith("#") and not _STANZA.match(line):
                continue
            skipping = False
        if words[:2] == ["iface", name]:
            at = len(out) if at is None else at
            skipping = True
            continue
        if line.strip() == f"# encompass:{key}":
            continue
        if words and (words[0] == "auto" or words[0].startswith("allow-")) and name in words[1:]:
            rest = [w for w in words[1:] if w != name]
            if rest:
                out.append(f"{words[0]} {' '.join(rest)}\n")
            continue
        out.append(line)
    if at is None:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        if out and out[-1].strip():
            out.append("\n")
        at = len(out)
    out.insert(at, stanza)
    return "".join(out)


def _yaml_list(values) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def _netplan(item: CustomizationItem, name: str | None, mac: str | None, config: NetConfig) -> str:
    ident = name if name and not mac else f"encompass-{item.key}"
    lines = ["# Made by Encompass (item " + item.key + ")", "network:", "  version: 2",
             "  ethernets:", f'    "{ident}":']
    if mac:
        lines += ["      match:", f'        macaddress: "{mac}"']
        if name:
            lines.append(f'      set-name: "{name}"')
    family = f"dhcp{config.version}"
    lines.append(f"      {family}: {'true' if config.dhcp else 'false'}")
    if config.address is not None:
        lines.append(f"      addresses: {_yaml_list([config.address.with_prefixlen])}")
    if config.gateway is not None:
        lines += ["      routes:", '        - to: "default"', f'          via: "{config.gateway}"']
    if config.dns:
        lines += ["      nameservers:", f"        addresses: {_yaml_list(config.dns)}"]
    if config.mtu is not None:
        lines.append(f"      mtu: {config.mtu}")
    return "\n".join(lines) + "\n"


def _keyfile(item: CustomizationItem, name: str | None, mac: str | None, config: NetConfig) -> str:
    ident = f"encompass-{item.key}"
    lines = ["[connection]", f"id={ident}", f"uuid={uuid.uuid5(uuid.NAMESPACE_URL, 'encompass:' + ident)}",
             "type=ethernet", "autoconnect-priority=100"]
    if name:
        lines.append(f"interface-name={name}")
    lines += ["", "[ethernet]"]
    if mac:
        lines.append(f"mac-address={mac.upper()}")
    if config.mtu is not None:
        lines.append(f"mtu={config.mtu}")
    lines += ["", f"[ipv{config.version}]"]
    if config.dhcp:
        lines.append("method=auto")
    else:
        gateway = f",{config.gateway}" if config.gateway is not None else ""
        lines += ["method=manual", f"address1={config.address.with_prefixlen}{gateway}"]
    if config.dns:
        lines.append("dns=" + "".join(f"{d};" for d in config.dns))
    return "\n".join(lines) + "\n"


def _networkd(item: CustomizationItem, name: str | None, mac: str | None, config: NetConfig) -> str:
    lines = [f"# Made by Encompass (item {item.key})", "[Match]"]
    lines += [f"Name={name}"] if name else []
    lines += [f"MACAddress={mac}"] if mac else []
    if config.mtu is not None:
        lines += ["", "[Link]", f"MTUBytes={config.mtu}"]
    lines += ["", "[Network]"]
    if config.dhcp:
        lines.append(f"DHCP=ipv{config.version}")
    else:
        lines.append(f"Address={config.address.with_prefixlen}")
        if config.gateway is not None:
            lines.append(f"Gateway={config.gateway}")
    lines += [f"DNS={d}" for d in config.dns]
    return "\n".join(lines) + "\n"


def _ifcfg(item: CustomizationItem, name: str | None, mac: str | None, config: NetConfig) -> str:
    lines = [f"# Made by Encompass (item {item.key})", "TYPE=Ethernet", "ONBOOT=yes"]
    lines += [f"DEVICE={name}"] if name else [f"NAME=encompass-{item.key}"]
    lines += [f"HWADDR={mac}"] if mac else []
    if config.version == 6:
        lines += ["IPV6INIT=yes", "BOOTPROTO=none"]
        lines += ["DHCPV6C=yes"] if config.dhcp else [f"IPV6ADDR={config.address.with_prefixlen}"]
        lines += [f"IPV6_DEFAULTGW={config.gateway}"] if config.gateway is not None else []
    elif config.dhcp:
        lines.append("BOOTPROTO=dhcp")
    else:
        lines += ["BOOTPROTO=none", f"IPADDR={config.address.ip}",
                  f"PREFIX={config.address.network.prefixlen}"]
        lines += [f"GATEWAY={config.gateway}"] if config.gateway is not None else []
    lines += [f"DNS{n}={d}" for n, d in enumerate(config.dns, 1)]
    lines += [f"MTU={config.mtu}"] if config.mtu is not None else []
    return "\n".join(lines) + "\n"


_WRITERS = {"netplan": (_netplan, 0o600), "networkmanager": (_keyfile, 0o600),
            "networkd": (_networkd, 0o644), "ifcfg": (_ifcfg, 0o644)}


class NetworkCustomizer:
    """Configure one interface, static or DHCP."""

    needs_value = True

    def validate(self, item: CustomizationItem) -> None:
        check_params(item, PARAMS)
        interface_match(item)
        fmt = str(item.params.get("format", "")).strip().lower()
        if fmt and fmt not in FORMATS:
            raise InvalidInput(f"item '{item.key}': format={fmt!r} is not one of {', '.join(FORMATS)}")
        if fmt == "ifupdown" and interface_match(item)[0] is None:
            raise InvalidInput(f"item '{item.key}': ifupdown names interfaces: give --param interface=NAME")

    def check_value(self, item: CustomizationItem, value: str) -> None:
        """Refuse a malformed configuration before anything is written."""
        parse_netconfig(item, value)

    def apply(self, fs: FileAccess, item: CustomizationItem, value: str, clone_name: str) -> None:
        config = parse_netconfig(item, value)
        name, mac = interface_match(item)
        fmt = detect_format(fs, item)
        if fmt == "ifupdown":
            if name is None:
                raise InvalidInput(f"item '{item.key}': this image uses ifupdown, which names "
                                   "interfaces: give --param interface=NAME instead of mac")
            path = _stanza_file(fs, item.path, name) or _inside(item.path, INTERFACES)
            exists = fs.exists(path)
            text = fs.read(path).decode("utf-8", errors="surrogateescape") if exists else ""
            new = replace_stanza(text, name, _ifupdown_stanza(item, name, config), item.key)
            write_file(fs, path, new.encode("utf-8", errors="surrogateescape"),
                       mode=None if exists else 0o644, uid=None if exists else 0,
                       gid=None if exists else 0)
            return
        writer, mode = _WRITERS[fmt]
        write_file(fs, _inside(item.path, paths_of(item)[fmt]), writer(item, name, mac, config).encode(),
                   mode=mode, uid=0, gid=0)

    def revert(self, fs: FileAccess, item: CustomizationItem, parent_fs: FileAccess | None) -> None:
        if parent_fs is None:
            return
        paths = {_inside(item.path, p) for p in paths_of(item).values()}
        paths.update(_interfaces_files(fs, item.path))
        paths.update(_interfaces_files(parent_fs, item.path))
        for path in sorted(paths):
            restore(fs, parent_fs, path)
            prune_directories(fs, parent_fs, path)
