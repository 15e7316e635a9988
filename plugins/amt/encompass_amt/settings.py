"""The settings of an ``amt`` platform and the endpoints they name.

A platform is a set of AMT PCs, named one by one (``addresses = ["10.1.0.5", "pc7:16992"]``)
or as a ``range`` (``"10.1.0.1-10.1.0.200"``, ``"10.1.0.0/26"``, or ports of one host:
``"127.0.0.1:17000-17099"``, as the lab serves them).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import attrs

from encompass_core.errors import ConfigError
from encompass_core.settings import Setting

HTTP_PORT, TLS_PORT = 16992, 16993
#: Addresses a range may name at most: a /20 (a probe of more is a typo, not a site).
MAX_RANGE = 4096

#: One-time boot sources: the ``CIM_BootSourceSetting`` to force, or IDE-R of a redirected drive
#: (here, not in :mod:`.pc`: ``encompass amt boot`` offers them without importing the client).
BOOT_CHOICES = ("pxe", "hdd", "cd", "ider-cd", "ider-floppy")

PLATFORM = (
    Setting("addresses", list, help='the PCs\' AMT addresses, "HOST" or "HOST:PORT"'),
    Setting("range", str, help='a range of addresses to probe: "A.B.C.D-A.B.C.E", "A.B.C.0/24", '
                               'or "HOST:PORT-PORT"'),
    Setting("port", int, help="the WS-Man port where an address gives none (default 16992, "
                              "16993 with tls)", minimum=1),
    Setting("user", str, "admin", "the AMT user (digest authentication)"),
    Setting("password", str, secret=True, required=True, help="the AMT user's password"),
    Setting("tls", bool, False, "speak HTTPS (port 16993) instead of HTTP (16992)"),
    Setting("verify_tls", bool, True, "check the PCs' certificates (with tls)"),
    Setting("ca_file", str, help="a PEM file of the CA that signed the PCs' certificates"),
    Setting("timeout", float, 5.0, "seconds one request may take; a PC slower than that is "
                                   "reported unreachable", minimum=0.1),
    Setting("concurrency", int, 64, "requests in flight at once across the PCs", minimum=1),
    Setting("initiator_prefix", str, "iqn.2010-04.org.ipxe",
            "the PCs' iSCSI boot initiator names are PREFIX:UUID (iPXE's own default)"),
    Setting("console_log", str, help="where a serial-over-LAN logger keeps each PC's console: a "
                                     "path with {name}, the machine's name"),
)


@attrs.frozen
class Endpoint:
    """One PC's AMT interface."""

    host: str
    port: int
    tls: bool = False

    @property
    def label(self) -> str:
        """``host:port``, as messages and the machine's addresses name it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.label}/wsman"


def _split(text: str, default_port: int, where: str) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):  # [v6]:port
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ConfigError(f"{where}: {text!r} names no host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{where}: {text!r} has no valid port (1-65535)")
    return host, int(port_text)


def _range(text: str, default_port: int, where: str) -> Iterable[tuple[str, int]]:
    text = text.strip()
    try:
        if "/" in text:
            network = ipaddress.ip_network(text, strict=False)
            if network.num_addresses > MAX_RANGE:  # counted before any address is made
                raise ConfigError(f"{where}: range {text} holds {network.num_addresses} addresses, "
                                  f"more than {MAX_RANGE}; split it into several platforms")
            hosts = list(network.hosts()) or [network.network_address]
            return [(str(host), default_port) for host in hosts]
        first, dash, last = text.rpartition("-")
        if not dash:
            raise ConfigError(f"{where}: range {text!r} should be A.B.C.D-A.B.C.E, A.B.C.0/24 "
                              "or HOST:PORT-PORT")
        if last.isdigit() and ":" in first:  # ports of one host
            host, low = _split(first, default_port, where)
            high = int(last)
            if not low <= high < 65536:
                raise ConfigError(f"{where}: range {text!r} has its ports the wrong way round")
            if high - low + 1 > MAX_RANGE:
                raise ConfigError(f"{where}: range {text} holds more than {MAX_RANGE} ports")
            return [(host, port) for port in range(low, high + 1)]
        start, end = ipaddress.ip_address(first.strip()), ipaddress.ip_address(last.strip())
    except ValueError as exc:
        raise ConfigError(f"{where}: range {text!r}: {exc}") from None
    if start.version != end.version or int(end) < int(start):
        raise ConfigError(f"{where}: range {text!r} should go from the lower address to the higher")
    if int(end) - int(start) + 1 > MAX_RANGE:
        raise ConfigError(f"{where}: range {text} holds more than {MAX_RANGE} addresses; split it")
    kind = type(start)
    return [(str(kind(value)), default_port) for value in range(int(start), int(end) + 1)]


def endpoints(settings: dict, where: str) -> tuple[list[Endpoint], bool]:
    """The endpoints a platform's settings name, and whether they came from a ``range`` (whose
    silent addresses are skipped, where a listed address that does not answer is reported)."""
    tls = bool(settings.get("tls"))
    default_port = settings.get("port") or (TLS_PORT if tls else HTTP_PORT)
    listed = settings.get("addresses")
    probed = settings.get("range")
    if bool(listed) == bool(probed):
        raise ConfigError(f"{where}: give the PCs either as addresses = [\"HOST[:PORT]\", ...] or "
                          "as a range = \"A.B.C.D-A.B.C.E\", one of the two")
    if listed:
        if not all(isinstance(item, str) for item in listed):
            raise ConfigError(f"{where}: 'addresses' should be a list of \"HOST[:PORT]\" texts")
        pairs = [_split(item, default_port, where) for item in listed]
    else:
        pairs = list(_range(probed, default_port, where))
    unique = list(dict.fromkeys(pairs))
    return [Endpoint(host, port, tls) for host, port in unique], bool(probed)
