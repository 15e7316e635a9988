"""A small codec for the Service Location Protocol, version 2 (RFC 2608): the messages a
directory-less client needs to find BladeCenter Management Modules — Service Request and Service
Reply, Attribute Request and Attribute Reply — and the header every message carries.

No maintained SLP library runs on Python 3.11, hence this. Every message starts with (RFC 2608
section 8)::

    version (1) = 2 | function-id (1) | length (3) | flags (2) | next-extension offset (3)
    | XID (2) | language tag length (2) | language tag

and strings inside are ``<length (2)><UTF-8 bytes>``. Integers are big-endian.
"""

from __future__ import annotations

import struct

import attrs

VERSION = 2
PORT = 427
SRV_RQST, SRV_RPLY, ATTR_RQST, ATTR_RPLY = 1, 2, 6, 7
FLAG_OVERFLOW, FLAG_FRESH, FLAG_MULTICAST = 0x8000, 0x4000, 0x2000
#: The service type IBM BladeCenter Management Modules register.
MM_SERVICE = "service:management-hardware.IBM:management-module"
#: Error codes of replies (RFC 2608 section 7).
ERRORS = {0: "ok", 1: "language not supported", 2: "parse error", 3: "invalid registration",
          4: "scope not supported", 5: "authentication unknown", 6: "authentication absent",
          7: "authentication failed", 9: "version not supported", 10: "internal error",
          11: "DA busy", 12: "option not understood", 13: "invalid update", 14: "message not supported",
          15: "refresh rejected"}


class SlpError(ValueError):
    """A datagram that is not a well-formed SLPv2 message."""


@attrs.frozen
class Header:
    function: int
    xid: int
    language: str = "en"
    flags: int = 0


@attrs.frozen
class ServiceRequest:
    service_type: str
    scopes: str = "DEFAULT"
    predicate: str = ""
    previous_responders: str = ""
    spi: str = ""


@attrs.frozen
class ServiceReply:
    urls: tuple[tuple[str, int], ...]  # (URL, lifetime in seconds)
    error: int = 0


@attrs.frozen
class AttributeRequest:
    url: str
    scopes: str = "DEFAULT"
    tags: str = ""
    previous_responders: str = ""
    spi: str = ""


@attrs.frozen
class AttributeReply:
    attributes: str  # "(name=value),(name=value),keyword"
    error: int = 0


Body = ServiceRequest | ServiceReply | AttributeRequest | AttributeReply
_FUNCTIONS = {ServiceRequest: SRV_RQST, ServiceReply: SRV_RPLY, AttributeRequest: ATTR_RQST,
              AttributeReply: ATTR_RPLY}


# -- encoding --------------------------------------------------------------------------------
def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 0xFFFF:
        raise SlpError("an SLP string holds 65535 bytes at most")
    return struct.pack("!H", len(data)) + data


def _body(body: Body) -> bytes:
    if isinstance(body, ServiceRequest):
        return b"".join(_string(s) for s in (body.previous_responders, body.service_type, body.scopes,
                                            body.predicate, body.spi))
    if isinstance(body, AttributeRequest):
        return b"".join(_string(s) for s in (body.previous_responders, body.url, body.scopes, body.tags,
                                            body.spi))
    if isinstance(body, ServiceReply):
        entries = b"".join(struct.pack("!BH", 0, lifetime) + _string(url) + b"\x00"  # no auth blocks
                           for url, lifetime in body.urls)
        return struct.pack("!HH", body.error, len(body.urls)) + entries
    return struct.pack("!H", body.error) + _string(body.attributes) + b"\x00"


def encode(body: Body, xid: int, language: str = "en", flags: int = 0) -> bytes:
    """One SLPv2 message: the header, then ``body``."""
    tag = language.encode("ascii")
    payload = _body(body)
    length = 14 + len(tag) + len(payload)
    header = struct.pack("!BB", VERSION, _FUNCTIONS[type(body)]) + length.to_bytes(3, "big")
    header += struct.pack("!H", flags) + (0).to_bytes(3, "big") + struct.pack("!HH", xid, len(tag))
    return header + tag + payload


