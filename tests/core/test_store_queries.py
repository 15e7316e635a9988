"""The store's targeted questions, its paged history, and the upgrade of schema-1 repositories."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from encompass_core.errors import Conflict, StoreError
from encompass_core.model import Event, Image, ImageSummary, Machine, Volume
from encompass_core.store import Store
from encompass_core.store.tiny_layout import SCHEMA


def master(name: str) -> Image:
    return Image(name=name, kind="master", state="ready", version=1,
                 volumes=(Volume(index=0, pool="local", format="raw", location=f"/p/{name}.raw"),))


def cow_clone(name: str, parent: Image, state: str = "ready", machine: str | None = None) -> Image:
    return Image(name=name, kind="clone", state=state, master=parent.master or parent.name,
                 parent=parent.name, master_version=1, machine=machine,
                 volumes=(Volume(index=0, pool="local", format="qcow2", location=f"/p/{name}.qcow2",
                                 backing=(parent.name, 0), depth=1),))


def full_clone(name: str, parent: Image) -> Image:
    return Image(name=name, kind="clone", state="ready", master=parent.master or parent.name,
                 parent=parent.name, master_version=1,
                 volumes=(Volume(index=0, pool="local", format="raw", location=f"/p/{name}.raw"),))


def build_family(store) -> None:
    base, other = master("base"), master("other")
    web1, web2 = cow_clone("web1", base), cow_clone("web2", base, state="customizing")
    with store.transaction() as tx:
        tx.add_images([base, other, web1, web2])
        tx.add_images([cow_clone("web1a", web1, machine="vm1"), full_clone("web1b", web1),
                       cow_clone("db1", other)])


def names(images) -> list[str]:
    return [i.name for i in images]


def test_targeted_questions_find_the_images_they_name(new_store) -> None:
    build_family(new_store)
    with new_store.snapshot() as tx:
        assert names(tx.children("base")) == ["web1", "web2"]
        assert names(tx.children("web1")) == ["web1a", "web1b"]
        # web1b is a full copy: it keeps web1 as parent but does not read through it.
        assert names(tx.dependents("web1")) == ["web1a"]
        assert names(tx.dependents("base")) == ["web1", "web2", "web1a", "web1b"]
        assert names(tx.images(state="customizing")) == ["web2"]
        assert names(tx.images(machine="vm1")) == ["web1a"]
        assert names(tx.images(master="other")) == ["db1"]
        assert names(tx.images(kind="master")) == ["base", "other"]
        assert tx.image_names() == ["base", "other", "web1", "web2", "web1a", "web1b", "db1"]


def two_pool_clone(name: str, parent: Image) -> Image:
    return Image(name=name, kind="clone", state="ready", master=parent.name, parent=parent.name,
                 master_version=1, error="disk 1 was slow",
                 volumes=(Volume(index=0, pool="san", format="raw", location=f"/p/{name}.0", size=7),
                          Volume(index=1, pool="local", format="raw", location=f"/p/{name}.1", size=5),
                          Volume(index=2, pool="san", format="raw", location=f"/p/{name}.2", size=1)))


def test_summaries_say_what_the_whole_records_say_in_the_same_order(new_store) -> None:
    build_family(new_store)
    with new_store.transaction() as tx:
        tx.add_images([two_pool_clone("db2", master("other"))])
    queries = [{}, {"kind": "master"}, {"kind": "clone"}, {"state": "customizing"}, {"state": "ready"},
               {"master": "base"}, {"parent": "web1"}, {"machine": "vm1"},
               {"master": "other", "kind": "clone"}, {"master": "nobody"}]
    with new_store.snapshot() as tx:
        for query in queries:
            assert tx.summaries(**query) == [ImageSummary.of(i) for i in tx.images(**query)], query
        summaries = {s.name: s for s in tx.summaries()}
    assert list(summaries) == ["base", "other", "web1", "web2", "web1a", "web1b", "db1", "db2"]
    assert summaries["db2"] == ImageSummary(
        name="db2", kind="clone", state="ready", master="other", parent="other", master_version=1,
        error="disk 1 was slow", pools=("local", "san"), volumes=3, size=13)
    assert summaries["web1a"].machine == "vm1" and summaries["base"].version == 1
    assert summaries["base"].is_master and not summaries["web1a"].is_master


def damage_document(store, store_backend: str, name: str, field: str, value, request) -> None:
    """Set ``field`` of image ``name``'s stored document to ``value``, behind the store's back
    (a hand edit, another tool, a bug of an older version)."""
    if store_backend == "postgresql":
        import psycopg

        with psycopg.connect(request.getfixturevalue("pg_dsn"), autocommit=True) as conn:
            conn.execute("UPDATE images SET doc = jsonb_set(doc, %s, %s::jsonb) WHERE name = %s",
                         ([field], json.dumps(value), name))
        return
    # The shard's log when a transaction changed the image since the base was written.
    for shard in store.path.with_suffix(".d").glob("images-*.json"):
        log = shard.with_suffix(".jsonl")
        patches = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        holding = [patch for patch in patches if name in patch["i"]]
        if holding:
            holding[-1]["i"][name][field] = value
            log.write_text("".join(json.dumps(patch) + "\n" for patch in patches))
            return
        data = json.loads(shard.read_text())
        if name in data["images"]:
            data["images"][name][field] = value
            shard.write_text(json.dumps(data))
            return
    raise AssertionError(f"no document of {name}")


@pytest.mark.parametrize("field, value, words", [
    ("state", "bogus", ("image 'web1'", "state", "'bogus'")),
    ("volumes", [{"index": 0, "pool": 5}], ("image 'web1'", "volumes[0].pool", "expected str")),
    ("master_version", "one", ("image 'web1'", "master_version")),
])
def test_a_summarized_document_that_does_not_fit_is_named(new_store, store_backend, request,
                                                           field, value, words) -> None:
    build_family(new_store)
    new_store.close()  # nothing kept from before the edit (PostgreSQL: its connection)
    damage_document(new_store, store_backend, "web1", field, value, request)
    with new_store.snapshot() as tx, pytest.raises(StoreError) as refused:
        tx.summaries()
    for word in words:
        assert word in str(refused.value)
    with new_store.snapshot() as tx:  # a listing that does not reach it is not refused
        assert [s.name for s in tx.summaries(master="other")] == ["db1"]


def test_a_summarized_field_in_a_shape_only_the_converter_vouches_for_is_listed(
        new_store, store_backend, request) -> None:
    build_family(new_store)
    new_store.close()
    # A volume without its optional size (the model's default: 0) in an unusual document.
    damage_document(new_store, store_backend, "web1", "volumes",
                    [{"index": 0, "pool": "local", "format": "raw", "location": "/p/web1"}], request)
    with new_store.snapshot() as tx:
        assert tx.summaries(kind="clone")[0] == ImageSummary.of(tx.image("web1"))
        assert (tx.summaries(kind="clone")[0].volumes, tx.summaries(kind="clone")[0].size) == (1, 0)


def test_the_indexes_follow_changes_and_removals(new_store) -> None:
    build_family(new_store)
    with new_store.transaction() as tx:
        web2 = tx.image("web2")
        tx.put_image(Image(**{**{f: getattr(web2, f) for f in ("name", "kind", "master", "parent",
                                                                   "volumes")}, "state": "ready"}))
        flattened = tx.image("web1a")
        tx.put_image(Image(name="web1a", kind="clone", state="ready", master="base", parent="web1",
                           volumes=(Volume(index=0, pool="local", format="raw", location="/p/x"),)))
        tx.remove_image("db1")
        assert names(tx.images(state="customizing")) == []  # seen inside the transaction too
    assert flattened.machine == "vm1"
    with new_store.snapshot() as tx:
        assert names(tx.images(state="customizing")) == []
        assert names(tx.images(machine="vm1")) == []
        assert names(tx.dependents("web1")) == []
        assert names(tx.children("web1")) == ["web1a", "web1b"]
        assert names(tx.dependents("other")) == []
        assert tx.find_image("db1") is None


def test_a_taken_name_adds_none_of_a_bulk_add(new_store) -> None:
    build_family(new_store)
    with pytest.raises(Conflict, match="'web1' exists already"), new_store.transaction() as tx:
        tx.add_images([cow_clone("new1", master("base")), cow_clone("web1", master("base"))])
    with new_store.snapshot() as tx:
        assert tx.find_image("new1") is None


def test_history_is_paged_oldest_first_and_kept_after_deletion(new_store) -> None:
    build_family(new_store)
    for n in range(25):
        with new_store.transaction() as tx:
            tx.add_event(Event(image="web1", kind="operation", message=f"step {n}"))
            tx.add_event(Event(image="web2", kind="operation", message=f"other {n}"))
    with new_store.transaction() as tx:
        tx.remove_image("web1")
    with new_store.snapshot() as tx:
        assert tx.count_events("web1") == 25
        assert [e.message for e in tx.events("web1", offset=20, limit=10)] == [
            f"step {n}" for n in range(20, 25)]
        assert [e.message for e in tx.events("web1", limit=2)] == ["step 0", "step 1"]
        assert tx.count_events() == 50


def test_a_dropped_transaction_writes_no_event_and_no_image(new_store) -> None:
    with pytest.raises(RuntimeError), new_store.transaction() as tx:
        tx.add_image(master("base"))
        tx.add_event(Event(image="base", kind="operation", message="imported"))
        raise RuntimeError("interrupted")
    with new_store.snapshot() as tx:
        assert tx.image_names() == [] and tx.count_events("base") == 0


# -- schema 1 -------------------------------------------------------------------------------
# The previous code itself writes the schema-1 repository (git show main:encompass_core/store.py,
# kept beside this test as a file of its own).
SCHEMA1_WRITER = """
import importlib.machinery, importlib.util, sys
from pathlib import Path
import encompass_core
name = "encompass_core._schema1_store"  # its relative imports (.convert, .model) resolve here
loader = importlib.machinery.SourceFileLoader(name, sys.argv[1])
spec = importlib.util.spec_from_loader(name, loader)
old = importlib.util.module_from_spec(spec)
sys.modules[name] = old
loader.exec_module(old)
from encompass_core.model import Event, Image, Machine, Volume
sys.path.insert(0, sys.argv[3])
from test_store_queries import build_images
store = old.Store(Path(sys.argv[2]))
with store.transaction() as tx:
    for image in build_images():
        tx.add_image(image)
        tx.add_event(Event(image=image.name, kind="operation", message="made " + image.name))
    tx.put_machine(Machine(name="vm1", platform="kvm", image="web1a"))
