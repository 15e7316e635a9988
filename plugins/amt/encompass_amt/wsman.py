"""WS-Management messages as Intel AMT takes them: SOAP 1.2 envelopes, the WS-Transfer (Get,
Put), WS-Enumeration (Enumerate, Pull) and method actions, and the replies and faults AMT sends.

Names, resource URIs and return codes are those of the Intel AMT SDK's class reference
(``CIM_*`` classes under the DMTF schema, ``AMT_*`` under Intel's). Nothing here does I/O: the
client (:mod:`.client`) posts these envelopes and hands the replies back for parsing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from xml.etree import ElementTree
from xml.sax.saxutils import escape

SOAP = "http://www.w3.org/2003/05/soap-envelope"
ADDRESSING = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
ENUMERATION = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
ANONYMOUS = f"{ADDRESSING}/role/anonymous"

CIM = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"
AMT = "http://intel.com/wbem/wscim/1/amt-schema/1/"

GET = f"{TRANSFER}/Get"
PUT = f"{TRANSFER}/Put"
ENUMERATE = f"{ENUMERATION}/Enumerate"
PULL = f"{ENUMERATION}/Pull"

# The classes the driver reads and changes (AMT SDK class reference).
POWER_ASSOCIATION = CIM + "CIM_AssociatedPowerManagementService"
POWER_SERVICE = CIM + "CIM_PowerManagementService"
COMPUTER_SYSTEM = CIM + "CIM_ComputerSystem"
SYSTEM_PACKAGE = CIM + "CIM_ComputerSystemPackage"
CHASSIS = CIM + "CIM_Chassis"
BOOT_SERVICE = CIM + "CIM_BootService"
BOOT_CONFIG = CIM + "CIM_BootConfigSetting"
BOOT_SOURCE = CIM + "CIM_BootSourceSetting"
BOOT_SETTINGS = AMT + "AMT_BootSettingData"
ETHERNET_PORTS = AMT + "AMT_EthernetPortSettings"
GENERAL_SETTINGS = AMT + "AMT_GeneralSettings"

# The fixed instance names AMT gives its single instances.
POWER_SERVICE_NAME = "Intel(r) AMT Power Management Service"
BOOT_SERVICE_NAME = "Intel(r) AMT Boot Service"
BOOT_CONFIG_ID = "Intel(r) AMT: Boot Configuration 0"
BOOT_SETTINGS_ID = "Intel(r) AMT:BootSettingData 0"
MANAGED_SYSTEM = "ManagedSystem"

#: ``CIM_AssociatedPowerManagementService.PowerState`` as AMT reports it, by what it means here.
POWER_STATES = {2: "on", 3: "on", 4: "on", 5: "on", 6: "off", 7: "off", 8: "off", 9: "off",
                10: "on", 12: "off", 13: "off"}
#: ``RequestPowerStateChange`` states: on, power cycle (off-soft), off (hard), master bus reset.
POWER_ON, POWER_CYCLE, POWER_OFF, POWER_RESET = 2, 5, 8, 10

#: ``CIM_BootSourceSetting`` instances a ``ChangeBootOrder`` names for a one-time boot.
BOOT_SOURCES = {
    "pxe": "Intel(r) AMT: Force PXE Boot",
    "hdd": "Intel(r) AMT: Force Hard-drive Boot",
    "cd": "Intel(r) AMT: Force CD/DVD Boot",
}
#: ``AMT_BootSettingData.IDERBootDevice``: which redirected drive IDE-R boots.
IDER_FLOPPY, IDER_CD = 0, 1

#: What a method's ``ReturnValue`` means (CIM/AMT ``PT_STATUS`` values the SDK lists).
RETURN_VALUES = {
    0: "completed", 1: "not supported", 2: "unknown or unspecified error",
    3: "cannot complete within the timeout", 4: "failed", 5: "invalid parameter", 6: "in use",
    36: "invalid parameter (PT_STATUS_INVALID_PARAMETER)", 38: "not permitted in this state",
    4096: "job started",
}


def _selectors(selectors: Mapping[str, str]) -> str:
    if not selectors:
        return ""
    inner = "".join(f'<w:Selector Name="{escape(name)}">{escape(value)}</w:Selector>'
                    for name, value in selectors.items())
    return f"<w:SelectorSet>{inner}</w:SelectorSet>"


def envelope(action: str, resource: str, to: str, body: str = "",
             selectors: Mapping[str, str] | None = None, timeout_s: float = 60) -> str:
    """A request: the WS-Addressing header AMT requires (Action, To, ResourceURI, MessageID,
    ReplyTo), the selectors naming one instance, and ``body``."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{SOAP}" xmlns:a="{ADDRESSING}" xmlns:w="{WSMAN}">'
        "<s:Header>"
        f'<a:Action s:mustUnderstand="true">{escape(action)}</a:Action>'
        f'<a:To s:mustUnderstand="true">{escape(to)}</a:To>'
        f'<w:ResourceURI s:mustUnderstand="true">{escape(resource)}</w:ResourceURI>'
        f'<a:MessageID s:mustUnderstand="true">uuid:{uuid.uuid4()}</a:MessageID>'
        f"<a:ReplyTo><a:Address>{ANONYMOUS}</a:Address></a:ReplyTo>"
        f"<w:OperationTimeout>PT{max(1, round(timeout_s))}S</w:OperationTimeout>"
        f"{_selectors(selectors or {})}"
        "</s:Header>"
        f"<s:Body>{body}</s:Body>"
        "</s:Envelope>"
    )


