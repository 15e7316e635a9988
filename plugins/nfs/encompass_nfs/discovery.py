"""What an export holds: every ``<image>/vol<N>[.raw|.qcow2]`` file or ``vol<N>`` folder, with
the virtual size and backing file a qcow2 header gives. Hidden entries (partial copies), other
files and files at the top are not volumes."""

from __future__ import annotations

import re
from collections.abc import Iterator

import attrs

from .files import ExportFiles
from .qcow2 import backing_path, read_header

VOLUME_NAME = re.compile(r"^vol(\d+)(\.raw|\.qcow2)?$")


@attrs.frozen
class Found:
    """One volume found on the export."""

    image: str
    index: int
    format: str
    rel: str
    size: int
    readonly: bool
    backing: str | None = None  # a path in the export when ``backing_inside``, else as written
    backing_inside: bool = False


def volumes_on(files: ExportFiles) -> Iterator[Found]:
    """The volumes on the export, image by image, in name order."""
    for image in files.listdir(""):
        entry = files.lstat(image)
        if image.startswith(".") or entry is None or entry.kind != "dir":
            continue
        for name in files.listdir(image):
            match = VOLUME_NAME.match(name)
            if match is None:
                continue
            rel = f"{image}/{name}"
            item = files.lstat(rel)
            if item is None or (item.kind == "dir") != (match.group(2) is None):
                continue
            fmt = (match.group(2) or ".dir")[1:]
            size, backing, inside = (0 if fmt == "dir" else item.size), None, False
            if fmt == "qcow2":
                header = read_header(files, rel)
                if header is None:
                    continue  # named like a volume, and not a qcow2 file
                size, backing = header.size, header.backing
                below = backing_path(rel, backing) if backing else None
                if below is not None:
                    backing, inside = below, True
            yield Found(image, int(match.group(1)), fmt, rel, size, not item.mode & 0o222, backing, inside)
