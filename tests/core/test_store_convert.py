"""The one converter: the fast path generated per class reads what the careful one reads, and a
document that does not fit gets the careful converter's message naming the field."""

from __future__ import annotations

import copy

import pytest

from encompass_core import convert
from encompass_core.convert import from_document, to_document
from encompass_core.errors import StoreError
from encompass_core.model import (
    CustomizationItem,
    Event,
    HostPort,
    Image,
    Machine,
    Owner,
    StorageJob,
    Volume,
)


def careful(cls, doc):
    """What the careful converter alone makes of ``doc`` (the reference)."""
    try:
        return convert._careful_attrs_class(cls)(doc)
    except convert._Misfit as misfit:
        return f"{''.join(reversed(misfit.path))}: {misfit.message}"


def through_from_document(cls, doc):
    try:
        return from_document(cls, doc, "")
    except StoreError as exc:
        return str(exc).removeprefix(cls.__name__)


A_CLONE = to_document(Image(
    name="web01", kind="clone", state="deployed", master="base", parent="base", master_version=3,
    volumes=(Volume(index=0, pool="local", format="qcow2", location="/p/web01.qcow2", size=1 << 30,
                    backing=("base", 0), depth=1, data={"wwn": "60:0a"}),),
    items=(CustomizationItem(key="hostname", type="hostname", path="/etc/hostname", partition=1),),
    inputs={"hostname": "web01"}, applied={"hostname": {"before": "x"}}, machine="node1",
    owner=Owner(pid=12, host="h", started=1.5, operation="deploy", since="t", previous_state="ready"),
    jobs=(StorageJob(pool="san", index=0, id="job-1"),), error=None))


def variants():
    """Valid documents in shapes a backend may hand back, and misfits of every kind."""
    def changed(**fields):
        doc = copy.deepcopy(A_CLONE)
        doc.update(fields)
        return doc

    def in_volume(**fields):
        doc = copy.deepcopy(A_CLONE)
        doc["volumes"][0].update(fields)
        return doc

    yield "as stored", A_CLONE
    yield "a master", to_document(Image(name="base", kind="master", state="ready", version=1))
    yield "tuples instead of lists", changed(volumes=tuple(A_CLONE["volumes"]))
    yield "an integer start time", changed(owner={**A_CLONE["owner"], "started": 7})
    yield "a short backing", in_volume(backing=["base"])
    yield "no backing", in_volume(backing=None)
    yield "unknown keys", changed(colour="blue")
    yield "missing volumes", {k: v for k, v in A_CLONE.items() if k != "volumes"}
    yield "missing name", {k: v for k, v in A_CLONE.items() if k != "name"}
    yield "a bogus state", changed(state="bogus")
    yield "a bogus kind", changed(kind="golden")
    yield "a boolean for an integer", changed(master_version=True)
    yield "a string index", in_volume(index="0")
    yield "a number for a string", changed(machine=5)
    yield "a string owner", changed(owner="me")
    yield "a list for a mapping", changed(inputs=["a"])
    yield "a backing index as text", in_volume(backing=["base", "0"])
    yield "a volume that is not an object", changed(volumes=[5])
    yield "volumes as an object", changed(volumes={"0": {}})
    yield "a float for an integer", in_volume(size=1.5)
    yield "a null name", changed(name=None)
    yield "not an object", ["web01"]


@pytest.mark.parametrize(("what", "doc"), list(variants()), ids=[w for w, _ in variants()])
def test_the_fast_path_reads_what_the_careful_converter_reads(what, doc) -> None:
    assert through_from_document(Image, doc) == careful(Image, doc)


def test_misfits_still_name_the_field() -> None:
    doc = copy.deepcopy(A_CLONE)
    doc["volumes"][0]["index"] = "0"
    with pytest.raises(StoreError, match=r"^image 'web01'\.volumes\[0\]\.index: expected int, found '0'$"):
        from_document(Image, doc, "image 'web01'")


@pytest.mark.parametrize("value", [
    Machine(name="node1", platform="kvm", kind="physical", macs=("52:54:00:00:00:01",),
            host_ports=(HostPort(kind="fc", address="10000000c9000001"),), image="web01"),
    Event(image="web01", kind="repair", message="released", pid=3, details={"n": [1, 2]}),
])
def test_other_records_go_and_come_back_whole(value) -> None:
    assert from_document(type(value), to_document(value)) == value
    broken = {**to_document(value), "kind": "other"}
    assert through_from_document(type(value), broken) == careful(type(value), broken)


def test_a_stored_document_takes_the_fast_path() -> None:
    # What every listing reads: converted by the generated function alone, to the same image.
    assert convert._fast_attrs_class(Image)(A_CLONE) == careful(Image, A_CLONE)
    with pytest.raises(convert._Slow):
        convert._fast_attrs_class(Image)({**A_CLONE, "state": "bogus"})  # left to the careful one
