"""The store protocol, the same on every backend: what operations ask and what they get back."""

from __future__ import annotations

import attrs
import pytest

from encompass_core.errors import Conflict, NotFound
from encompass_core.model import Event, Image, Machine, Volume


def master(name: str = "base") -> Image:
    return Image(name=name, kind="master", state="ready", version=1,
                 volumes=[Volume(index=0, pool="local", format="qcow2", location=f"/pool/{name}.qcow2")])


def clone(name: str, parent: str = "base", master_name: str = "base", cow: bool = True,
          state: str = "ready", machine: str | None = None) -> Image:
    backing = (parent, 0) if cow else None
    return Image(name=name, kind="clone", state=state, master=master_name, parent=parent,
                 master_version=1, machine=machine,
                 volumes=[Volume(index=0, pool="local", format="qcow2", location=f"/pool/{name}.qcow2",
                                 backing=backing, depth=1 if cow else 0)])


def names(images) -> list[str]:
    return [image.name for image in images]


@pytest.fixture
def lineage(new_store):
    """base <- web1 (cow) <- web1b (cow); base <- web2 (full copy, deployed on m1)."""
    with new_store.transaction() as tx:
        tx.add_image(master())
        tx.add_images([clone("web1"), clone("web2", cow=False, state="deployed", machine="m1")])
        tx.add_image(clone("web1b", parent="web1"))
    return new_store


def test_images_are_found_by_name_and_by_what_operations_ask(lineage) -> None:
    with lineage.snapshot() as tx:
        assert tx.find_image("web1").parent == "base"
        assert tx.find_image("nothing") is None
        with pytest.raises(NotFound, match="no image named 'nothing'"):
            tx.image("nothing")
        assert tx.image("web1", shared=True) == tx.image("web1")
        assert tx.taken(["web9", "web1b", "base"]) == ["web1b", "base"]  # in the order asked
        assert tx.image_names() == ["base", "web1", "web2", "web1b"]  # creation order
        assert names(tx.images()) == ["base", "web1", "web2", "web1b"]
        assert names(tx.images(kind="master")) == ["base"]
        assert names(tx.images(state="deployed")) == ["web2"]
        assert names(tx.images(master="base", kind="clone")) == ["web1", "web2", "web1b"]
        assert names(tx.images(machine="m1")) == ["web2"]
        assert names(tx.children("base")) == ["web1", "web2"]
        assert names(tx.children("web1")) == ["web1b"]
        # Clones of a master keep it; an overlay keeps what it reads through.
        assert names(tx.dependents("base")) == ["web1", "web2", "web1b"]
        assert names(tx.dependents("web1")) == ["web1b"]
        assert tx.dependents("web2") == []


def test_what_goes_in_comes_back_whole(new_store) -> None:
    image = attrs.evolve(clone("web1"), inputs={"hostname": "web1", "ports": [80, 443]},
                         applied={"hostname": {"at": "2026-01-01"}}, error=None)
    with new_store.transaction() as tx:
        tx.add_image(image)
    with new_store.snapshot() as tx:
        assert tx.image("web1") == image


def test_a_taken_name_is_a_conflict_and_a_bulk_add_is_all_or_none(lineage) -> None:
    with pytest.raises(Conflict, match="'web1'"), lineage.transaction() as tx:
        tx.add_image(clone("web1"))
    with pytest.raises(Conflict, match="web2"), lineage.transaction() as tx:
        tx.add_images([clone("web3"), clone("web2")])
    with lineage.snapshot() as tx:
        assert tx.find_image("web3") is None


def test_put_replaces_stamps_updated_and_keeps_dependents_in_step(lineage) -> None:
    with lineage.snapshot() as tx:
        before = tx.image("web1b")
    flattened = attrs.evolve(before, volumes=[attrs.evolve(before.volumes[0], backing=None, depth=0)],
                             state="customizing")
    with lineage.transaction() as tx:
        tx.put_image(flattened)
    with lineage.snapshot() as tx:
        after = tx.image("web1b")
        assert after.state == "customizing" and after.volumes[0].backing is None
        assert after.updated >= before.updated
        assert tx.dependents("web1") == []  # it no longer reads through web1
        assert names(tx.images(state="customizing")) == ["web1b"]
    with pytest.raises(NotFound), lineage.transaction() as tx:
        tx.put_image(clone("ghost"))


