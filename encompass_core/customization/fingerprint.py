"""Fingerprints of input values: what metadata keeps instead of a secret.

A fingerprint is ``HMAC-SHA256(key, item key + NUL + value)`` with a random key of this
repository, kept in ``ENCOMPASS_HOME/secret.key`` (mode 0600, made on first use). It tells
whether a value changed without revealing it: without the key, not even a short password can
be guessed from it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from ..errors import ConfigError

KEY_FILE = "secret.key"
PREFIX = "hmac-sha256:"


def _key(home: Path) -> bytes:
    path = Path(home) / KEY_FILE
    if not path.exists():
        # Written aside then linked into place: another process sees no file or a whole one.
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    try:
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"{path} holds the key of secret fingerprints but others may read it; "
                              f"chmod 600 {path}")
        return bytes.fromhex(path.read_text().strip())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError:
        raise ConfigError(f"{path} is not a key of hex digits; move it away (fingerprints of applied "
                          "values will then differ, and customize re-applies them)") from None


class Fingerprinter:
    """Fingerprints values with the repository's key (read once)."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self._secret: bytes | None = None

    def __call__(self, value: str, item_key: str = "") -> str:
        """The fingerprint of ``value`` given to item ``item_key`` (the key is mixed in, so two
        items holding one password do not show equal fingerprints)."""
        if self._secret is None:
            self._secret = _key(self.home)
        message = f"{item_key}\0{value}".encode("utf-8", errors="surrogateescape")
        digest = hmac.new(self._secret, message, hashlib.sha256).hexdigest()
        return PREFIX + digest


def short(fingerprint: str | None) -> str:
    """The first hex digits of a fingerprint, for tables."""
    if not fingerprint:
        return ""
    return fingerprint.removeprefix(PREFIX)[:12]
