"""Moving a repository between backends (``encompass store migrate --to postgresql|tinydb``).

Everything is read from the configured store in one transaction (TinyDB's file lock, or row
locks on every image in PostgreSQL, so no writer changes it meanwhile; nothing is written to
it), written to the other backend in one transaction, read back and compared document by
document, and only then is ``[store]`` in ``encompass.toml`` switched (atomically). An
interruption at any point leaves the configured store as it was, and in use.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from .. import lifecycle
from ..config import CONFIG_NAME, Config
from ..convert import to_document
from ..errors import Conflict, InvalidInput, StoreError
from ..model import now
from . import files
from .protocol import Store

BACKENDS = ("tinydb", "postgresql")
METADATA_NAME = "metadata.json"
# Records written per step of the progress bar.
CHUNK = 500


@attrs.frozen
class Migrated:
    """What a migration did."""

    source: str
    target: str
    images: int
    events: int
    machines: int
    config_switched: bool
    config_lines: tuple[str, ...]  # the [store] table now in effect (or to set by hand)
    moved_aside: str | None = None  # where the previous TinyDB files of the home went


@attrs.frozen
class _Contents:
    images: list[dict[str, Any]]
    events: list[dict[str, Any]]
    machines: list[dict[str, Any]]

    @property
    def total(self) -> int:
        return len(self.images) + len(self.events) + len(self.machines)


def target_settings(backend: str, dsn_env: str | None, dsn_file: str | None) -> dict[str, Any]:
    """The ``[store]`` table the target backend will be configured with."""
    if backend not in BACKENDS:
        raise InvalidInput(f"--to must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "tinydb":
        if dsn_env or dsn_file:
            raise InvalidInput("--dsn-env and --dsn-file are for --to postgresql")
        return {"backend": "tinydb"}
    if bool(dsn_env) == bool(dsn_file):
        raise InvalidInput("--to postgresql needs --dsn-env VARIABLE or --dsn-file PATH (mode 0600) "
                           "naming the database; the DSN itself is never given on the command line")
    return {"backend": "postgresql", **({"dsn_env": dsn_env} if dsn_env else {"dsn_file": dsn_file})}


def migrate(home: Path, config: Config, source: Store, settings: dict[str, Any], *,
            replace: bool = False, progress: Callable[[int, int], None] | None = None) -> Migrated:
    """Copy the repository from ``source`` to the backend ``settings`` describe, verify it, and
    switch ``[store]``; ``progress(done, total)`` is told as records are written."""
    target_backend = settings["backend"]
    if source.backend == target_backend:
        raise Conflict(f"the repository is on {target_backend} already; nothing to migrate")
    tell = progress or (lambda done, total: None)
    with source.transaction() as tx:  # held to the end: writers wait rather than being lost
        contents = _read(tx)
        _refuse_held(contents)
        tell(0, contents.total)
        if target_backend == "postgresql":
            from .postgresql import open_store as open_postgresql

            target = open_postgresql(home, settings, config)
            try:
                _write(target, contents, replace, tell)
                _verify(target, contents)
            finally:
                target.close()
            moved = None
        else:
            moved = _write_tinydb(home, contents, tell)
    lines = config_lines(settings)
    switched = switch_config(home / CONFIG_NAME, lines)
    return Migrated(source=source.backend, target=target_backend, images=len(contents.images),
                    events=len(contents.events), machines=len(contents.machines),
                    config_switched=switched, config_lines=tuple(lines), moved_aside=moved)


def _read(tx: Any) -> _Contents:
    # Reading every image is right here: a migration moves all of them.
    return _Contents(images=[to_document(i) for i in tx.images()],
                     events=[to_document(e) for e in tx.events()],
                     machines=[to_document(m) for m in tx.machines()])


def _refuse_held(contents: _Contents) -> None:
    held = [d["name"] for d in contents.images if d.get("state") in lifecycle.TRANSITIONAL]
    if held:
        shown = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
        raise Conflict(f"images {shown} are in the middle of an operation; let it finish (or run "
                       "encompass repair) before migrating the repository")


def _models(contents: _Contents) -> tuple[list, list, list]:
    from ..convert import from_document
    from ..model import Event, Image, Machine

    return ([from_document(Image, d, f"image {d.get('name')!r}") for d in contents.images],
            [from_document(Event, d, "event") for d in contents.events],
            [from_document(Machine, d, f"machine {d.get('name')!r}") for d in contents.machines])


def _write(target: Store, contents: _Contents, replace: bool, tell: Callable[[int, int], None]) -> None:
    images, events, machines = _models(contents)
    total, done = contents.total, 0
    with target.transaction() as tx:
        present = len(tx.image_names()) + tx.count_events() + len(tx.machines())
        if present:
            if not replace:
                raise Conflict(f"the target {target.backend} repository is not empty ({present} records); "
                               "point at an empty database, or pass --replace to overwrite it")
            _empty(tx)
        for start in range(0, len(images), CHUNK):
            tx.add_images(images[start:start + CHUNK])
            done += len(images[start:start + CHUNK])
            tell(done, total)
        add_events = getattr(tx, "add_events", None)
        for start in range(0, len(events), CHUNK):
            chunk = events[start:start + CHUNK]
            if add_events is not None:
                add_events(chunk)
            else:
                for event in chunk:
                    tx.add_event(event)
            done += len(chunk)
            tell(done, total)
        for machine in machines:
            tx.put_machine(machine)
        tell(total, total)


def _empty(tx: Any) -> None:
    """Clear a target repository (``--replace``)."""
    truncate = getattr(tx, "truncate", None)
    if truncate is not None:
        truncate()
        return
    for name in tx.image_names():
        tx.remove_image(name)
    for machine in tx.machines():
        tx.remove_machine(machine.name)


def _verify(target: Store, contents: _Contents) -> None:
    """Read everything back from ``target`` and compare it with what was read from the source."""
    with target.snapshot() as tx:
        copied = _read(tx)
    for what in ("images", "events", "machines"):
        wanted, found = _keyed(what, getattr(contents, what)), _keyed(what, getattr(copied, what))
        if len(getattr(contents, what)) != len(getattr(copied, what)):
            raise StoreError(f"migration check failed: the source has {len(getattr(contents, what))} "
                             f"{what}, the copy {len(getattr(copied, what))}; the configuration was not "
                             "switched")
        for key, want in wanted.items():
            if found.get(key) != want:
                raise StoreError(f"migration check failed: {what[:-1]} {key} differs in the copy; the "
                                 "configuration was not switched")


def _keyed(what: str, docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Documents by name; events as each image's history in order (backends may interleave
    different images' histories differently)."""
    if what != "events":
        return {repr(d.get("name")): d for d in docs}
    histories: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        histories.setdefault(f"history of image {doc.get('image')!r}", []).append(doc)
    return histories

