"""An asynchronous WS-Management client for many AMT PCs at once.

One :class:`AmtClient` serves a platform: a kept-alive connection per PC and its digest state
(:mod:`.http`), so each PC's challenge is answered once and reused (AMT's realm and nonce differ
from PC to PC). Every failure is one :class:`AmtError` line naming the platform and the PC:
a PC that does not answer, one slower than the timeout, a refused user, a SOAP fault, a method's
non-zero ``ReturnValue``, a reply that is not WS-Man.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from xml.etree import ElementTree

from encompass_core.errors import DriverError

from . import wsman
from .http import Broken, Connection, DigestAuth, Reply, Stale
from .settings import Endpoint

SOAP_TYPE = "application/soap+xml;charset=UTF-8"


class AmtError(DriverError):
    """An AMT PC could not be reached, refused a request, or answered something unexpected."""


class Unreachable(AmtError):
    """The PC did not answer at all (refused, reset, timed out): discovery of a range skips it."""


class AmtClient:
    """Talks to the PCs of one platform; use as ``async with AmtClient(...) as client``.

    ``tls``: the SSL context for HTTPS PCs, made once by the caller (loading CAs takes a
    quarter of a second). ``authenticators``: the digest state per PC, kept by the caller
    across clients, so a PC's challenge is answered once and not on every poll.
    """

    def __init__(self, where: str, user: str, password: str, timeout: float,
                 tls: ssl.SSLContext | None = None,
                 authenticators: dict[Endpoint, DigestAuth] | None = None) -> None:
        self.where = where
        self.user = user
        self._password = password
        self.timeout = timeout
        self._tls = tls
        self._auth = {} if authenticators is None else authenticators
        self._connections: dict[Endpoint, Connection] = {}
        self._locks: dict[Endpoint, asyncio.Lock] = {}

    def __repr__(self) -> str:  # never the password
        return f"AmtClient({self.where}, user={self.user!r})"

    async def __aenter__(self) -> AmtClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            connection.close()

    def _connection(self, endpoint: Endpoint) -> Connection:
        connection = self._connections.get(endpoint)
        if connection is None:
            if endpoint.tls and self._tls is None:
                self._tls = ssl.create_default_context()
            connection = self._connections[endpoint] = Connection(
                endpoint.host, endpoint.port, self._tls if endpoint.tls else None)
        return connection

    def _authenticator(self, endpoint: Endpoint) -> DigestAuth:
        auth = self._auth.get(endpoint)
        if auth is None:
            auth = self._auth[endpoint] = DigestAuth(self.user, self._password)
        return auth

    async def _post(self, endpoint: Endpoint, envelope: bytes) -> tuple[int, bytes]:
        """POST to /wsman, answering a digest challenge (once); the status and body."""
        auth = self._authenticator(endpoint)
        # One request at a time per PC: its connection and nonce count are shared.
        async with self._locks.setdefault(endpoint, asyncio.Lock()):
            connection = self._connection(endpoint)
            fresh = False  # whether the challenge answered came with this very request's 401
            for _ in range(3):
                status, reply_headers, body = await self._send(connection, auth, envelope)
                if status != 401 or fresh or not auth.learn(reply_headers.get("www-authenticate")):
                    return status, body  # a 401 to a fresh challenge's answer: the password
                fresh = True  # none known yet, or the one kept from an earlier poll went stale
            return status, body

    @staticmethod
    async def _send(connection: Connection, auth: DigestAuth, envelope: bytes) -> Reply:
        """One POST with the current digest answer; once more on a new connection when the kept
        one was closed meanwhile (with a new answer: a nonce count is never sent twice)."""
        for attempt in (1, 2):
            headers = {"Content-Type": SOAP_TYPE}
            if (authorization := auth.header("POST", "/wsman")) is not None:
                headers["Authorization"] = authorization
            try:
                return await connection.post("/wsman", envelope, headers)
            except Stale:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # -- one request ---------------------------------------------------------------------------
    async def call(self, endpoint: Endpoint, action: str, resource: str, body: str = "",
                   selectors: Mapping[str, str] | None = None, what: str = "") -> ElementTree.Element:
        """Post one envelope and return the reply's body; ``what`` names the request in errors."""
        what = what or f"{action.rsplit('/', 1)[-1]} {resource.rsplit('/', 1)[-1]}"
        pc = f"{self.where}: AMT at {endpoint.label}"
        envelope = wsman.envelope(action, resource, endpoint.url, body, selectors, self.timeout)
        try:
            status, reply = await asyncio.wait_for(self._post(endpoint, envelope.encode()), self.timeout)
        except TimeoutError:
            self._drop(endpoint)
            raise Unreachable(f"{pc} did not answer {what} within {self.timeout:g} s (the "
                              "platform's timeout setting); is the PC on the network?") from None
        except ssl.SSLError as exc:
            self._drop(endpoint)
            raise AmtError(f"{pc}: TLS failed ({exc.reason or exc}); give the CA that signed its "
                           "certificate as ca_file") from None
        except Broken as exc:
            self._drop(endpoint)
            hint = "" if endpoint.tls else " (a PC that speaks HTTPS only needs tls = true)"
            raise Unreachable(f"{pc} broke off {what}: {exc}{hint}") from None
        except OSError as exc:
            self._drop(endpoint)
            raise Unreachable(f"{pc} does not answer ({exc.strerror or exc}); is its AMT "
                              "enabled, and the address right?") from None
        if status == 401:
            raise AmtError(f"{pc} refused user '{self.user}' (HTTP 401, digest authentication): "
                           "check the password the platform's password_env or password_file gives")
        if status == 403:
            raise AmtError(f"{pc}: user '{self.user}' may not {what} (HTTP 403); give it the "
                           "rights it needs in AMT")
        try:
            return wsman.parse(reply)
        except wsman.Fault as fault:
            raise AmtError(f"{pc} refused {what}: {fault}") from None
        except wsman.Malformed as exc:
            raise AmtError(f"{pc} answered {what} with HTTP {status} and {exc}; is it "
                           "an AMT interface?") from None

    def _drop(self, endpoint: Endpoint) -> None:
        """Forget a connection a request gave up on (a late reply must not answer the next)."""
        connection = self._connections.pop(endpoint, None)
        if connection is not None:
            connection.close()

    # -- WS-Transfer, WS-Enumeration, methods ------------------------------------------------------
    async def get(self, endpoint: Endpoint, resource: str,
                  selectors: Mapping[str, str] | None = None) -> dict[str, list[str]]:
        """One instance's properties."""
        body = await self.call(endpoint, wsman.GET, resource, selectors=selectors)
        try:
            return wsman.fields(wsman.first_instance(body))
        except wsman.Malformed as exc:
            raise AmtError(f"{self.where}: AMT at {endpoint.label} answered Get "
                           f"{resource.rsplit('/', 1)[-1]} with {exc}") from None

    async def put(self, endpoint: Endpoint, resource: str, values: Mapping[str, object],
                  selectors: Mapping[str, str]) -> None:
        """Write an instance's properties."""
        await self.call(endpoint, wsman.PUT, resource, wsman.instance(resource, values), selectors)

    async def enumerate(self, endpoint: Endpoint, resource: str) -> list[dict[str, list[str]]]:
        """Every instance of a class (Enumerate, then Pull until the sequence ends)."""
        name = resource.rsplit("/", 1)[-1]
        body = await self.call(endpoint, wsman.ENUMERATE, resource, wsman.enumerate_body(),
                               what=f"Enumerate {name}")
        found: list[dict[str, list[str]]] = []
        try:
            context = wsman.enumeration_context(body)
            for _ in range(64):  # AMT hands out at most MaxElements per Pull; 64 Pulls is plenty
                body = await self.call(endpoint, wsman.PULL, resource, wsman.pull_body(context),
                                       what=f"Pull {name}")
                items, ended = wsman.pulled(body)
                found.extend(wsman.fields(item) for item in items)
                if ended:
                    return found
                context = wsman.enumeration_context(body)
        except wsman.Malformed as exc:
            raise AmtError(f"{self.where}: AMT at {endpoint.label} answered Pull {name} "
                           f"with {exc}") from None
        raise AmtError(f"{self.where}: AMT at {endpoint.label} never ended the enumeration of {name}")

    async def invoke(self, endpoint: Endpoint, resource: str, method: str, fields: str,
                     selectors: Mapping[str, str], what: str) -> None:
        """Call a method; a non-zero ``ReturnValue`` is an error saying what it means."""
        body = await self.call(endpoint, f"{resource}/{method}", resource,
                               wsman.method_input(resource, method, fields), selectors, what)
        try:
            value = wsman.return_value(body, method)
        except wsman.Malformed as exc:
            raise AmtError(f"{self.where}: AMT at {endpoint.label} answered {what} with {exc}") from None
        if value != 0:
            meaning = wsman.RETURN_VALUES.get(value, "an error the SDK does not list")
            raise AmtError(f"{self.where}: AMT at {endpoint.label} could not {what}: "
                           f"ReturnValue {value} ({meaning})")
