"""Finding AMT PCs not configured yet, from seeds (``encompass discover --seed 10.1.0.0/24``).

Every address of every seed is asked at once, without credentials: AMT answers a POST to
``/wsman`` with HTTP 401 and a digest challenge whose realm is ``Digest:`` followed by 32 hex
digits, which is how the PC is told from any other web server. The PCs found are proposed as
one ``[platforms.NAME]`` table per seed, their password left for the user to give.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from encompass_core.errors import ConfigError, InvalidInput

from .http import Broken, Connection
from .settings import HTTP_PORT, Endpoint, endpoints

AMT_REALM = re.compile(r'realm="Digest:[0-9A-Fa-f]{32}"')
PROBE_TIMEOUT = 2.0
CONCURRENCY = 256


async def is_amt(endpoint: Endpoint, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether ``endpoint`` answers as an AMT interface (the digest realm AMT gives)."""
    connection = Connection(endpoint.host, endpoint.port, None)
    try:
        status, headers, _ = await asyncio.wait_for(
            connection.post("/wsman", b"", {"Content-Type": "application/soap+xml;charset=UTF-8"}),
            timeout)
    except (TimeoutError, OSError, Broken):
        return False
    finally:
        connection.close()
    return status == 401 and bool(AMT_REALM.search(headers.get("www-authenticate", "")))


def seed_endpoints(seed: str) -> list[Endpoint]:
    """The addresses a seed names: ``HOST[:PORT]``, ``A.B.C.D-A.B.C.E``, ``A.B.C.0/24`` or
    ``HOST:PORT-PORT``."""
    key = "range" if "/" in seed or re.search(r"\d-\d", seed) else "addresses"
    value: Any = seed if key == "range" else [seed]
    try:
        found, _ = endpoints({key: value, "port": HTTP_PORT}, f"amt discovery, seed {seed!r}")
    except ConfigError as exc:
        raise InvalidInput(str(exc)) from None
    return found


async def find_pcs(seeds: Sequence[str], timeout: float = PROBE_TIMEOUT) -> list[tuple[str, list[Endpoint]]]:
    """For each seed, the AMT PCs that answer at its addresses."""
    per_seed = [(seed, seed_endpoints(seed)) for seed in seeds]
    gate = asyncio.Semaphore(CONCURRENCY)

    async def probe(endpoint: Endpoint) -> bool:
        async with gate:
            return await is_amt(endpoint, timeout)

    found = []
    for seed, candidates in per_seed:
        answers = await asyncio.gather(*(probe(endpoint) for endpoint in candidates))
        found.append((seed, [endpoint for endpoint, yes in zip(candidates, answers, strict=True) if yes]))
    return found


def proposals(found: list[tuple[str, list[Endpoint]]]) -> list[dict[str, Any]]:
    """One platform table per seed where PCs answered (the user sets ``$AMT_PASSWORD``)."""
    tables = []
    for number, (_seed, pcs) in enumerate([item for item in found if item[1]], start=1):
        tables.append({"name": f"amt{number}", "driver": "amt",
                       "addresses": [endpoint.label for endpoint in pcs], "user": "admin",
                       "password_env": "AMT_PASSWORD"})
    return tables