def _write_tinydb(home: Path, contents: _Contents, tell: Callable[[int, int], None]) -> str | None:
    """Build the TinyDB repository in a staging directory, verify it, then move it into ``home``
    (the TinyDB files found there are moved aside into a folder, never deleted)."""
    from .tinydb import Store as TinyStore

    staging = Path(tempfile.mkdtemp(prefix=".store-migrate-", dir=home))
    try:
        store = TinyStore(staging / METADATA_NAME)
        try:
            _write(store, contents, replace=False, tell=tell)
            _verify(store, contents)
        finally:
            store.close()
        return _move_in(home, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_in(home: Path, staging: Path) -> str | None:
    made = [p for p in staging.iterdir() if not p.name.endswith(".lock")]
    old = {p.name for p in home.iterdir()
           if p.name.startswith(METADATA_NAME) and not p.name.endswith(".lock")}
    old |= {p.name for p in made if (home / p.name).exists()}
    aside = None
    if old:
        aside = home / f"store-before-migrate-{now().replace(':', '').replace('.', '-')[:17]}"
        aside.mkdir()
        for name in sorted(old):
            os.replace(home / name, aside / name)
    for path in made:
        os.replace(path, home / path.name)
    return str(aside) if aside else None


# -- switching [store] in encompass.toml ----------------------------------------------------------
_TABLE_RE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def config_lines(settings: dict[str, Any]) -> list[str]:
    """``settings`` as the lines of a ``[store]`` table."""
    return ["[store]", *(f'{key} = "{value}"' for key, value in settings.items())]


def switch_config(path: Path, lines: list[str]) -> bool:
    """Replace (or add) the ``[store]`` table of ``path`` with ``lines``, atomically; False when the
    file cannot be edited safely (then the caller prints the lines to set)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except OSError:
        return False
    if re.search(r"^\s*store\s*=", text, re.MULTILINE) or re.search(r"^\s*\[store\.", text, re.MULTILINE):
        return False  # an inline or dotted table: leave it to the user
    out, skipping, replaced = [], False, False
    for line in text.splitlines():
        table = _TABLE_RE.match(line)
        if table:
            skipping = table.group(1) == "store"
            if skipping and not replaced:
                out.extend(lines)
                replaced = True
        if not skipping:
            out.append(line)
    if not replaced:
        if out and out[-1].strip():
            out.append("")
        out.extend(lines)
    with contextlib.suppress(OSError):
        _write_atomically(path, "\n".join(out) + "\n")
        return True
    return False


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``encompass.toml`` the store's way (the previous one kept as ``.bak``), keeping
    its mode."""
    mode = path.stat().st_mode & 0o777
    files.replace_one(path, text.encode("utf-8"))
    os.chmod(path, mode)
