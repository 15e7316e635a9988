"""A datastore's files over HTTPS (``/folder/PATH?dcPath=DC&dsName=DS``), with the session's
``vmware_soap_session`` cookie: how VMDK bytes reach and leave a datastore."""

from __future__ import annotations

import contextlib
import http.client
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from encompass_core.errors import DriverError, NotFound

from .connection import Session

CHUNK = 1 << 20


class DatastoreFiles:
    """The files of datastore ``datastore`` in datacenter ``datacenter``."""

    def __init__(self, session: Session, datacenter: str, datastore: str) -> None:
        self.session = session
        self.datacenter = datacenter
        self.datastore = datastore

    def _url(self, path: str) -> str:
        return (f"/folder/{quote(path)}?dcPath={quote(self.datacenter, safe='')}"
                f"&dsName={quote(self.datastore, safe='')}")

    def _request(self, method: str, path: str, action: str, body: object = None,
                 headers: dict[str, str] | None = None) -> tuple[http.client.HTTPSConnection,
                                                                  http.client.HTTPResponse]:
        session = self.session
        cookie = session.call(action, session.session_cookie)
        connection = http.client.HTTPSConnection(session.host, session.port,
                                                 context=session.ssl_context(),
                                                 timeout=session.timeout)
        try:
            connection.request(method, self._url(path), body=body,
                               headers={"Cookie": cookie, **(headers or {})})
            return connection, connection.getresponse()
        except Exception as exc:  # noqa: BLE001 - one line for every failure
            connection.close()
            raise session._translate(exc, action) from None

    def exists(self, path: str) -> bool:
        connection, response = self._request("HEAD", path, f"look for [{self.datastore}] {path}")
        with contextlib.closing(connection):
            response.read()
            if response.status == 404:
                return False
            self._check(response, f"look for [{self.datastore}] {path}")
            return True

    def size(self, path: str) -> int:
        connection, response = self._request("HEAD", path, f"look for [{self.datastore}] {path}")
        with contextlib.closing(connection):
            response.read()
            self._check(response, f"look for [{self.datastore}] {path}", path)
            return int(response.getheader("Content-Length") or 0)

    def read_text(self, path: str) -> str:
        action = f"read [{self.datastore}] {path}"
        connection, response = self._request("GET", path, action)
        with contextlib.closing(connection):
            data = response.read()
            self._check(response, action, path)
            return data.decode("utf-8", "replace")

    def write_bytes(self, path: str, data: bytes) -> None:
        action = f"write [{self.datastore}] {path}"
        connection, response = self._request("PUT", path, action, body=data,
                                              headers={"Content-Length": str(len(data)),
                                                       "Content-Type": "application/octet-stream"})
        with contextlib.closing(connection):
            response.read()
            self._check(response, action)

    def download(self, path: str, target: Path, progress: Callable[[int], None] | None = None) -> int:
        """Copy a datastore file to ``target``; return its size."""
        action = f"download [{self.datastore}] {path}"
        connection, response = self._request("GET", path, action)
        done = 0
        with contextlib.closing(connection):
            if response.status >= 300:
                response.read()
                self._check(response, action, path)
            try:
                with open(target, "wb") as out:
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(len(chunk))
            except (OSError, http.client.HTTPException) as exc:
                raise self.session._translate(exc, action) from None
        return done

    def upload(self, source: Path, path: str, size: int | None = None,
               progress: Callable[[int], None] | None = None) -> None:
        """Copy ``source`` to the datastore file ``path``, padded with zeros to ``size``."""
        action = f"upload {source} to [{self.datastore}] {path}"
        length = os.path.getsize(source)
        total = max(size or 0, length)
        connection, response = self._request(
            "PUT", path, action, body=_Padded(source, total, progress),
            headers={"Content-Length": str(total), "Content-Type": "application/octet-stream"})
        with contextlib.closing(connection):
            response.read()
            self._check(response, action)

    def _check(self, response: http.client.HTTPResponse, action: str, path: str | None = None) -> None:
        if response.status == 404 and path is not None:
            raise NotFound(f"{self.session.owner}: [{self.datastore}] {path} does not exist")
        if response.status in (401, 403):
            raise DriverError(f"{self.session.owner}: cannot {action}: {self.session.where} refused "
                              f"the datastore access (HTTP {response.status})")
        if response.status >= 300:
            raise DriverError(f"{self.session.owner}: cannot {action}: HTTP {response.status} "
                              f"{response.reason}")


class _Padded:
    """A file read in chunks and padded with zeros to ``total`` bytes (a VMDK extent is whole
    sectors), reporting progress; what http.client streams as a request body."""

    def __init__(self, source: Path, total: int, progress: Callable[[int], None] | None) -> None:
        self.source = source
        self.total = total
        self.progress = progress

    def __iter__(self):
        sent = 0
        with open(self.source, "rb") as handle:
            while chunk := handle.read(CHUNK):
                sent += len(chunk)
                if self.progress is not None:
                    self.progress(len(chunk))
                yield chunk
        while sent < self.total:
            pad = min(CHUNK, self.total - sent)
            sent += pad
            yield bytes(pad)