# -- decoding --------------------------------------------------------------------------------
class _Reader:
    def __init__(self, data: bytes, offset: int) -> None:
        self.data, self.offset = data, offset

    def take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise SlpError(f"message cut short at byte {self.offset} (wanted {size} more)")
        piece = self.data[self.offset:self.offset + size]
        self.offset += size
        return piece

    def short(self) -> int:
        return struct.unpack("!H", self.take(2))[0]

    def string(self) -> str:
        try:
            return self.take(self.short()).decode("utf-8")
        except UnicodeDecodeError as error:
            raise SlpError(f"a string is not UTF-8 ({error.reason})") from None

    def skip_auth_blocks(self) -> None:
        for _ in range(self.take(1)[0]):
            self.take(2)  # block structure descriptor
            self.take(self.short() - 4)  # the length counts the descriptor and itself


def decode(data: bytes) -> tuple[Header, Body]:
    """The header and body of one message; :class:`SlpError` for anything else."""
    if len(data) < 14:
        raise SlpError(f"{len(data)} bytes is too short for an SLP header")
    if data[0] != VERSION:
        raise SlpError(f"SLP version {data[0]}, not 2")
    function = data[1]
    length = int.from_bytes(data[2:5], "big")
    if length != len(data):
        raise SlpError(f"the header says {length} bytes, the datagram has {len(data)}")
    flags = struct.unpack("!H", data[5:7])[0]
    xid, tag_length = struct.unpack("!HH", data[10:14])
    reader = _Reader(data, 14)
    language = reader.take(tag_length).decode("ascii", errors="replace")
    header = Header(function, xid, language, flags)
    if function == SRV_RQST:
        previous, service, scopes, predicate, spi = (reader.string() for _ in range(5))
        return header, ServiceRequest(service, scopes, predicate, previous, spi)
    if function == ATTR_RQST:
        previous, url, scopes, tags, spi = (reader.string() for _ in range(5))
        return header, AttributeRequest(url, scopes, tags, previous, spi)
    if function == SRV_RPLY:
        error = reader.short()
        urls = []
        count = reader.short() if reader.offset < len(data) else 0  # an error reply may stop early
        for _ in range(count):
            reader.take(1)  # reserved
            lifetime = reader.short()
            urls.append((reader.string(), lifetime))
            reader.skip_auth_blocks()
        return header, ServiceReply(tuple(urls), error)
    if function == ATTR_RPLY:
        error = reader.short()
        attributes = reader.string() if reader.offset < len(data) else ""
        return header, AttributeReply(attributes, error)
    raise SlpError(f"SLP function {function} is not one this client handles")


def parse_attributes(text: str) -> dict[str, str]:
    """``(name=value),(name=value),keyword`` as a dict (a keyword maps to ``""``); RFC 2608's
    escapes (``\\2c`` for a comma...) are undone."""
    found: dict[str, str] = {}
    depth, start, parts = 0, 0, []
    for position, char in enumerate(text):
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(text[start:position])
            start = position + 1
    parts.append(text[start:])
    for part in (p.strip() for p in parts if p.strip()):
        if part.startswith("(") and part.endswith(")"):
            name, _, value = part[1:-1].partition("=")
            found[_unescape(name.strip())] = _unescape(value.strip())
        else:
            found[_unescape(part)] = ""
    return found


def _unescape(text: str) -> str:
    out, position = [], 0
    while position < len(text):
        if text[position] == "\\" and position + 2 < len(text):
            try:
                out.append(chr(int(text[position + 1:position + 3], 16)))
                position += 3
                continue
            except ValueError:
                pass
        out.append(text[position])
        position += 1
    return "".join(out)
