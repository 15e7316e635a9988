"""Finding BladeCenter Management Modules by SLP from seed addresses: a Service Request for
:data:`~.slp.MM_SERVICE` sent to each seed (unicast, UDP port 427 unless the seed says
``ADDR:PORT``; a ``A.B.C.D/NN`` range is every address in it), all at once, each with a timeout;
then an Attribute Request to each MM that answered, for its names and serial.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import re
from typing import Any

import attrs

from . import slp

#: Seconds to wait for each seed's answer; ranges are capped so a typo does not flood a network.
TIMEOUT = 1.0
MAX_ADDRESSES = 1024


@attrs.frozen
class FoundModule:
    """A Management Module that answered: its service URL, address and SLP attributes."""

    url: str
    address: str
    attributes: dict[str, str] = attrs.field(factory=dict)


def seed_targets(seeds: tuple[str, ...] | list[str]) -> list[tuple[str, int]]:
    """``(address, port)`` for each seed: ``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or a CIDR range."""
    targets: list[tuple[str, int]] = []
    for seed in seeds:
        seed = seed.strip()
        if "/" in seed:
            try:
                network = ipaddress.ip_network(seed, strict=False)
            except ValueError:
                raise ValueError(f"seed {seed!r} is not an address range (A.B.C.D/NN)") from None
            if network.num_addresses > MAX_ADDRESSES:
                raise ValueError(f"seed {seed!r} spans {network.num_addresses} addresses; give at most "
                                 f"{MAX_ADDRESSES} (a /22)")
            hosts = list(network.hosts()) or [network.network_address]
            targets += [(str(host), slp.PORT) for host in hosts]
            continue
        match = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:\s]+)(?::(\d+))?", seed)
        if not match:
            raise ValueError(f"seed {seed!r} is not an address, ADDRESS:PORT or a range")
        host = match.group(1) or match.group(3)
        port = int(match.group(2) or match.group(4) or slp.PORT)
        targets.append((host, port))
    return targets


class _Asker(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answers: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()

    def datagram_received(self, data: bytes, address: Any) -> None:
        self.answers.put_nowait((data, address))

    def error_received(self, exc: Exception) -> None:  # a closed port: nothing will answer
        pass


async def _ask(host: str, port: int, body: slp.Body, timeout: float) -> slp.Body | None:
    """Send one request, wait for the reply with the same XID (None when none comes)."""
    loop = asyncio.get_running_loop()
    try:
        transport, asker = await loop.create_datagram_endpoint(_Asker, remote_addr=(host, port))
    except OSError:
        return None  # an address that cannot be reached at all
    xid = random.randrange(1, 0xFFFF)
    try:
        transport.sendto(slp.encode(body, xid))
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            try:
                data, _ = await asyncio.wait_for(asker.answers.get(), left)
            except TimeoutError:
                return None
            try:
                header, reply = slp.decode(data)
            except slp.SlpError:
                continue  # not SLP, or garbled: keep waiting for a real answer
            if header.xid == xid:
                return reply
        return None
    finally:
        transport.close()


async def _one(host: str, port: int, timeout: float) -> list[FoundModule]:
    reply = await _ask(host, port, slp.ServiceRequest(slp.MM_SERVICE), timeout)
    if not isinstance(reply, slp.ServiceReply) or reply.error:
        return []
    found = []
    for url, _lifetime in reply.urls:
        if not url.lower().startswith(slp.MM_SERVICE.lower()):
            continue
        attributes = await _ask(host, port, slp.AttributeRequest(url), timeout)
        parsed = slp.parse_attributes(attributes.attributes) \
            if isinstance(attributes, slp.AttributeReply) and not attributes.error else {}
        found.append(FoundModule(url, _address_of(url) or host, parsed))
    return found


def _address_of(url: str) -> str | None:
    """The host of ``service:management-hardware.IBM:management-module://HOST[:PORT]``."""
    match = re.search(r"://(\[[^\]]+\]|[^/:]+)", url)
    return match.group(1).strip("[]") if match else None


async def find_modules(seeds: tuple[str, ...] | list[str], timeout: float = TIMEOUT) -> list[FoundModule]:
    """Every Management Module that answers at the seeds (asked all at once)."""
    answers = await asyncio.gather(*(_one(host, port, timeout) for host, port in seed_targets(seeds)))
    unique: dict[str, FoundModule] = {}
    for module in (m for found in answers for m in found):
        unique.setdefault(module.url, module)
    return list(unique.values())


def proposal(module: FoundModule) -> dict[str, Any]:
    """The ``[platforms.NAME]`` table proposed for a module: named after its enclosure (or its
    address), its community read from an environment variable named after it (the community
    itself is the administrator's to give)."""
    raw = (module.attributes.get("enclosure-name") or module.attributes.get("mm-name")
           or f"bladecenter-{module.address}")
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")[:63] or "bladecenter"
    table: dict[str, Any] = {"name": name, "driver": "bladecenter", "address": module.address,
                             "version": "2c",
                             "community_env": "ENCOMPASS_" + re.sub(r"[^A-Z0-9]+", "_", name.upper())
                             + "_COMMUNITY"}
    return table
