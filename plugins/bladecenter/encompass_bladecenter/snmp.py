"""A small asyncio SNMP client over pysnmp 7 for one Management Module: get, set, walk.

Every failure becomes one :class:`~encompass_core.errors.DriverError` line naming the platform
and what to do: no answer (a wrong community looks the same as a silent agent in SNMPv2c, so
the line says both, and a closed port is told apart by a probe), a refused SNMPv3 user or
password, ``noSuchInstance``/``noSuchObject`` (an object this Management Module does not
have), an error status of the agent. Secrets (community, passwords) are held by the pysnmp
credentials object only: never in a message, a log line or an argument list.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Sequence
from typing import Any

import attrs

from encompass_core.errors import ConfigError, DriverError

from .oids import dotted

Oid = tuple[int, ...]


@attrs.frozen(repr=False)
class Credentials:
    """How to authenticate: ``2c`` with a community, or ``3`` with a user and passwords. Its
    repr shows no secret."""

    version: str
    community: str | None = None
    user: str | None = None
    auth_password: str | None = None
    priv_password: str | None = None
    auth_protocol: str = "SHA"
    priv_protocol: str = "AES"

    def __repr__(self) -> str:
        return f"Credentials(version={self.version!r}, user={self.user!r})"


@attrs.frozen
class Target:
    """One agent: the platform it serves (for messages), address, port, timeout, retries."""

    platform: str
    address: str
    port: int = 161
    timeout: float = 5.0
    retries: int = 1

    @property
    def where(self) -> str:
        return f"{self.address}:{self.port}"


def _auth_data(credentials: Credentials) -> Any:
    from pysnmp.hlapi.v3arch.asyncio import (
        USM_AUTH_HMAC96_MD5,
        USM_AUTH_HMAC96_SHA,
        USM_PRIV_CBC56_DES,
        USM_PRIV_CFB128_AES,
        USM_PRIV_NONE,
        CommunityData,
        UsmUserData,
    )

    if credentials.version == "2c":
        return CommunityData(credentials.community or "", mpModel=1)
    auth = {"MD5": USM_AUTH_HMAC96_MD5, "SHA": USM_AUTH_HMAC96_SHA}[credentials.auth_protocol]
    priv = {"DES": USM_PRIV_CBC56_DES, "AES": USM_PRIV_CFB128_AES}[credentials.priv_protocol]
    return UsmUserData(credentials.user or "", authKey=credentials.auth_password,
                       privKey=credentials.priv_password, authProtocol=auth,
                       privProtocol=priv if credentials.priv_password else USM_PRIV_NONE)


def _port_closed(address: str, port: int) -> bool:
    """Whether nothing listens on the UDP port (the host answers 'port unreachable'): a
    connected UDP socket sees that as ECONNREFUSED on its next receive."""
    try:
        family = socket.getaddrinfo(address, port, type=socket.SOCK_DGRAM)[0]
    except OSError:
        return False
    with socket.socket(family[0], socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.3)
        try:
            probe.connect(family[4])
            probe.send(b"\x30\x00")  # not SNMP: an agent drops it, a closed port refuses it
            probe.recv(16)
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return False


class SnmpSession:
    """Requests to one agent inside one event loop (``async with SnmpSession(...)``)."""

    def __init__(self, target: Target, credentials: Credentials, engine: Any = None) -> None:
        self.target = target
        self._credentials = credentials
        self._own_engine = engine is None
        self._engine: Any = engine
        self._transport: Any = None
        self._auth: Any = None

    async def __aenter__(self) -> SnmpSession:
        from pysnmp.hlapi.v3arch.asyncio import SnmpEngine, UdpTransportTarget

        try:
            self._transport = await UdpTransportTarget.create(
                (self.target.address, self.target.port), timeout=self.target.timeout,
                retries=self.target.retries)
        except Exception as error:  # pysnmp wraps resolution failures in its own error
            raise DriverError(f"platform '{self.target.platform}': cannot resolve the Management "
                              f"Module's address {self.target.address!r}: fix 'address' in "
                              f"[platforms.{self.target.platform}]") from error
        if self._engine is None:
            self._engine = SnmpEngine()  # about 0.7 s (it loads its MIBs): share one when polling many
        self._auth = _auth_data(self._credentials)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._engine is not None and self._own_engine:
            with contextlib.suppress(Exception):
                self._engine.close_dispatcher()
            self._engine = None

    # -- requests --------------------------------------------------------------------------
    async def get(self, oids: Sequence[Oid], missing_ok: bool = False) -> dict[Oid, Any]:
        """The values of ``oids`` (Python ints and strs). An object the agent does not have
        is an error, or left out with ``missing_ok``."""
        from pysnmp.hlapi.v3arch.asyncio import ContextData, ObjectIdentity, ObjectType, get_cmd

        found: dict[Oid, Any] = {}
        for start in range(0, len(oids), 24):  # keep each PDU well under one UDP datagram
            chunk = oids[start:start + 24]
            answer = await get_cmd(self._engine, self._auth, self._transport, ContextData(),
                                   *[ObjectType(ObjectIdentity(dotted(oid))) for oid in chunk],
                                   lookupMib=False)
            for oid, value in self._check(answer, "read", chunk):
                if _absent(value):
                    if missing_ok:
                        continue
                    raise DriverError(
                        f"platform '{self.target.platform}': the Management Module at "
                        f"{self.target.where} has no object {dotted(oid)} ({type(value).__name__}): "
                        "it is not a BladeCenter MM, or its firmware lacks that part of BLADE-MIB")
                found[oid] = _python(value)
        return found

    async def set(self, oid: Oid, value: int) -> None:
        """Set an INTEGER object (power, restart and boot sequence objects are all INTEGERs)."""
        from pysnmp.hlapi.v3arch.asyncio import ContextData, ObjectIdentity, ObjectType, set_cmd
        from pysnmp.proto.rfc1902 import Integer32

        answer = await set_cmd(self._engine, self._auth, self._transport, ContextData(),
                               ObjectType(ObjectIdentity(dotted(oid)), Integer32(value)),
                               lookupMib=False)
        self._check(answer, "set", [oid])

    async def walk(self, root: Oid) -> dict[Oid, Any]:
        """Every object below ``root`` (GETBULK), as ``{oid: value}``."""
        return (await self.walk_columns([root], 32))[root]

    async def walk_columns(self, columns: Sequence[Oid], rows: int,
                           scalars: Sequence[Oid] = ()) -> dict[Oid, dict[Oid, Any]]:
        """Every object below each of ``columns``, walked side by side, and the instance that
        follows each of ``scalars`` (the GETNEXT of a scalar object's own OID is its ``.0``).

        Each GETBULK carries one cursor per column still open and asks ``rows`` + 1
        repetitions, so the columns of a table of ``rows`` rows, and the scalars, come back in
        one round trip (the extra row shows each column's end). An agent behind
        ``pass_persist`` pays for every object it returns: ask for what the table holds."""
        from pysnmp.hlapi.v3arch.asyncio import ContextData, ObjectIdentity, ObjectType, bulk_cmd

        found: dict[Oid, dict[Oid, Any]] = {oid: {} for oid in (*scalars, *columns)}
        cursors = {column: column for column in columns}
        walking, asking = list(columns), list(scalars)
        while walking or asking:
            answer = await bulk_cmd(self._engine, self._auth, self._transport, ContextData(),
                                    len(asking), rows + 1,
                                    *[ObjectType(ObjectIdentity(dotted(oid))) for oid in asking],
                                    *[ObjectType(ObjectIdentity(dotted(cursors[column])))
                                      for column in walking], lookupMib=False)
            bindings = self._check(answer, "read", [*asking, *walking])
            for scalar, (oid, value) in zip(asking, bindings, strict=False):
                if oid[:len(scalar)] == scalar and not _end(value):
                    found[scalar][oid] = _python(value)
            bindings, asking = bindings[len(asking):], []
            ended: set[Oid] = set()
            moved = False
            for position, (oid, value) in enumerate(bindings):
                column = walking[position % len(walking)]  # repetitions come column by column
                if column in ended:
                    continue
                if oid[:len(column)] != column or _end(value):
                    ended.add(column)
                    continue
                if oid <= cursors[column]:
                    raise DriverError(f"platform '{self.target.platform}': the Management Module at "
                                      f"{self.target.where} returned objects out of order below "
                                      f"{dotted(column)}")
                found[column][oid] = _python(value)
                cursors[column], moved = oid, True
            if not moved:  # nothing new in any open column: they all ended
                return found
            walking = [column for column in walking if column not in ended]
        return found

    # -- answers ---------------------------------------------------------------------------
    def _check(self, answer: Any, what: str, asked: Sequence[Oid]) -> list[tuple[Oid, Any]]:
        indication, status, index, bindings = answer
        platform, where = self.target.platform, self.target.where
        if indication:
            raise DriverError(self._indication_message(indication))
        if status:
            name = status.prettyPrint() if hasattr(status, "prettyPrint") else str(status)
            position = int(index or 0)
            about = dotted(asked[position - 1]) if 0 < position <= len(asked) else ""
            advice = {
                "noAccess": "the community or user has no write access",
                "notWritable": "the community or user has no write access",
                "authorizationError": "the community or user may not do this",
                "noSuchName": "the MM does not have that object",
                "wrongValue": "the MM refused the value",
                "inconsistentValue": "the MM refused the value in the blade's present state",
            }.get(name, "see the MM's event log")
            raise DriverError(f"platform '{platform}': the Management Module at {where} refused the "
                              f"{what} of {about or 'an object'}: {name} ({advice})")
        return [(tuple(int(part) for part in binding[0]), binding[1]) for binding in bindings]

    def _indication_message(self, indication: Any) -> str:
        platform, where, target = self.target.platform, self.target.where, self.target
        kind = type(indication).__name__
        if kind == "RequestTimedOut":
            if _port_closed(target.address, target.port):
                return (f"platform '{platform}': no SNMP agent at {where} (the port is closed): "
                        "is the Management Module up, and are 'address' and 'port' right?")
            tries = target.retries + 1
            if self._credentials.version == "2c":
                return (f"platform '{platform}': the Management Module at {where} did not answer "
                        f"in {target.timeout:g} s ({tries} tries): a wrong community gets no answer "
                        f"in SNMPv2c, so check community_env/community_file, then the address")
            return (f"platform '{platform}': the Management Module at {where} did not answer in "
                    f"{target.timeout:g} s ({tries} tries): check the address and the SNMPv3 settings")
        if kind in ("UnknownUserName", "UnknownSecurityName"):
            return (f"platform '{platform}': the Management Module at {where} does not know the "
                    f"SNMPv3 user {self._credentials.user!r}: fix 'user' in [platforms.{platform}]")
        if kind in ("WrongDigest", "AuthenticationError", "AuthenticationFailure"):
            return (f"platform '{platform}': the Management Module at {where} refused the SNMPv3 "
                    "authentication password (wrong digest): fix auth_password_env/_file")
        if kind in ("DecryptionError", "UnsupportedSecurityLevel"):
            return (f"platform '{platform}': the Management Module at {where} refused the SNMPv3 "
                    f"privacy settings ({kind}): fix priv_password_env/_file or priv_protocol")
        return f"platform '{platform}': SNMP request to {where} failed: {indication}"


def _absent(value: Any) -> bool:
    return type(value).__name__ in ("NoSuchInstance", "NoSuchObject", "EndOfMibView")


def _end(value: Any) -> bool:
    return type(value).__name__ == "EndOfMibView"


def _python(value: Any) -> Any:
    """An SNMP value as a Python int or str (OCTET STRINGs decoded, NULs dropped)."""
    if type(value).__name__ in ("OctetString", "DisplayString"):
        return bytes(value).rstrip(b"\0").decode("utf-8", errors="replace")
    with contextlib.suppress(TypeError, ValueError):
        return int(value)
    return str(value)


class Runner:
    """Runs request coroutines from synchronous code (the driver's methods) on one private event
    loop, so one SNMP engine serves every call of a driver."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()  # calls from several threads take turns on the one loop

    def run(self, coroutine: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coroutine.close()
            raise RuntimeError("the bladecenter driver's synchronous methods cannot run inside an "
                               "event loop: await encompass_bladecenter.chassis.Chassis instead")
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                self._loop = asyncio.new_event_loop()
            return self._loop.run_until_complete(coroutine)

    def close(self, last: Any = None) -> None:
        """Run ``last`` (a closing coroutine), then close the loop."""
        with self._lock:
            self._close(last)

    def _close(self, last: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            if last is not None:
                with contextlib.suppress(Exception):
                    self._loop.run_until_complete(last)
            self._loop.close()
        elif last is not None:
            last.close()  # nothing was ever opened on a loop
        self._loop = None


def check_credentials(credentials: Credentials, platform: str) -> None:
    """Refuse settings that cannot authenticate, before any packet is sent."""
    if credentials.version == "2c" and not credentials.community:
        raise ConfigError(f"[platforms.{platform}] needs its community: community_env = \"VARIABLE\" "
                          "or community_file = \"path (mode 0600)\"")
    if credentials.version == "3":
        if not credentials.user:
            raise ConfigError(f"[platforms.{platform}] version = \"3\" needs user = \"NAME\"")
        if not credentials.auth_password:
            raise ConfigError(f"[platforms.{platform}] version = \"3\" needs auth_password_env or "
                              "auth_password_file")
        for name, secret in (("auth_password", credentials.auth_password),
                             ("priv_password", credentials.priv_password)):
            if secret is not None and len(secret) < 8:
                raise ConfigError(f"[platforms.{platform}] the SNMPv3 {name} is shorter than 8 "
                                  "characters, which SNMPv3 refuses")
