"""The OVA file: a USTAR archive holding the descriptor first, the disks, and the manifest.

DSP0243 wants the descriptor as the archive's first file (a reader finds it without scanning
the rest), and the manifest and certificate either right after it or at the end. Ours go at
the end: each disk is hashed while it is written, so the package is made in one pass over the
disks. The manifest lists the SHA-256 digest of every other file (``SHA256(name)= hex``).

Reading never extracts anything: members are read in place, by offset, and a package whose
member names could lead outside it, or which holds links or devices, is refused.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import time
from collections.abc import Callable, Iterable
from typing import BinaryIO

import attrs

from ..errors import InvalidInput
from .reader import check_href

BLOCK = 512
CHUNK = 4 << 20
#: Digests a manifest may use (VMware's tools wrote SHA1 before SHA256).
DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}
_MANIFEST_LINE = re.compile(
    r"^(?P<algo>SHA1|SHA256|SHA512)\s*\((?P<name>[^)]+)\)\s*=\s*(?P<hex>[0-9a-fA-F]+)\s*$")


class OvaWriter:
    """Writes members one after the other into ``out``, hashing each as it goes."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.digests: dict[str, str] = {}
        self.mtime = int(time.time())

    def add(self, name: str, size: int, chunks: Iterable[bytes],
            progress: Callable[[int], None] | None = None) -> None:
        """Add member ``name`` of ``size`` bytes, its content given as ``chunks``."""
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o644, self.mtime
        self.out.write(info.tobuf(format=tarfile.USTAR_FORMAT))
        digest = hashlib.sha256()
        written = 0
        for chunk in chunks:
            digest.update(chunk)
            self.out.write(chunk)
            written += len(chunk)
            if progress:
                progress(len(chunk))
        if written != size:
            raise OSError(f"{name} changed while it was packed ({written} bytes, not {size})")
        self.out.write(bytes(-size % BLOCK))
        self.digests[name] = digest.hexdigest()

    def add_bytes(self, name: str, data: bytes) -> None:
        self.add(name, len(data), [data])

    def manifest(self) -> bytes:
        """The manifest of everything added so far."""
        return "".join(f"SHA256({name})= {hexdigest}\n"
                       for name, hexdigest in self.digests.items()).encode()

    def finish(self) -> None:
        """End the archive (two zero blocks) and flush it."""
        self.out.write(bytes(2 * BLOCK))
        self.out.flush()


def file_chunks(fd: int, size: int) -> Iterable[bytes]:
    """The first ``size`` bytes of open file ``fd``, from its start, in chunks."""
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(CHUNK, size - offset), offset)
        if not chunk:
            raise OSError(f"file ended at byte {offset} of {size}")
        offset += len(chunk)
        yield chunk


# -- reading ---------------------------------------------------------------------------------


@attrs.frozen
class Member:
    """A file of a package: where its bytes are (an OVA and an offset, or a file of its own)."""

    name: str
    path: str
    offset: int
    size: int


@attrs.frozen
class Package:
    """An OVA or a folder with an .ovf: its descriptor's bytes, its files, its manifest."""

    source: str
    descriptor_name: str
    descriptor: bytes
    members: dict[str, Member]  # an OVA's; for a folder, filled as files are asked for
    manifest: dict[str, tuple[str, str]] | None  # name -> (algorithm, hex digest)
    folder: str | None = None  # the descriptor's folder, for an .ovf

    def member(self, href: str) -> Member:
        found = self.members.get(href)
        if found is None and self.folder is not None:
            found = _folder_member(self.folder, href)
        if found is None:
            raise InvalidInput(f"{self.source}: the descriptor names file '{href}', which the package "
                               "does not hold")
        return found


def _folder_member(folder: str, href: str) -> Member | None:
    """File ``href`` beside a descriptor, if it is a plain file inside the folder (a symlink out of
    it is not part of the package)."""
    real_folder = os.path.realpath(folder)
    real = os.path.realpath(os.path.join(folder, href))
    if os.path.commonpath([real, real_folder]) != real_folder:
        raise InvalidInput(f"{folder}: refused '{href}': it leads outside the package's folder")
    if not os.path.isfile(real):
        return None
    return Member(href, real, 0, os.path.getsize(real))


