"""The settings a ``sysprep`` item can set, and how each value is checked.

Each item sets one setting (its ``setting`` parameter, else its key) of one answer file. An
empty value leaves the setting out (no domain join, DHCP instead of a static address...). A
value that does not fit is refused with a message that never quotes a secret.
"""

from __future__ import annotations

import ipaddress
import re

import attrs

from encompass_core.errors import InvalidInput

UNATTEND = "unattend"  # Windows Vista and later: unattend.xml
SYSPREP_INF = "sysprep.inf"  # Windows XP / Server 2003
SETUP_COMPLETE = "setup-complete"  # Windows\Setup\Scripts\SetupComplete.cmd


@attrs.frozen
class Setting:
    """One setting: whether its value is a secret, the answer files that have it, its check."""

    name: str
    description: str
    secret: bool = False
    formats: tuple[str, ...] = (UNATTEND, SYSPREP_INF)


SETTINGS = {s.name: s for s in (
    Setting("computer-name", "the computer's NetBIOS name (15 characters at most; * for a random one)"),
    Setting("registered-owner", "the registered owner's name"),
    Setting("registered-organization", "the registered organization"),
    Setting("time-zone", "the time zone: 'W. Europe Standard Time' (unattend.xml), an index such as "
                         "110 (sysprep.inf)"),
    Setting("product-key", "the product key, XXXXX-XXXXX-XXXXX-XXXXX-XXXXX"),
    Setting("locale", "language and keyboard, e.g. en-US", formats=(UNATTEND,)),
    Setting("admin-password", "the built-in Administrator's password", secret=True),
    Setting("local-account", "a local administrator account: NAME:PASSWORD", secret=True,
            formats=(UNATTEND,)),
    Setting("auto-logon", "log the Administrator on automatically this many times (1, 2...)"),
    Setting("domain", "the domain to join (empty: stay in the workgroup)"),
    Setting("domain-user", "the account allowed to join computers to the domain"),
    Setting("domain-password", "that account's password", secret=True),
    Setting("machine-ou", "the organizational unit of the computer account, OU=...,DC=..."),
    Setting("ip-address", "a static IPv4 address with its prefix, 192.0.2.10/24 (empty: DHCP)"),
    Setting("gateway", "the default gateway's address"),
    Setting("dns", "DNS servers, separated by commas"),
    Setting("commands", "commands run in the specialize pass (unattend.xml RunSynchronous) or at "
                        "the first logon (sysprep.inf GuiRunOnce), one per line"),
    Setting(SETUP_COMPLETE, "commands SetupComplete.cmd runs once setup is done, one per line",
            formats=(SETUP_COMPLETE,)),
)}

_NETBIOS = re.compile(r"^(?![0-9]+$)[A-Za-z0-9-]{1,15}$")
_PRODUCT_KEY = re.compile(r"^[A-Z0-9]{5}(-[A-Z0-9]{5}){4}$")
_DOMAIN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$")
_LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def _fail(key: str, setting: Setting, why: str) -> InvalidInput:
    return InvalidInput(f"item '{key}' ({setting.name}): {why}")


def lines(value: str) -> list[str]:
    """The non-empty lines of a multi-line value (commands)."""
    return [line.strip() for line in value.replace("\r\n", "\n").split("\n") if line.strip()]


def addresses(value: str) -> list[str]:
    """The addresses of a comma- or space-separated list."""
    return [part for part in re.split(r"[,\s]+", value.strip()) if part]


def check_value(name: str, value: str, key: str) -> str:
    """The value as it goes into the answer file (secrets lose a final newline, as a value read
    from a file has); empty means the setting is left out. Raises InvalidInput when it does not
    fit, never quoting a secret."""
    setting = SETTINGS[name]
    if setting.secret:
        value = value.removesuffix("\n").removesuffix("\r")
        if value and ("\n" in value or "\r" in value or "\0" in value):
            raise _fail(key, setting, "a password cannot hold line breaks or NUL characters")
        if name == "local-account" and value:
            user, sep, password = value.partition(":")
            if not sep or not user or not password:
                raise _fail(key, setting, "give NAME:PASSWORD (the account name, a colon, its password)")
            if not re.fullmatch(r"[^\"/\\\[\]:;|=,+*?<>@]{1,20}", user):
                raise _fail(key, setting, "the account name has 1-20 characters, none of "
                                          "\" / \\ [ ] : ; | = , + * ? < > @")
        return value
    value = value.strip() if name not in ("commands", SETUP_COMPLETE) else value
    if not value:
        return ""
    if name not in ("commands", SETUP_COMPLETE) and ("\n" in value or "\0" in value):
        raise _fail(key, setting, "the value must be one line")
    if name == "computer-name" and value != "*" and not _NETBIOS.match(value):
        raise _fail(key, setting, f"{value!r} is not a NetBIOS computer name (1-15 letters, digits or "
                                  "hyphens, not only digits)")
    if name == "product-key" and not _PRODUCT_KEY.match(value.upper()):
        raise _fail(key, setting, "a product key is five groups of five letters or digits, "
                                  "XXXXX-XXXXX-XXXXX-XXXXX-XXXXX")
    if name == "domain" and not _DOMAIN.match(value):
        raise _fail(key, setting, f"{value!r} is not a domain name such as corp.example.com")
    if name == "locale" and not _LOCALE.match(value):
        raise _fail(key, setting, f"{value!r} is not a locale such as en-US")
    if name == "auto-logon" and not (value.isdigit() and 1 <= int(value) <= 999):
        raise _fail(key, setting, f"{value!r} is not a number of logons (1-999)")
    if name == "ip-address":
        if "/" not in value:
            raise _fail(key, setting, f"give the prefix length too, e.g. {value}/24")
        try:
            address = ipaddress.IPv4Interface(value)
        except ValueError:
            raise _fail(key, setting, f"{value!r} is not an IPv4 address with a prefix, e.g. "
                                      "192.0.2.10/24") from None
        return str(address)
    if name in ("gateway", "dns"):
        try:
            found = [str(ipaddress.IPv4Address(part)) for part in addresses(value)]
        except ValueError:
            raise _fail(key, setting, f"{value!r} is not an IPv4 address"
                        + (" list (comma-separated)" if name == "dns" else "")) from None
        if name == "gateway" and len(found) != 1:
            raise _fail(key, setting, "give one gateway address")
        return ",".join(found)
    return value.upper() if name == "product-key" else value
