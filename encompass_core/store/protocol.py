"""The store protocol: what operations may ask of the metadata repository, whatever the backend.

Two backends implement it: TinyDB files (the embedded default, nothing to set up) and
PostgreSQL (large repositories, several utility servers sharing one). ``encompass_core.store``
picks one from ``[store]`` in ``encompass.toml`` and is the only module that knows them.

Every question an operation asks is a targeted one (an image by name, the children of one,
the images in a state...): no operation reads every image to find a few, so the cost of a
single-image operation does not grow with the repository.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from ..model import Event, Image, ImageSummary, Machine, Owner


class Transaction(Protocol):
    """A consistent view of the repository; changes are written (atomically) when it ends
    without an exception, and dropped otherwise."""

    # -- images -----------------------------------------------------------------------------
    def find_image(self, name: str, *, shared: bool = False) -> Image | None:
        """The image called ``name``, or None. In a transaction the image is locked until it
        ends: for a change (no one else may lock it meanwhile), or ``shared`` when it is only
        read (it may not change meanwhile, but other transactions may read it likewise: several
        processes cloning one master at once do not queue on it)."""

    def find_images(self, names: Sequence[str], *, shared: bool = False) -> list[Image]:
        """Those of the images ``names`` name that exist, in the order given, locked as
        :meth:`find_image` says (one question for the clones a bulk clone records)."""

    def image(self, name: str, *, shared: bool = False) -> Image:
        """The image called ``name`` (locked as :meth:`find_image` says);
        :class:`~encompass_core.errors.NotFound` with a hint."""

    def images(self, *, kind: str | None = None, state: str | None = None,
               master: str | None = None, parent: str | None = None,
               machine: str | None = None) -> list[Image]:
        """Images matching every filter given (all of them when none is), in creation order.
        Listing everything is for listings (``image list``, ``image tree``), not operations."""

    def summaries(self, *, kind: str | None = None, state: str | None = None,
                  master: str | None = None, parent: str | None = None,
                  machine: str | None = None) -> list[ImageSummary]:
        """What a listing shows of the images :meth:`images` would return, in the same order,
        without building their whole records (a backend reads only the fields summarized).
        A document that does not fit the model there is a
        :class:`~encompass_core.errors.StoreError` naming it, as for :meth:`images`."""

    def taken(self, names: Sequence[str]) -> list[str]:
        """Those of ``names`` that name a stored image, in the order given (one question for
        all the names of a bulk clone)."""

    def image_names(self) -> list[str]:
        """Every image's name, in creation order (cheap: no document is converted)."""

    def children(self, name: str) -> list[Image]:
        """Clones made from image ``name`` (their ``parent``)."""

    def dependents(self, name: str) -> list[Image]:
        """Images that keep ``name`` from being deleted: clones of a master (``master``), and
        images with a volume reading through one of ``name``'s (``Volume.backing``)."""

    def add_image(self, image: Image) -> None:
        """Store a new image; a taken name is a :class:`~encompass_core.errors.Conflict`."""

    def add_images(self, images: Sequence[Image]) -> None:
        """Store many new images at once (bulk clone): all or none."""

    def put_image(self, image: Image) -> None:
        """Replace the stored image of the same name, stamping ``updated``."""

    def put_images(self, images: Sequence[Image]) -> None:
        """Replace many stored images at once, as :meth:`put_image` does each: all or none
        (one missing is a :class:`~encompass_core.errors.NotFound` and none is replaced)."""

    def remove_image(self, name: str) -> None:
        """Remove an image (its history stays)."""

    # -- history ----------------------------------------------------------------------------
    def add_event(self, event: Event) -> None:
        """Append one event to an image's history (appended, never rewritten)."""

    def events(self, image: str | None = None, *, offset: int = 0,
               limit: int | None = None) -> list[Event]:
        """An image's history (or everyone's), oldest first: ``limit`` events from the
        ``offset``-th (a page), all of them when no limit is given."""

    def count_events(self, image: str | None = None) -> int:
        """How many events an image's history (or everyone's) holds."""

    # -- machines ---------------------------------------------------------------------------
    def machines(self, *, platform: str | None = None, image: str | None = None) -> list[Machine]:
        """Machines, all or those of a platform / claiming an image."""

    def find_machine(self, name: str) -> Machine | None:
        """The machine called ``name``, or None."""

    def put_machine(self, machine: Machine) -> None:
        """Insert or replace the machine of the same name."""

    def remove_machine(self, name: str) -> None:
        """Remove a machine's record."""


class Store(Protocol):
    """A repository: transactions that write, snapshots that only read."""

    #: ``tinydb`` or ``postgresql``.
    backend: str

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A transaction under the repository's lock (a file lock for TinyDB; row locks and a
        serializable transaction for PostgreSQL)."""

    def snapshot(self) -> AbstractContextManager[Transaction]:
        """A read-only, consistent view (no lock is taken)."""

    def owner_alive(self, owner: Owner) -> bool | None:
        """Whether the process holding an image still runs: True, False, or None when it runs on
        another host and cannot be told (TinyDB). PostgreSQL answers for every host through the
        owner's lease: alive while the lease is renewed, gone once it has expired."""

    def close(self) -> None:
        """Release connections and locks."""
