"""Parsing XML that another tool (or an attacker) wrote, without the XML features that hurt.

An OVF descriptor never needs a document type declaration, so any ``<!DOCTYPE`` is refused
outright: no external entity can make the parser read a file or a URL, and no entity expansion
(the "billion laughs") can exhaust memory. Built on the standard library's expat with handlers
that refuse, rather than on a new dependency; what expat reports is turned into an ElementTree.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.parsers import expat

from ..errors import InvalidInput


class _Refused(Exception):
    pass


def parse(data: bytes, where: str) -> ET.Element:
    """The root element of the XML document ``data``; one clear :class:`InvalidInput` naming
    ``where`` when it is not well-formed or declares a DTD or entities."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")

    def refuse_dtd(*_args: object) -> None:
        raise _Refused("it declares a document type (<!DOCTYPE>), which no OVF descriptor needs")

    def refuse_entity(*_args: object) -> None:
        raise _Refused("it declares or uses an entity, which no OVF descriptor needs")

    def name(raw: str) -> str:  # expat gives "uri}local"; ElementTree wants "{uri}local"
        return "{" + raw if "}" in raw else raw

    def start(tag: str, attributes: dict[str, str]) -> None:
        builder.start(name(tag), {name(k): v for k, v in attributes.items()})

    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.EntityDeclHandler = refuse_entity
    parser.UnparsedEntityDeclHandler = refuse_entity
    parser.ExternalEntityRefHandler = refuse_entity
    parser.SkippedEntityHandler = refuse_entity
    parser.StartElementHandler = start
    parser.EndElementHandler = lambda tag: builder.end(name(tag))
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(data, True)
        return builder.close()
    except _Refused as exc:
        raise InvalidInput(f"{where}: refused: {exc}") from None
    except expat.ExpatError as exc:
        raise InvalidInput(f"{where} is not well-formed XML: {expat.errors.messages[exc.code]} "
                           f"(line {exc.lineno}, column {exc.offset})") from None