def test_many_images_are_found_and_replaced_at_once(lineage) -> None:
    with lineage.snapshot() as tx:
        assert names(tx.find_images(["web1b", "ghost", "base"])) == ["web1b", "base"]  # as asked
        web1, web1b = tx.find_images(["web1", "web1b"])
    # web1 becomes a full copy (base keeps it no longer); web1b reads through web2 instead of web1.
    independent = attrs.evolve(web1, state="customizing",
                               volumes=[attrs.evolve(web1.volumes[0], backing=None, depth=0)])
    moved = attrs.evolve(web1b, parent="web2", volumes=[attrs.evolve(web1b.volumes[0], backing=("web2", 0))])
    with lineage.transaction() as tx:
        assert tx.find_images(["web1"], shared=True) == [web1]
        tx.put_images([independent, moved])
    with lineage.snapshot() as tx:
        after = {i.name: i for i in tx.find_images(["web1", "web1b"])}
        assert after["web1"].state == "customizing" and after["web1"].volumes[0].backing is None
        assert after["web1b"].volumes[0].backing == ("web2", 0)
        assert after["web1"].updated >= web1.updated and after["web1b"].updated >= web1b.updated
        assert tx.dependents("web1") == [] and names(tx.dependents("web2")) == ["web1b"]
        assert names(tx.children("web2")) == ["web1b"]
        assert names(tx.images(state="customizing")) == ["web1"]
    # One missing: none is replaced, even for a caller going on after the error.
    with lineage.transaction() as tx:
        with pytest.raises(NotFound, match="ghost"):
            tx.put_images([attrs.evolve(after["web1"], state="ready"), clone("ghost")])
        tx.add_event(Event(image="web1", kind="operation", message="went on"))
    with lineage.snapshot() as tx:
        assert tx.image("web1").state == "customizing"
        assert [e.message for e in tx.events("web1")] == ["went on"]


def test_a_failed_transaction_changes_nothing(lineage) -> None:
    with pytest.raises(RuntimeError), lineage.transaction() as tx:
        tx.remove_image("web2")
        tx.add_event(Event(image="web2", kind="operation", message="deleted"))
        tx.put_machine(Machine(name="m9", platform="kvm"))
        raise RuntimeError("the operation failed half-way")
    with lineage.snapshot() as tx:
        assert tx.find_image("web2") is not None
        assert tx.count_events() == 0
        assert tx.find_machine("m9") is None


def test_removing_an_image_keeps_its_history_and_frees_what_it_held(lineage) -> None:
    with lineage.transaction() as tx:
        tx.add_event(Event(image="web1b", kind="operation", message="cloned"))
        tx.remove_image("web1b")
    with lineage.snapshot() as tx:
        assert tx.find_image("web1b") is None
        assert tx.dependents("web1") == []
        assert [e.message for e in tx.events("web1b")] == ["cloned"]
    with lineage.transaction() as tx:  # the name can be taken again
        tx.add_image(clone("web1b"))


def test_history_is_appended_and_read_by_page(new_store) -> None:
    with new_store.transaction() as tx:
        tx.add_image(master())
        for n in range(25):
            tx.add_event(Event(image="base" if n % 5 else "other", kind="operation", message=f"e{n}"))
    with new_store.snapshot() as tx:
        assert tx.count_events() == 25
        assert tx.count_events("base") == 20
        history = tx.events("base")
        assert [e.message for e in history] == [f"e{n}" for n in range(25) if n % 5]
        assert tx.events("base", offset=5, limit=3) == history[5:8]
        assert tx.events("base", offset=18, limit=10) == history[18:]
        assert tx.events("nobody") == [] and tx.count_events("nobody") == 0


def test_everyones_history_is_oldest_first(new_store) -> None:
    with new_store.transaction() as tx:
        for n in range(12):
            tx.add_event(Event(image=f"image{n % 4}", kind="operation", message=f"e{n}"))
    with new_store.snapshot() as tx:
        assert [e.message for e in tx.events()] == [f"e{n}" for n in range(12)]
        assert [e.message for e in tx.events(offset=1, limit=2)] == ["e1", "e2"]


def test_machines_are_upserted_and_found_by_platform_and_image(new_store) -> None:
    with new_store.transaction() as tx:
        tx.put_machine(Machine(name="m1", platform="kvm"))
        tx.put_machine(Machine(name="m2", platform="xen", image="web2"))
        tx.put_machine(Machine(name="m1", platform="kvm", image="web1", power="on"))
    with new_store.snapshot() as tx:
        assert tx.find_machine("m1").image == "web1" and tx.find_machine("m1").power == "on"
        assert names(tx.machines()) == ["m1", "m2"]
        assert names(tx.machines(platform="xen")) == ["m2"]
        assert names(tx.machines(image="web1")) == ["m1"]
        assert tx.find_machine("m3") is None
    with new_store.transaction() as tx:
        tx.remove_machine("m1")
    with new_store.snapshot() as tx:
        assert names(tx.machines()) == ["m2"]
