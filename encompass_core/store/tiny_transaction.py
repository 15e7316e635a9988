"""A transaction of the embedded backend: the shards, machines and history it reads, converts
and changes, and its commit (one file atomically, several through the redo journal).

See :mod:`.tinydb` for the layout and :class:`.protocol.Transaction` for what each call means.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..convert import from_document, summaries_from_documents, to_document
from ..errors import Conflict, NotFound, StoreError
from ..lifecycle import TRANSITIONAL
from ..model import Event, Image, ImageSummary, Machine, now
from . import files, tiny_cache, upgrade
from .bulk import collector_paused
from .tiny_layout import (
    _META,
    COMPACT_BYTES,
    ORDER,
    REFERRERS,
    TABLES,
    Layout,
    apply_patch,
    base_document,
    corrupt,
    dumps,
    empty_shard,
    loaded_shard,
    new_patch,
    read_json,
    read_json_sized,
    read_log,
    references,
    shard_of,
)

T = TypeVar("T")
Listed = TypeVar("Listed", Image, ImageSummary)


def _matching(found: list[Listed], kind: str | None, state: str | None, master: str | None,
              parent: str | None, machine: str | None) -> list[Listed]:
    """Those of ``found`` matching every filter given (an index only narrows the candidates)."""
    return [i for i in found if (kind is None or i.kind == kind)
            and (state is None or i.state == state) and (master is None or i.master == master)
            and (parent is None or i.parent == parent) and (machine is None or i.machine == machine)]


class Transaction:
    """A consistent view of the repository under its lock; changes are written when it ends."""

    def __init__(self, layout: Layout, meta: dict[str, Any], memory: upgrade.Loaded | None = None,
                 writable: bool = True) -> None:
        self._layout = layout
        self._meta = meta
        self._shard_count = int(meta["shards"])
        self._memory = memory  # a schema-1 repository read in memory (read-only directory)
        self._writable = writable
        self._shards: dict[int, dict[str, Any]] = {}
        # Per shard read: its base file's length (None: none yet) and its log's committed length.
        self._lengths: dict[int, tuple[int | None, int]] = {}
        self._logged: dict[int, set[str]] = {}  # names whose document came from the shard's log
        self._keys: dict[int, tiny_cache.FileKey | None] = {}  # the base files read (tiny_cache)
        self._rewritten: set[int] = set()  # shards whose base this transaction wrote
        self._scanned = False  # every shard was read (a listing): none is kept
        self._patches: dict[int, dict[str, Any]] = {}  # what this transaction changed, per shard
        self._meta_dirty = False
        self._machines: dict[str, Any] | None = None
        self._machines_dirty = False
        self._events: list[dict[str, Any]] = []
        self._converted: dict[str, Image] = {}

    # -- loading --------------------------------------------------------------------------
    def _shard(self, index: int) -> dict[str, Any]:
        shard = self._shards.get(index)
        if shard is None:
            if self._memory is not None:
                shard = self._memory.shards.get(index) or empty_shard()
            else:
                shard = self._read_shard(index)
            self._shards[index] = shard
        return shard

    def _read_shard(self, index: int) -> dict[str, Any]:
        """A shard's base file with its log applied (kept from an earlier transaction of this
        process when its base file is unchanged: then only the log's new lines are read)."""
        path, log = self._layout.shard(index), self._layout.log(index)
        base_key = tiny_cache.file_key(path)
        kept = tiny_cache.take(path)
        read = None
        if kept is not None and base_key is not None and kept.base_key == base_key:
            read = read_log(log, kept.log_length)
        if read is not None:
            shard, base_length, logged = kept.shard, kept.base_length, kept.logged
        else:
            shard, base_length = read_json_sized(path)
            shard = self._checked(path, shard or empty_shard())
            logged = set()
            read = read_log(log)
        patches, log_length = read
        for number, patch in enumerate(patches, 1):
            try:
                apply_patch(shard, patch)
            except (AttributeError, TypeError, ValueError):
                raise corrupt(log, f"line {number} is not a patch of a shard") from None
            logged.update(patch.get("i", ()))
        self._lengths[index] = (base_length, log_length)
        self._keys[index] = base_key
        self._logged[index] = logged
        return shard

    @staticmethod
    def _checked(path: Path, shard: dict[str, Any]) -> dict[str, Any]:
        for table in ("images", "order", "referrers", "busy"):
            if not isinstance(shard.get(table), dict):
                raise corrupt(path, f"its table '{table}' is not an object")
        if not all(isinstance(names, list) for names in shard["referrers"].values()):
            raise corrupt(path, "its table 'referrers' is not an object of lists")
        return loaded_shard(shard)

    def _release(self, committed: bool) -> None:
        """Keep the shards read for the next transaction of this process: those this one did
        not change, and, once committed, those it changed (as its files now hold them)."""
        shards, self._shards, self._converted = self._shards, {}, {}
        # Dropped here (the caller may keep this object): read in bulk while the cycle
        # collector was paused, they would otherwise wait for it in its youngest generation,
        # and its first collection would walk every one (0.1 s at 10,000 images, measured).
        if self._memory is not None or self._scanned:
            # A listing read every shard: keeping them all would only make the process's exit
            # free them through the cycle collector (0.4 s at 10,000 images, measured).
            return
        for index, shard in shards.items():
            path = self._layout.shard(index)
            logged = self._logged.get(index, set())
            if index not in self._patches:
                base_length, log_length = self._lengths[index]
                tiny_cache.keep(path, tiny_cache.Kept(self._keys[index], base_length, log_length,
                                                      shard, logged))
            elif committed:
                key = tiny_cache.file_key(path)
                log_key = tiny_cache.file_key(self._layout.log(index))
                if index in self._rewritten:
                    logged = set()
                else:
                    logged.update(self._patches[index]["i"])
                tiny_cache.keep(path, tiny_cache.Kept(key, key and key[1], log_key[1] if log_key else 0,
                                                      shard, logged))

    def _patch(self, index: int) -> dict[str, Any]:
        patch = self._patches.get(index)
        if patch is None:
            patch = self._patches[index] = new_patch()
        return patch

    def _set(self, index: int, table: str, name: str, value: Any) -> None:
        """Set (None: remove) row ``name`` of a shard's table, in memory and in the patch."""
        rows = self._shard(index)[table]
        if value is None:
            rows.pop(name, None)
        else:
            rows[name] = value
        self._patch(index)[TABLES[table]][name] = value

    def _link(self, target: str, name: str, present: bool) -> None:
        """Record (or drop) that image ``name`` refers to image ``target``."""
        index = shard_of(target, self._shard_count)
        apply_patch(self._shard(index), {REFERRERS: [(target, name, int(present))]})
        self._patch(index)[REFERRERS].append((target, name, int(present)))

    def _doc(self, name: str) -> dict[str, Any] | None:
        return self._shard(shard_of(name, self._shard_count))["images"].get(name)

    def _load(self, cls: type[T], doc: Any, where: str, image: str | None = None) -> T:
        """A stored document as ``cls``; one that does not fit the model is refused, naming it
        and the file that holds it (the shard of ``image``, else the main file)."""
        try:
            return from_document(cls, doc, where)
        except StoreError as exc:
            # The shard is worked out only here: reading thousands of images pays nothing for it.
            holder = self._layout.main
            if self._memory is None and image is not None:
                index = shard_of(image, self._shard_count)
                logged = image in self._logged.get(index, ())
                holder = self._layout.log(index) if logged else self._layout.shard(index)
            raise StoreError(
                f"metadata file {holder}: {exc}; it was left untouched: fix that document, "
                f"or restore the file from its .bak"
            ) from None

    def _image(self, name: str, doc: dict[str, Any]) -> Image:
        image = self._converted.get(name)
        if image is None:
            image = self._converted[name] = self._load(Image, doc, f"image {name!r}", name)
        return image

    def _all_docs(self) -> list[tuple[int, str, dict[str, Any]]]:
        self._scanned = True
        found = []
        for index in range(self._shard_count):
            shard = self._shard(index)
            order = shard["order"]
            found.extend((order.get(name, 0), name, doc) for name, doc in shard["images"].items())
        found.sort(key=lambda entry: entry[0])
        return found

    # -- images ---------------------------------------------------------------------------
    def find_image(self, name: str, *, shared: bool = False) -> Image | None:
        """The image called ``name``, or None (the whole repository is locked: ``shared``
        changes nothing here)."""
        doc = self._doc(name)
        return self._image(name, doc) if doc is not None else None

    def find_images(self, names: Sequence[str], *, shared: bool = False) -> list[Image]:
        """Those of the images ``names`` name that exist, in the order given."""
        return [image for image in map(self.find_image, names) if image is not None]

    def image(self, name: str, *, shared: bool = False) -> Image:
        """The image called ``name``; :class:`NotFound` with a hint otherwise."""
        found = self.find_image(name)
        if found is None:
            raise NotFound(f"no image named '{name}' (see: encompass image list)")
        return found

    def images(self, *, kind: str | None = None, state: str | None = None,
               master: str | None = None, parent: str | None = None,
               machine: str | None = None) -> list[Image]:
        """Images matching every filter given, in creation order (see the protocol)."""
        with collector_paused():
            found = [self._image(name, doc) for name, doc in self._selected(state, master, parent, machine)]
        return _matching(found, kind, state, master, parent, machine)

    def summaries(self, *, kind: str | None = None, state: str | None = None,
                  master: str | None = None, parent: str | None = None,
                  machine: str | None = None) -> list[ImageSummary]:
        """What a listing shows of those images, read from their documents (see the protocol)."""
        with collector_paused():
            selected = self._selected(state, master, parent, machine)
            found = summaries_from_documents(doc for _name, doc in selected)
            # One the quick reading does not vouch for is converted whole: accepted, or named.
            found = [summary or ImageSummary.of(self._image(name, doc))
                     for summary, (name, doc) in zip(found, selected, strict=True)]
        return _matching(found, kind, state, master, parent, machine)

    def _selected(self, state: str | None, master: str | None, parent: str | None,
                  machine: str | None) -> list[tuple[str, dict[str, Any]]]:
        """(name, document) of the images a query may match, in creation order: those an index
        names (on a machine, held by an operation, referring to an image), else every one."""
        if machine is not None:
            names = [n for n, m in self._meta["deployed"].items() if m == machine]
        elif state is not None and state in TRANSITIONAL:  # every shard's busy list (repair)
            names = [n for index in range(self._shard_count)
                     for n, s in self._shard(index)["busy"].items() if s == state]
        elif parent is not None or master is not None:
            names = self._referrers(parent if parent is not None else master)
        else:
            return [(name, doc) for _seq, name, doc in self._all_docs()]
        return self._docs_named(names)

    def _docs_named(self, names: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        found = []
        for name in names:
            index = shard_of(name, self._shard_count)
            doc = self._shard(index)["images"].get(name)
            if doc is not None:
                found.append((self._shard(index)["order"].get(name, 0), name, doc))
        found.sort(key=lambda entry: entry[0])
        return [(name, doc) for _seq, name, doc in found]

    def _images_named(self, names: Sequence[str]) -> list[Image]:
        return [self._image(name, doc) for name, doc in self._docs_named(names)]

    def taken(self, names: Sequence[str]) -> list[str]:
        """Those of ``names`` that name a stored image, in the order given."""
        return [name for name in names if self._doc(name) is not None]

    def image_names(self) -> list[str]:
        """Every image's name, in creation order (no document is converted)."""
        return [name for _seq, name, _doc in self._all_docs()]

    def _referrers(self, name: str) -> list[str]:
        return list(self._shard(shard_of(name, self._shard_count))["referrers"].get(name, ()))

    def children(self, name: str) -> list[Image]:
        """Clones made from image ``name``."""
        return [i for i in self._images_named(self._referrers(name)) if i.parent == name]

    def dependents(self, name: str) -> list[Image]:
        """Clones of master ``name`` and images reading through one of its volumes."""
        return [i for i in self._images_named(self._referrers(name))
                if i.master == name or any(v.backing and v.backing[0] == name for v in i.reading_volumes)]

    def add_image(self, image: Image) -> None:
        """Store a new image; a taken name is a :class:`Conflict`."""
        self.add_images([image])

    def add_images(self, images: Sequence[Image]) -> None:
        """Store many new images at once: all or none (a taken name adds none)."""
        seen: set[str] = set()
        for image in images:
            if self._doc(image.name) is not None or image.name in seen:
                raise Conflict(f"an image named '{image.name}' exists already; pick another name")
            seen.add(image.name)
        stamp = time.time_ns()  # creation order: transactions are serialized by the lock
        for position, image in enumerate(images):
            doc = to_document(image)
            index = shard_of(image.name, self._shard_count)
            self._set(index, "images", image.name, doc)
            self._set(index, "order", image.name, stamp + position)
            self._reindex(image.name, None, doc)
            self._converted[image.name] = image

    def put_image(self, image: Image) -> None:
        """Replace the stored image of the same name (stamping ``updated``)."""
        old = self._doc(image.name)
        if old is None:
            raise NotFound(f"no image named '{image.name}' to update")
        doc = to_document(image)
        doc["updated"] = now()
        self._set(shard_of(image.name, self._shard_count), "images", image.name, doc)
        self._reindex(image.name, old, doc)
        self._converted.pop(image.name, None)

    def put_images(self, images: Sequence[Image]) -> None:
        """Replace many stored images: all or none."""
        for image in images:
            if self._doc(image.name) is None:
                raise NotFound(f"no image named '{image.name}' to update")
        for image in images:
            self.put_image(image)

    def remove_image(self, name: str) -> None:
        """Remove an image (its history stays)."""
        index = shard_of(name, self._shard_count)
        old = self._shard(index)["images"].get(name)
        if old is None:
            return
        self._set(index, "images", name, None)
        self._set(index, "order", name, None)
        self._reindex(name, old, None)
        self._converted.pop(name, None)

    def _reindex(self, name: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        """Keep the referrer lists and the busy/deployed indexes in step with a change."""
        before = references(old) if old else set()
        after = references(new) if new else set()
        for target in sorted(before - after):
            if name in self._shard(shard_of(target, self._shard_count))["referrers"].get(target, ()):
                self._link(target, name, False)
        for target in sorted(after - before):
            self._link(target, name, True)
        # Images held by an operation, in their own shard (a state change writes one file);
        # images on a machine, in metadata.json (they change with deploy and undeploy only).
        index = shard_of(name, self._shard_count)
        busy = self._shard(index)["busy"]
        state = new and new.get("state") in TRANSITIONAL and new["state"]
        if state and busy.get(name) != state:
            self._set(index, "busy", name, state)
        elif not state and name in busy:
            self._set(index, "busy", name, None)
        deployed, machine = self._meta["deployed"], new and new.get("machine")
        if machine and deployed.get(name) != machine:
            deployed[name] = machine
            self._meta_dirty = True
        elif not machine and name in deployed:
            del deployed[name]
            self._meta_dirty = True

    # -- history --------------------------------------------------------------------------
    def add_event(self, event: Event) -> None:
        """Append one event to its image's history (written when the transaction ends)."""
        self._events.append(to_document(event))

    def _event_docs(self, image: str | None) -> list[dict[str, Any]]:
        if self._memory is not None:
            docs = list(self._memory.events)
        else:
            docs = self._read_events(self._layout.events, image)
        docs.extend(self._events)
        if image:
            docs = [d for d in docs if d.get("image") == image]
        docs.sort(key=lambda d: d.get(ORDER, math.inf))  # pending ones (not stamped yet) last
        return docs

    @staticmethod
    def _read_events(path: Path, image: str | None = None) -> list[dict[str, Any]]:
        # One image's lines are picked out before parsing: names need no JSON escaping.
        mark = f'"image":"{image}"'.encode() if image else None
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot read metadata file {path}: {exc.strerror}") from exc
        docs = []
        lines = raw.split(b"\n")
        for number, line in enumerate(lines, 1):
            if not line or (mark is not None and mark not in line and number != len(lines)):
                continue
            try:
                doc = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                if number == len(lines):  # cut short by a killed writer: never committed
                    continue
                raise corrupt(path, f"line {number} is not a JSON event") from None
            if not isinstance(doc, dict):
                raise corrupt(path, f"line {number} is not a JSON object")
            docs.append(doc)
        return docs

    def events(self, image: str | None = None, *, offset: int = 0,
               limit: int | None = None) -> list[Event]:
        """An image's history (or everyone's), oldest first; a page when ``limit`` is given."""
        docs = self._event_docs(image)
        page = docs[offset:offset + limit] if limit is not None else docs[offset:]
        return [self._load(Event, d, f"event of image {d.get('image')!r}") for d in page]

    def count_events(self, image: str | None = None) -> int:
        """How many events an image's history (or everyone's) holds."""
        return len(self._event_docs(image))

    # -- machines -------------------------------------------------------------------------
    def _machine_docs(self) -> dict[str, Any]:
        if self._machines is None:
            if self._memory is not None:
                self._machines = dict(self._memory.machines)
            else:
                data = read_json(self._layout.machines) or {"machines": {}}
                if not isinstance(data.get("machines"), dict):
                    raise corrupt(self._layout.machines, "its table 'machines' is not an object")
                self._machines = data["machines"]
        return self._machines

    def machines(self, *, platform: str | None = None, image: str | None = None) -> list[Machine]:
        """Machines, all or those of a platform / claiming an image."""
        return [m for m in (self._load(Machine, d, f"machine {n!r}") for n, d in self._machine_docs().items())
                if (platform is None or m.platform == platform) and (image is None or m.image == image)]

    def find_machine(self, name: str) -> Machine | None:
        """The machine called ``name``, or None."""
        doc = self._machine_docs().get(name)
        return self._load(Machine, doc, f"machine {name!r}") if doc is not None else None

    def put_machine(self, machine: Machine) -> None:
        """Insert or replace the machine of the same name."""
        self._machine_docs()[machine.name] = to_document(machine)
        self._machines_dirty = True

    def remove_machine(self, name: str) -> None:
        """Remove a machine's record."""
        if self._machine_docs().pop(name, None) is not None:
            self._machines_dirty = True

    # -- writing --------------------------------------------------------------------------
    def _commit(self, create: bool) -> None:
        """Write what changed (the store holds the exclusive lock): a patch line appended to the
        log of each shard changed (a new shard's base written whole instead), the main file and
        the machines replaced when they changed; all or nothing. Then the history, and the logs
        grown larger than their base folded into it."""
        layout = self._layout
        replaced: dict[Path, bytes] = {}
        appends: dict[Path, tuple[int, bytes]] = {}
        for index in sorted(self._patches):
            base_length, log_length = self._lengths.get(index, (None, 0))
            if base_length is None and not log_length:
                replaced[layout.shard(index)] = base_document(self._shards[index])
                self._rewritten.add(index)
            else:
                appends[layout.log(index)] = (log_length, dumps(self._patches[index]) + b"\n")
        if self._machines_dirty:
            replaced[layout.machines] = dumps({"machines": self._machines})
        if self._meta_dirty or create:
            replaced[layout.main] = dumps({_META: {"1": self._meta}})
        if replaced or appends:
            layout.dir.mkdir(exist_ok=True)
            then = (lambda commit: files.replace_many(layout.journal, replaced, on_commit=commit)) \
                if replaced else None
            files.append_all(layout.undo, appends, then)
        stamp = time.time_ns()  # transactions are serialized by the lock: a global order
        lines = [json.dumps({**doc, ORDER: stamp + position}, separators=(",", ":")).encode() + b"\n"
                 for position, doc in enumerate(self._events)]
        if lines:
            layout.dir.mkdir(exist_ok=True)
            files.append_lines(layout.events, lines)
        for path, (log_length, line) in appends.items():
            index = int(path.stem.rsplit("-", 1)[1])
            base_length = self._lengths[index][0] or 0
            if log_length + len(line) > max(base_length, COMPACT_BYTES):
                try:
                    self._fold(index)
                except OSError:  # committed already: the log stays, a later commit folds it
                    pass

    def _fold(self, index: int) -> None:
        """Fold a shard's log into its base: the base rewritten (atomically, the previous one
        kept as .bak), then the log emptied. A writer killed in between leaves a log whose
        patches the new base holds already: applying them again changes nothing."""
        files.replace_one(self._layout.shard(index), base_document(self._shards[index]))
        files.empty(self._layout.log(index))
        self._rewritten.add(index)
