"""SOAP 1.2 envelopes as the lab's AMT responder reads and writes them: requests parsed into
:class:`Request`, instances and endpoint references written, faults worded as AMT words them."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import attrs

SOAP = "http://www.w3.org/2003/05/soap-envelope"
ADDRESSING = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
ENUMERATION = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
CIM = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"
AMT = "http://intel.com/wbem/wscim/1/amt-schema/1/"
ANONYMOUS = f"{ADDRESSING}/role/anonymous"
SOAP_TYPE = "application/soap+xml;charset=UTF-8"

FAULTS = {  # subcode: (SOAP code, HTTP status, reason), as AMT words them
    "wsman:AccessDenied": ("s:Sender", 400, "The sender was not authorized to access the resource."),
    "wsa:ActionNotSupported": ("s:Sender", 400, "The action is not supported by the service."),
    "wsa:DestinationUnreachable": ("s:Sender", 400, "No route can be determined to reach the "
                                   "destination role defined by the WS-Addressing To."),
    "wsman:InvalidSelectors": ("s:Sender", 400, "The Selectors for the resource were not valid."),
    "wsman:InvalidRepresentation": ("s:Sender", 400, "The XML content was invalid."),
    "wsen:InvalidEnumerationContext": ("s:Receiver", 400, "The supplied enumeration context is "
                                       "invalid."),
    "wsman:SchemaValidationError": ("s:Sender", 400, "The supplied SOAP violates the "
                                    "corresponding XML Schema definition."),
}


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def instance(resource: str, values: dict[str, Any]) -> str:
    name = resource.rsplit("/", 1)[-1]
    inner = ""
    for key, value in values.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            text = item if isinstance(item, _Raw) else escape(str(item))
            inner += f"<h:{key}>{text}</h:{key}>"
    return f'<h:{name} xmlns:h="{resource}">{inner}</h:{name}>'


class _Raw(str):
    """XML put in an instance as it is (an endpoint reference)."""


def reference(resource: str, selectors: dict[str, str]) -> _Raw:
    inner = "".join(f'<w:Selector Name="{k}">{escape(v)}</w:Selector>' for k, v in selectors.items())
    return _Raw(f"<a:Address>{ANONYMOUS}</a:Address><a:ReferenceParameters><w:ResourceURI>{resource}"
                f"</w:ResourceURI><w:SelectorSet>{inner}</w:SelectorSet></a:ReferenceParameters>")


def envelope(action: str, relates_to: str, body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{SOAP}" xmlns:a="{ADDRESSING}" xmlns:w="{WSMAN}" '
        f'xmlns:e="{ENUMERATION}" xmlns:t="{TRANSFER}">'
        f"<s:Header><a:To>{ANONYMOUS}</a:To><a:RelatesTo>{escape(relates_to)}</a:RelatesTo>"
        f'<a:Action s:mustUnderstand="true">{escape(action)}</a:Action>'
        f"<a:MessageID>uuid:{uuidlib.uuid4()}</a:MessageID></s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


class SoapFault(Exception):
    def __init__(self, subcode: str, detail: str = "") -> None:
        super().__init__(subcode)
        self.subcode = subcode
        self.detail = detail


def fault_reply(subcode: str, relates_to: str, detail: str = "") -> tuple[int, str, bytes]:
    code, status, reason = FAULTS[subcode]
    text = f"{reason} {detail}".strip()
    prefixed = subcode.replace("wsa:", "a:").replace("wsman:", "w:").replace("wsen:", "e:")
    body = (f"<s:Fault><s:Code><s:Value>{code}</s:Value><s:Subcode><s:Value>{prefixed}</s:Value>"
            f'</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{escape(text)}</s:Text>'
            "</s:Reason><s:Detail/></s:Fault>")
    return status, SOAP_TYPE, envelope(f"{ADDRESSING}/fault", relates_to, body)


@attrs.frozen
class Request:
    action: str
    resource: str
    message_id: str
    selectors: dict[str, str]
    body: ElementTree.Element

    def find(self, name: str) -> ElementTree.Element | None:
        """The first element of the body with this local name."""
        return next((element for element in self.body.iter() if local(element.tag) == name), None)

    def text(self, name: str) -> str | None:
        found = self.find(name)
        return None if found is None else (found.text or "").strip()


def parse_request(data: bytes) -> Request:
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError:
        raise SoapFault("wsman:SchemaValidationError", "The request is not XML.") from None
    header, body = root.find(f"{{{SOAP}}}Header"), root.find(f"{{{SOAP}}}Body")
    if root.tag != f"{{{SOAP}}}Envelope" or header is None or body is None:
        raise SoapFault("wsman:SchemaValidationError", "A SOAP 1.2 envelope is expected.")

    def header_text(namespace: str, name: str) -> str:
        found = header.find(f"{{{namespace}}}{name}")
        return "" if found is None else (found.text or "").strip()

    selectors = {item.get("Name", ""): (item.text or "").strip()
                 for item in header.iter(f"{{{WSMAN}}}Selector")}
    action, resource = header_text(ADDRESSING, "Action"), header_text(WSMAN, "ResourceURI")
    if not action or not resource:
        raise SoapFault("wsman:SchemaValidationError", "Action and ResourceURI are required.")
    return Request(action, resource, header_text(ADDRESSING, "MessageID"), selectors, body)
