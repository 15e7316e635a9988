"""A loopback SLP responder for tests: answers Service Requests for the Management Module
service type and Attribute Requests for its URL, as a BladeCenter MM does (RFC 2608, unicast)."""

from __future__ import annotations

import socket
import threading

from encompass_bladecenter import slp


class Responder:
    """``with Responder(url, attributes) as responder:`` serves on ``responder.port``."""

    def __init__(self, url: str, attributes: str, service_type: str = slp.MM_SERVICE) -> None:
        self.url, self.attributes, self.service_type = url, attributes, service_type
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.requests: list[slp.Body] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Responder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.socket.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.socket.recvfrom(65535)
            except OSError:
                return  # closed
            try:
                header, body = slp.decode(data)
            except slp.SlpError:
                continue  # an MM ignores what it cannot parse
            self.requests.append(body)
            if isinstance(body, slp.ServiceRequest):
                if body.service_type.lower() != self.service_type.lower():
                    continue  # unicast requests for other services get no answer (RFC 2608 8.1)
                reply: slp.Body = slp.ServiceReply(((self.url, 65535),))
            elif isinstance(body, slp.AttributeRequest):
                known = body.url == self.url
                reply = slp.AttributeReply(self.attributes if known else "", 0 if known else 2)
            else:
                continue
            self.socket.sendto(slp.encode(reply, header.xid, header.language), peer)
