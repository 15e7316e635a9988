"""The newc ("070701") cpio format, the one the kernel unpacks an initramfs from."""

from __future__ import annotations

import io


class CpioWriter:
    """Writes a newc ("070701") cpio archive in memory: the format the kernel unpacks."""

    def __init__(self) -> None:
        self._out = io.BytesIO()
        self._inode = 1

    def directory(self, name: str, mode: int = 0o755) -> None:
        self._entry(name, 0o040000 | mode, b"", nlink=2)

    def file(self, name: str, data: bytes, mode: int) -> None:
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, 0o120777, target.encode())

    def char_device(self, name: str, mode: int, major: int, minor: int) -> None:
        self._entry(name, 0o020000 | mode, b"", rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0, b"", inode=0, nlink=1)
        return self._out.getvalue()

    def _entry(self, name: str, mode: int, data: bytes, nlink: int = 1,
               rdev: tuple[int, int] = (0, 0), inode: int | None = None) -> None:
        if inode is None:
            inode, self._inode = self._inode, self._inode + 1
        encoded = name.encode() + b"\0"
        fields = (inode, mode, 0, 0, nlink, 0, len(data), 0, 0, *rdev, len(encoded), 0)
        self._out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + encoded)
        self._pad()
        self._out.write(data)
        self._pad()

    def _pad(self) -> None:
        self._out.write(b"\0" * (-self._out.tell() % 4))