"""


def build_images() -> list[Image]:
    base, other = master("base"), master("other")
    web1 = cow_clone("web1", base)
    return [base, other, web1, cow_clone("web2", base, state="customizing"),
            cow_clone("web1a", web1, machine="vm1"), full_clone("web1b", web1), cow_clone("db1", other)]


@pytest.fixture
def schema1_repository(tmp_path: Path) -> Path:
    """A repository written by the schema-1 store of branch main."""
    old_source = Path(__file__).with_name("schema1_store.py.txt")
    metadata = tmp_path / "home" / "metadata.json"
    done = subprocess.run([sys.executable, "-c", SCHEMA1_WRITER, str(old_source), str(metadata),
                           str(Path(__file__).parent)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(metadata.read_text())["_meta"] == {"1": {"schema": 1}}
    return metadata


def test_a_schema1_repository_is_upgraded_in_place_on_first_use(schema1_repository: Path) -> None:
    old_bytes = schema1_repository.read_bytes()
    store = Store(schema1_repository)
    with store.transaction() as tx:
        assert tx.image_names() == [i.name for i in build_images()]
        assert names(tx.dependents("web1")) == ["web1a"]
        tx.add_event(Event(image="web1", kind="operation", message="after the upgrade"))
    assert json.loads(schema1_repository.read_text())["_meta"]["1"]["schema"] == SCHEMA
    # The schema-1 file stays as the backup, the history left the main file.
    assert schema1_repository.with_name("metadata.json.bak").read_bytes() == old_bytes
    with store.snapshot() as tx:
        assert [e.message for e in tx.events("web1")] == ["made web1", "after the upgrade"]
        assert names(tx.images(state="customizing")) == ["web2"]
        assert names(tx.images(machine="vm1")) == ["web1a"]
        assert tx.find_machine("vm1").image == "web1a"
        assert tx.image("web1a").volumes[0].backing == ("web1", 0)


def test_a_schema1_repository_in_a_read_only_directory_is_read_as_it_is(schema1_repository: Path,
                                                                       monkeypatch) -> None:
    from encompass_core.store import upgrade

    def refused(*_args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(upgrade, "upgrade_in_place", refused)
    before = schema1_repository.read_bytes()
    with Store(schema1_repository).snapshot() as tx:
        assert names(tx.children("base")) == ["web1", "web2"]
        assert [e.message for e in tx.events("db1")] == ["made db1"]
        assert [m.name for m in tx.machines()] == ["vm1"]
    assert schema1_repository.read_bytes() == before


def test_an_upgrade_killed_before_its_commit_is_redone(schema1_repository: Path) -> None:
    # As if killed after writing the new directory, before replacing metadata.json.
    stale = schema1_repository.with_suffix(".d")
    stale.mkdir()
    (stale / "images-00.json").write_text('{"half": ')
    with Store(schema1_repository).snapshot() as tx:
        assert len(tx.image_names()) == 7
    assert json.loads(schema1_repository.read_text())["_meta"]["1"]["schema"] == SCHEMA


def test_a_commit_killed_after_its_journal_is_finished_by_the_next_reader(tmp_path: Path) -> None:
    store = Store(tmp_path / "metadata.json")
    build_family(store)
    from encompass_core.store import files

    # A writer that dies right after writing its journal (before any rename).
    finish = files._finish
    files._finish = lambda *_a: None
    try:
        with store.transaction() as tx:
            tx.put_machine(Machine(name="vm9", platform="kvm"))
            tx.add_image(master("late"))
    finally:
        files._finish = finish
    with store.snapshot() as tx:
        assert tx.find_machine("vm9") is not None and tx.find_image("late") is not None
    assert not (tmp_path / "metadata.d" / "journal.json").exists()