def reference(resource: str, selectors: Mapping[str, str]) -> str:
    """An endpoint reference to one instance, as method inputs take them (an ``a:Address``
    and ``a:ReferenceParameters``), with the namespaces it needs declared on the body element."""
    return (f"<a:Address>{ANONYMOUS}</a:Address><a:ReferenceParameters>"
            f"<w:ResourceURI>{escape(resource)}</w:ResourceURI>{_selectors(selectors)}"
            "</a:ReferenceParameters>")


def method_input(resource: str, method: str, fields: str) -> str:
    """The body of a method call: ``<METHOD_INPUT xmlns="RESOURCE">fields</METHOD_INPUT>``."""
    return f'<p:{method}_INPUT xmlns:p="{escape(resource)}">{fields}</p:{method}_INPUT>'


def instance(resource: str, values: Mapping[str, object]) -> str:
    """The body of a Put: an instance of ``resource`` with ``values`` (booleans as XML's)."""
    name = resource.rsplit("/", 1)[-1]
    fields = "".join(f"<p:{key}>{escape(_text(value))}</p:{key}>" for key, value in values.items())
    return f'<p:{name} xmlns:p="{escape(resource)}">{fields}</p:{name}>'


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- replies -------------------------------------------------------------------------------------
class Fault(Exception):
    """A SOAP fault AMT answered with: its subcode (``wsman:AccessDenied``...) and reason."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}" if reason else code)
        self.code = code
        self.reason = reason


class Malformed(Exception):
    """A reply that is not the SOAP envelope the request calls for."""


def parse(text: bytes) -> ElementTree.Element:
    """The body of a reply; a SOAP fault is raised as :class:`Fault`."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise Malformed(f"not XML ({exc})") from None
    body = root.find(f"{{{SOAP}}}Body")
    if root.tag != f"{{{SOAP}}}Envelope" or body is None:
        raise Malformed(f"not a SOAP 1.2 envelope (root element {local(root.tag)})")
    fault = body.find(f"{{{SOAP}}}Fault")
    if fault is not None:
        codes = [value.text or "" for value in fault.iter(f"{{{SOAP}}}Value")]
        reasons = [text.text or "" for text in fault.iter(f"{{{SOAP}}}Text")]
        code = local(codes[-1].strip().rpartition(":")[2]) if codes else "fault"
        raise Fault(code, " ".join(reason.strip() for reason in reasons).strip())
    return body


def local(tag: str) -> str:
    """An element's name without its namespace."""
    return tag.rsplit("}", 1)[-1]


def fields(element: ElementTree.Element) -> dict[str, list[str]]:
    """An instance's properties by name; a property AMT repeats (an array) keeps every value."""
    found: dict[str, list[str]] = {}
    for child in element:
        found.setdefault(local(child.tag), []).append((child.text or "").strip())
    return found


def first_instance(body: ElementTree.Element) -> ElementTree.Element:
    """The instance a Get returns (the body's only child)."""
    children = list(body)
    if not children:
        raise Malformed("an empty body where an instance was expected")
    return children[0]


def return_value(body: ElementTree.Element, method: str) -> int:
    """A method's ``ReturnValue`` (from its ``METHOD_OUTPUT``)."""
    for element in body.iter():
        if local(element.tag) == "ReturnValue":
            try:
                return int((element.text or "").strip())
            except ValueError:
                break
    raise Malformed(f"no ReturnValue in the reply to {method}")


def enumeration_context(body: ElementTree.Element) -> str:
    """The context an Enumerate returns, for the Pulls that follow."""
    found = body.find(f".//{{{ENUMERATION}}}EnumerationContext")
    if found is None or not (found.text or "").strip():
        raise Malformed("no EnumerationContext in the reply to Enumerate")
    return found.text.strip()


def pulled(body: ElementTree.Element) -> tuple[list[ElementTree.Element], bool]:
    """The items of a Pull reply, and whether the sequence ended."""
    items = body.find(f".//{{{ENUMERATION}}}Items")
    ended = body.find(f".//{{{ENUMERATION}}}EndOfSequence") is not None
    return (list(items) if items is not None else []), ended


def enumerate_body() -> str:
    return f'<n:Enumerate xmlns:n="{ENUMERATION}"/>'


def pull_body(context: str) -> str:
    return (f'<n:Pull xmlns:n="{ENUMERATION}"><n:EnumerationContext>{escape(context)}'
            "</n:EnumerationContext><n:MaxElements>999</n:MaxElements></n:Pull>")


def platform_guid(text: str) -> str:
    """The system UUID from ``CIM_ComputerSystemPackage.PlatformGUID``: 32 hex digits in SMBIOS
    byte order (the first three fields little-endian), as AMT reports it, in the usual form."""
    digits = text.strip().replace("-", "")
    try:
        return str(uuid.UUID(bytes_le=bytes.fromhex(digits)))
    except ValueError:
        raise Malformed(f"PlatformGUID {text!r} is not 32 hex digits") from None


def mac_address(text: str) -> str:
    """A MAC as AMT writes it (``00-1A-2B-...``) in the form Encompass keeps (``00:1a:2b:...``)."""
    return text.strip().replace("-", ":").lower()
