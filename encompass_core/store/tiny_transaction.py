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

from ..convert import from_document, to_document
from ..errors import Conflict, NotFound, StoreError
from ..lifecycle import TRANSITIONAL
from ..model import Event, Image, Machine, now
from . import files, upgrade
from .bulk import collector_paused
from .tiny_layout import _META, ORDER, Layout, corrupt, dumps, read_json, references, shard_of

T = TypeVar("T")


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
        self._dirty: set[int] = set()
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
                shard = self._memory.shards.get(index) or upgrade.empty_shard()
            else:
                path = self._layout.shard(index)
                shard = read_json(path) or upgrade.empty_shard()
                for table in ("images", "order", "referrers", "busy"):
                    if not isinstance(shard.get(table), dict):
                        raise corrupt(path, f"its table '{table}' is not an object")
            self._shards[index] = shard
        return shard

    def _doc(self, name: str) -> dict[str, Any] | None:
        return self._shard(shard_of(name, self._shard_count))["images"].get(name)

    def _load(self, cls: type[T], doc: Any, where: str, image: str | None = None) -> T:
        """A stored document as ``cls``; one that does not fit the model is refused, naming it
        and the file that holds it (the shard of ``image``, else the main file)."""
        try:
            return from_document(cls, doc, where)
        except StoreError as exc:
            # The shard is worked out only here: reading thousands of images pays nothing for it.
            in_shard = self._memory is None and image is not None
            holder = self._layout.shard(shard_of(image, self._shard_count)) if in_shard else self._layout.main
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
        found = []
        for index in range(self._shard_count):
            shard = self._shard(index)
            order = shard["order"]
            found.extend((order.get(name, 0), name, doc) for name, doc in shard["images"].items())
        found.sort(key=lambda entry: entry[0])
        return found

    # -- images ---------------------------------------------------------------------------
    def find_image(self, name: str) -> Image | None:
        """The image called ``name``, or None."""
        doc = self._doc(name)
        return self._image(name, doc) if doc is not None else None

    def image(self, name: str) -> Image:
        """The image called ``name``; :class:`NotFound` with a hint otherwise."""
        found = self.find_image(name)
        if found is None:
            raise NotFound(f"no image named '{name}' (see: encompass image list)")
        return found

    def images(self, *, kind: str | None = None, state: str | None = None,
               master: str | None = None, parent: str | None = None,
               machine: str | None = None) -> list[Image]:
        """Images matching every filter given, in creation order (see the protocol)."""
        if machine is not None:
            names = [n for n, m in self._meta["deployed"].items() if m == machine]
        elif state is not None and state in TRANSITIONAL:  # every shard's busy list (repair)
            names = [n for index in range(self._shard_count)
                     for n, s in self._shard(index)["busy"].items() if s == state]
        elif parent is not None or master is not None:
            names = self._referrers(parent if parent is not None else master)
        else:
            names = None
        with collector_paused():
            if names is None:
                found = [self._image(name, doc) for _seq, name, doc in self._all_docs()]
            else:
                found = self._images_named(names)
        return [i for i in found if (kind is None or i.kind == kind)
                and (state is None or i.state == state) and (master is None or i.master == master)
                and (parent is None or i.parent == parent) and (machine is None or i.machine == machine)]

    def _images_named(self, names: Sequence[str]) -> list[Image]:
        found = []
        for name in names:
            doc = self._doc(name)
            if doc is not None:
                seq = self._shard(shard_of(name, self._shard_count))["order"].get(name, 0)
                found.append((seq, self._image(name, doc)))
        found.sort(key=lambda entry: entry[0])
        return [image for _seq, image in found]

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
            shard = self._shard(index)
            shard["images"][image.name] = doc
            shard["order"][image.name] = stamp + position
            self._dirty.add(index)
            self._reindex(image.name, None, doc)
            self._converted[image.name] = image

    def put_image(self, image: Image) -> None:
        """Replace the stored image of the same name (stamping ``updated``)."""
        old = self._doc(image.name)
        if old is None:
            raise NotFound(f"no image named '{image.name}' to update")
        doc = to_document(image)
        doc["updated"] = now()
        index = shard_of(image.name, self._shard_count)
        self._shard(index)["images"][image.name] = doc
        self._dirty.add(index)
        self._reindex(image.name, old, doc)
        self._converted.pop(image.name, None)

    def remove_image(self, name: str) -> None:
        """Remove an image (its history stays)."""
        index = shard_of(name, self._shard_count)
        shard = self._shard(index)
        old = shard["images"].pop(name, None)
        if old is None:
            return
        shard["order"].pop(name, None)
        self._dirty.add(index)
        self._reindex(name, old, None)
        self._converted.pop(name, None)

    def _reindex(self, name: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        """Keep the referrer lists and the busy/deployed indexes in step with a change."""
        before = references(old) if old else set()
        after = references(new) if new else set()
        for target in before - after:
            index = shard_of(target, self._shard_count)
            referrers = self._shard(index)["referrers"]
            if name in referrers.get(target, ()):
                referrers[target].remove(name)
                if not referrers[target]:
                    del referrers[target]
                self._dirty.add(index)
        for target in after - before:
            index = shard_of(target, self._shard_count)
            self._shard(index)["referrers"].setdefault(target, []).append(name)
            self._dirty.add(index)
        # Images held by an operation, in their own shard (a state change writes one file);
        # images on a machine, in metadata.json (they change with deploy and undeploy only).
        index = shard_of(name, self._shard_count)
        busy = self._shard(index)["busy"]
        state = new and new.get("state") in TRANSITIONAL and new["state"]
        if state and busy.get(name) != state:
            busy[name] = state
            self._dirty.add(index)
        elif not state and name in busy:
            del busy[name]
            self._dirty.add(index)
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
        """Write what changed (the store holds the exclusive lock)."""
        layout = self._layout
        changed: dict[Path, bytes] = {}
        for index in sorted(self._dirty):
            changed[layout.shard(index)] = dumps(self._shards[index])
        if self._machines_dirty:
            changed[layout.machines] = dumps({"machines": self._machines})
        if self._meta_dirty or create:
            changed[layout.main] = dumps({_META: {"1": self._meta}})
        if changed:
            layout.dir.mkdir(exist_ok=True)
            files.replace_many(layout.journal, changed)
        stamp = time.time_ns()  # transactions are serialized by the lock: a global order
        lines = [json.dumps({**doc, ORDER: stamp + position}, separators=(",", ":")).encode() + b"\n"
                 for position, doc in enumerate(self._events)]
        if lines:
            layout.dir.mkdir(exist_ok=True)
            files.append_lines(layout.events, lines)
