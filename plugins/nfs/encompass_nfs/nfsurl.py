"""``nfs://HOST[:PORT]/EXPORT[?version=3|4&nfsport=P&mountport=M]``: what a pool's ``url`` says."""

from __future__ import annotations

import os
import posixpath
from urllib.parse import parse_qs, urlsplit

import attrs

from encompass_core.errors import ConfigError

#: Query arguments passed on to libnfs (others are refused: a typo would be silently ignored).
KNOWN_ARGUMENTS = ("version", "nfsport", "mountport", "uid", "gid")


@attrs.frozen
class NfsUrl:
    """A parsed export URL. ``version`` is the NFS version libnfs speaks (3 unless asked)."""

    text: str  # as given, query included: what libnfs parses
    host: str
    export: str  # "/export", no trailing slash
    version: int = 3
    nfsport: int | None = None
    mountport: int | None = None

    @property
    def plain(self) -> str:
        """The URL without its query: for messages and for QEMU (which takes no query)."""
        return f"nfs://{self.host}{self.export}"

    def of(self, rel: str) -> str:
        """The URL of a path inside the export (``image/vol0.raw``)."""
        return f"{self.plain}/{rel}" if rel else self.plain

    def identity(self) -> dict[str, int]:
        """The uid and gid the pool speaks as (the URL's, else this process's, as libnfs does):
        the owner of the files it makes, which a hypervisor must speak as to write them."""
        query = parse_qs(urlsplit(self.text).query)
        uid, gid = query.get("uid", [""])[-1], query.get("gid", [""])[-1]
        return {"uid": int(uid) if uid.isdigit() else os.getuid(),
                "gid": int(gid) if gid.isdigit() else os.getgid()}

    def service_port(self) -> int:
        """The port that answers first: the NFS port for v4 or a given one, else rpcbind's."""
        if self.nfsport:
            return self.nfsport
        return 2049 if self.version == 4 else 111


def parse_nfs_url(text: str, where: str) -> NfsUrl:
    """Parse ``text``; a URL that is not ``nfs://HOST/EXPORT`` is a :class:`ConfigError`."""
    parts = urlsplit(text)
    if parts.scheme != "nfs" or not parts.hostname or not parts.path.strip("/"):
        raise ConfigError(f"{where}: 'url' should be nfs://HOST/EXPORT, found {text!r}")
    if parts.port:
        raise ConfigError(f"{where}: 'url' gives a port; NFS ports go in the query "
                          "(nfs://HOST/EXPORT?nfsport=P&mountport=M)")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - set(KNOWN_ARGUMENTS))
    if unknown:
        raise ConfigError(f"{where}: 'url' has unknown arguments {', '.join(unknown)} "
                          f"(known: {', '.join(KNOWN_ARGUMENTS)})")
    numbers: dict[str, int] = {}
    for key in ("version", "nfsport", "mountport"):
        if key in query:
            value = query[key][-1]
            if not value.isdigit():
                raise ConfigError(f"{where}: 'url' argument {key} should be a number, found {value!r}")
            numbers[key] = int(value)
    version = numbers.get("version", 3)
    if version not in (3, 4):
        raise ConfigError(f"{where}: 'url' asks for NFS version {version}; use 3 or 4")
    export = posixpath.normpath("/" + parts.path.strip("/"))
    return NfsUrl(text=text, host=parts.hostname, export=export, version=version,
                  nfsport=numbers.get("nfsport"), mountport=numbers.get("mountport"))