def open_ova(path: str) -> Package:
    """Read an OVA's table of contents, its descriptor and manifest (no disk bytes yet)."""
    try:
        archive = tarfile.open(path, "r:")
    except (tarfile.TarError, OSError) as exc:
        raise InvalidInput(f"{path} is not an OVA (a tar archive): {exc}") from None
    members: dict[str, Member] = {}
    first = None
    with archive:
        for info in archive:
            name = info.name.removeprefix("./")  # what "tar cf x.ova ." writes
            if info.isdir():
                continue  # nothing is extracted: a folder entry changes nothing
            check_href(name, path)
            if not info.isfile():
                raise InvalidInput(f"{path}: refused member '{info.name}': a package holds plain files, "
                                   "not links or devices")
            if name in members:
                raise InvalidInput(f"{path} holds '{name}' twice")
            members[name] = Member(name, path, info.offset_data, info.size)
            first = first or name
    if first is None or not first.lower().endswith(".ovf"):
        raise InvalidInput(f"{path}: the first file of an OVA must be its .ovf descriptor "
                           f"(found {first or 'nothing'})")
    descriptor = read_member(members[first], limit=64 << 20)
    manifest = members.get(_manifest_name(first))
    return Package(path, first, descriptor, members, _manifest(manifest, path))


def open_ovf(path: str) -> Package:
    """A descriptor on disk and the files beside it (only those inside its folder)."""
    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    descriptor = read_member(Member(name, os.path.abspath(path), 0, os.path.getsize(path)), limit=64 << 20)
    manifest = _folder_member(folder, _manifest_name(name))
    return Package(path, name, descriptor, {}, _manifest(manifest, path), folder)


def open_package(path: str) -> Package:
    """An ``.ova`` file or an ``.ovf`` descriptor (by content: a tar archive or XML)."""
    if not os.path.isfile(path):
        raise InvalidInput(f"no such file: {path}")
    return open_ova(path) if tarfile.is_tarfile(path) else open_ovf(path)


def read_member(member: Member, limit: int | None = None) -> bytes:
    if limit is not None and member.size > limit:
        raise InvalidInput(f"{member.path}: '{member.name}' is too large for what it should be "
                           f"({member.size} bytes)")
    with open(member.path, "rb") as handle:
        handle.seek(member.offset)
        return handle.read(member.size)


def _manifest_name(descriptor: str) -> str:
    return (descriptor[:-4] if descriptor.lower().endswith(".ovf") else descriptor) + ".mf"


def _manifest(member: Member | None, where: str) -> dict[str, tuple[str, str]] | None:
    if member is None:
        return None
    entries = {}
    text = read_member(member, limit=1 << 20).decode(errors="replace")
    for number, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        match = _MANIFEST_LINE.match(line)
        if match is None:
            raise InvalidInput(f"{where}: line {number + 1} of manifest {member.name} is not "
                               "'SHA256(file)= digest'")
        entries[match["name"]] = (match["algo"], match["hex"].lower())
    return entries


def verify(package: Package, name: str, progress: Callable[[int], None] | None = None) -> None:
    """Check member ``name`` against the manifest's digest, reading it once; refuse a mismatch."""
    if package.manifest is None:
        return
    entry = package.manifest.get(name)
    if entry is None:
        raise InvalidInput(f"{package.source}: '{name}' is not in the package's manifest; refused "
                           "(a file added after the package was made?)")
    algorithm, expected = entry
    member = package.member(name)
    digest = DIGESTS[algorithm]()
    fd = os.open(member.path, os.O_RDONLY)
    try:
        offset = 0
        while offset < member.size:
            chunk = os.pread(fd, min(CHUNK, member.size - offset), member.offset + offset)
            if not chunk:
                raise InvalidInput(f"{package.source}: '{name}' is cut short")
            digest.update(chunk)
            offset += len(chunk)
            if progress:
                progress(len(chunk))
    finally:
        os.close(fd)
    if digest.hexdigest() != expected:
        raise InvalidInput(f"{package.source}: '{name}' does not match its {algorithm} digest in the "
                           "manifest (damaged or altered); refused")


def verify_descriptor(package: Package) -> None:
    """The descriptor's own digest (read already)."""
    verify(package, package.descriptor_name)
