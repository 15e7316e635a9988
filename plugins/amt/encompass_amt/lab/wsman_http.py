"""The HTTP side of the lab's WS-Man responder: HTTP/1.1 with keep-alive and digest
authentication (RFC 7616, MD5, ``qop="auth"``, a realm ``Digest:`` + 32 hex digits as AMT
names it), one listening socket per PC on 127.0.0.1, all served by one asyncio loop.

:mod:`.responder` gives each endpoint what to answer; nothing here knows SOAP.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import ssl
from collections.abc import Awaitable, Callable

#: What an endpoint does with an authenticated POST to /wsman: (status, content type, body).
Handler = Callable[[bytes], Awaitable[tuple[int, str, bytes]]]

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           405: "Method Not Allowed", 411: "Length Required", 413: "Payload Too Large",
           500: "Internal Server Error"}
MAX_BODY = 1 << 20
_PARAM = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - digest authentication is MD5


class DigestGate:
    """Checks ``Authorization: Digest`` headers for one endpoint (its realm, its nonces)."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self._password = password
        self.realm = "Digest:" + secrets.token_hex(16).upper()
        self._nonces: dict[str, int] = {}  # nonce -> highest nonce count seen (replays refused)

    def challenge(self) -> str:
        nonce = secrets.token_hex(16)
        self._nonces[nonce] = 0
        if len(self._nonces) > 1024:  # forget the oldest
            self._nonces.pop(next(iter(self._nonces)))
        return f'Digest realm="{self.realm}", nonce="{nonce}", stale="false", qop="auth"'

    def admits(self, header: str | None, method: str, path: str) -> bool:
        if not header or not header.lower().startswith("digest "):
            return False
        # findall gives "" for the alternative that did not match: a value is quoted or plain
        params = {key.lower(): plain or quoted for key, quoted, plain in _PARAM.findall(header[7:])}
        nonce = params.get("nonce", "")
        if params.get("username") != self.user or params.get("realm") != self.realm \
                or nonce not in self._nonces or params.get("uri") != path:
            return False
        if params.get("algorithm", "MD5").upper() != "MD5" or params.get("qop") != "auth":
            return False
        try:
            count = int(params.get("nc", ""), 16)
        except ValueError:
            return False
        if count <= self._nonces[nonce]:
            return False
        ha1 = _md5(f"{self.user}:{self.realm}:{self._password}")
        ha2 = _md5(f"{method}:{path}")
        expected = _md5(f"{ha1}:{nonce}:{params.get('nc')}:{params.get('cnonce', '')}:auth:{ha2}")
        if not hmac.compare_digest(expected, params.get("response", "")):
            return False
        self._nonces[nonce] = count
        return True


class Endpoint:
    """One listening socket: digest-checked POSTs to /wsman go to ``handler``.

    ``stall``: accept connections and never answer (a PC whose firmware hangs), for timeout tests.
    """

    def __init__(self, gate: DigestGate, handler: Handler) -> None:
        self.gate = gate
        self.handler = handler
        self.stall = False
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        """Listen on ``port`` (0: a free one the system picks), over TLS with a ``tls`` context."""
        self._server = await asyncio.start_server(self._serve, host, port, backlog=256, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except ssl.SSLError:
            pass  # a client that does not trust the certificate hangs up in the handshake
        except asyncio.CancelledError:
            pass  # the lab is closing: end quietly, the connection goes with it
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; whether the connection stays open."""
        line = await reader.readline()
        if not line:
            return False
        if self.stall:
            await asyncio.Event().wait()  # never answers; the client's timeout ends it
        parts = line.decode("latin-1").split()
        headers: dict[str, str] = {}
        while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if len(parts) != 3:
            return self._reply(writer, 400, "text/plain", b"bad request line\n", close=True)
        method, path, _ = parts
        length = headers.get("content-length", "0")
        if not length.isdigit():
            return self._reply(writer, 411, "text/plain", b"Content-Length needed\n", close=True)
        if int(length) > MAX_BODY:
            return self._reply(writer, 413, "text/plain", b"too large\n", close=True)
        body = await reader.readexactly(int(length))
        keep = headers.get("connection", "").lower() != "close"
        if path != "/wsman":
            return self._reply(writer, 404, "text/plain", b"not found\n", close=not keep)
        if method != "POST":
            return self._reply(writer, 405, "text/plain", b"POST only\n", close=not keep)
        if not self.gate.admits(headers.get("authorization"), method, path):
            return self._reply(writer, 401, "text/html", b"<html>401 Unauthorized</html>",
                               close=not keep, extra={"WWW-Authenticate": self.gate.challenge()})
        try:
            status, content_type, answer = await self.handler(body)
        except Exception as exc:  # noqa: BLE001 - a failing PC answers, as a web server does
            status, content_type, answer = 500, "text/plain", f"internal error: {exc}\n".encode()
        result = self._reply(writer, status, content_type, answer, close=not keep)
        await writer.drain()
        return result

    @staticmethod
    def _reply(writer: asyncio.StreamWriter, status: int, content_type: str, body: bytes,
               close: bool, extra: dict[str, str] | None = None) -> bool:
        head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
                f"Content-Type: {content_type}", f"Content-Length: {len(body)}",
                "Server: Intel(R) Active Management Technology (Encompass lab responder)"]
        head += [f"{key}: {value}" for key, value in (extra or {}).items()]
        if close:
            head.append("Connection: close")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        return not close
