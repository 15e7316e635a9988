"""The Encompass section of a descriptor: an image's own documents, so nothing is lost in a trip.

The image goes through the store's one converter (:func:`~encompass_core.convert.to_document`
and back with :func:`~encompass_core.convert.from_document`), so every field of the model rides
along, fields added later included; only what belongs to the repository rather than to the
image is left out (its state, lock, machine, the pools' addresses of its volumes, and any field
holding volumes kept aside, such as old ones kept for a rollback: the package holds only the
image's current disks). Secret inputs
are never stored anyway; they are filtered here again, by the items that say they are secret.
A clone's customization items are its master's: the master's document goes too, without its
volumes. ``--with-lineage`` adds the parents in between and the image's history.

In the descriptor each document is JSON inside an element of our namespace, in a section marked
``ovf:required="false"`` that other tools skip.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from ..convert import from_document, to_document
from ..errors import InvalidInput
from ..model import Event, Image, Volume

#: Bumped when the section's shape changes in a way older readers must refuse.
SCHEMA = 1
#: Image fields that belong to the repository holding the image, not to the image.
LOCAL_FIELDS = frozenset({"state", "owner", "jobs", "machine", "redeploy_on", "redeploy_by", "making",
                          "error"})
#: Volume fields that the importing pool decides for the volumes it makes.
POOL_VOLUME_FIELDS = frozenset({"pool", "format", "location", "size", "backing", "depth",
                                "readonly", "data"})
#: Volume fields that name places of the exporting repository: left out.
LOCAL_VOLUME_FIELDS = frozenset({"pool", "location", "backing", "depth", "data"})


@attrs.frozen
class Carried:
    """What the Encompass section of a package holds."""

    image: dict[str, Any]  # the exported image's document
    master: dict[str, Any] | None = None  # a clone's master (its items), without volumes
    ancestors: tuple[dict[str, Any], ...] = ()  # --with-lineage: parents between, nearest first
    history: tuple[dict[str, Any], ...] = ()  # --with-lineage: the image's events

    @property
    def kind(self) -> str:
        return str(self.image.get("kind", "master"))


def secret_keys(*images: Image | None) -> set[str]:
    """Keys of the secret items of these images (a master's items, a clone's applied ones)."""
    keys = set()
    for image in images:
        if image is None:
            continue
        keys |= {item.key for item in image.items if item.secret}
        keys |= {key for key, record in image.applied.items()
                 if isinstance(record, dict) and isinstance(record.get("item"), dict)
                 and record["item"].get("secret")}
    return keys


def _mentions(tp: Any, cls: type) -> bool:
    """Whether type ``tp`` is ``cls`` or holds it (``tuple[cls, ...]``, ``cls | None``)."""
    return tp is cls or any(_mentions(arg, cls) for arg in typing.get_args(tp))


def local_fields() -> frozenset[str]:
    """:data:`LOCAL_FIELDS`, and every other field of :class:`Image` that holds volumes (kept
    aside by some operation): volumes of this repository that a package does not hold."""
    attrs.resolve_types(Image)
    return LOCAL_FIELDS | {field.name for field in attrs.fields(Image)
                           if field.name != "volumes" and _mentions(field.type, Volume)}


def portable(image: Image, secrets: set[str]) -> dict[str, Any]:
    """``image``'s document without what belongs to this repository, and without secrets."""
    local = local_fields()
    doc = {k: v for k, v in to_document(image).items() if k not in local}
    doc["volumes"] = [{k: v for k, v in volume.items() if k not in LOCAL_VOLUME_FIELDS}
                      for volume in doc.get("volumes", [])]
    doc["inputs"] = {k: v for k, v in doc.get("inputs", {}).items() if k not in secrets}
    return doc


def carry(image: Image, master: Image | None, ancestors: Sequence[Image] = (),
          history: Iterable[Event] = ()) -> Carried:
    """The section for ``image`` (with its master, for a clone; parents and history if given)."""
    secrets = secret_keys(image, master, *ancestors)
    master_doc = None
    if master is not None and not image.is_master:
        master_doc = portable(master, secrets)
        master_doc["volumes"] = []
    return Carried(
        image=portable(image, secrets),
        master=master_doc,
        ancestors=tuple(dict(portable(a, secrets), volumes=[]) for a in ancestors),
        history=tuple(to_document(event) for event in history),
    )


def encode(value: Any) -> str:
    """JSON text for an element of the section (sorted keys: the same image, the same bytes)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def decode(text: str | None, where: str) -> Any:
    """A JSON value read back from the section; one clear line when it is damaged."""
    try:
        return json.loads(text or "")
    except ValueError as exc:
        raise InvalidInput(f"{where}: the Encompass section is damaged ({exc})") from None


def restore_image(doc: dict[str, Any], where: str, **changes: Any) -> Image:
    """An :class:`Image` from a carried document with ``changes`` (name, state, volumes as
    documents...), through the store's converter: a field that does not fit is named."""
    merged = {**doc, **changes}
    merged.setdefault("volumes", [])
    return from_document(Image, merged, where)


def merge_volume(carried: dict[str, Any] | None, made: dict[str, Any]) -> dict[str, Any]:
    """A volume's document: what the importing pool made (``made``) for the fields a pool
    decides, the carried document for every other field (data volume marks and the like)."""
    extra = {k: v for k, v in (carried or {}).items() if k not in POOL_VOLUME_FIELDS}
    return {**made, **extra}


def restore_events(docs: Iterable[dict[str, Any]], name: str, where: str) -> list[Event]:
    """The carried history, as events of image ``name``."""
    return [from_document(Event, {**doc, "image": name}, f"{where}: history") for doc in docs]
