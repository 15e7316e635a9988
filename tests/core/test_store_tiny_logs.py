"""The TinyDB backend's schema 3: shards changed by appending patches to their logs, logs folded
into their base, several logs appended all or none, and schema-2 repositories read and upgraded."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest
from test_store_queries import build_family, build_images, cow_clone, master, names

from encompass_core.convert import to_document
from encompass_core.model import Event, Machine
from encompass_core.store import Store, files
from encompass_core.store.tiny_layout import COMPACT_BYTES, SCHEMA, SHARDS


def shard_files(home: Path, suffix: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((home / "metadata.d").glob(f"images-*{suffix}"))}


def test_adding_images_appends_to_the_logs_and_rewrites_no_shard(tmp_path: Path) -> None:
    store = Store(tmp_path / "metadata.json")
    build_family(store)
    bases = shard_files(tmp_path, ".json")
    logs = shard_files(tmp_path, ".jsonl")

    base = master("base")
    with store.transaction() as tx:
        tx.add_images([cow_clone(f"n{i}", base) for i in range(3)])

    # Existing shards were not rewritten: only lines appended (or new shards written).
    after = shard_files(tmp_path, ".json")
    assert {name: data for name, data in after.items() if name in bases} == bases
    for name, data in shard_files(tmp_path, ".jsonl").items():
        assert data.startswith(logs.get(name, b"")) and data.endswith(b"\n")
    with store.snapshot() as tx:
        assert names(tx.children("base")) == ["web1", "web2", "n0", "n1", "n2"]
        assert tx.image("n1").parent == "base"


def test_a_log_grown_larger_than_its_base_is_folded_into_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "metadata.json")
    build_family(store)
    shard = zlib.crc32(b"web1") % SHARDS
    log = tmp_path / "metadata.d" / f"images-{shard:02d}.jsonl"
    image = cow_clone("web1", master("base"))
    for n in range(COMPACT_BYTES // 300 + 2):
        with store.transaction() as tx:
            tx.put_image(_described(image, f"change {n}"))
        assert log.stat().st_size <= COMPACT_BYTES + 2048  # folded in before it grows further
    # The base was rewritten with the changes of the log folded into it (not at each change).
    folded = json.loads((tmp_path / "metadata.d" / f"images-{shard:02d}.json").read_text())
    assert folded["images"]["web1"]["error"].startswith("change ")
    assert folded["images"]["web1"]["error"] != f"change {n}" or not log.stat().st_size
    with store.snapshot() as tx:
        assert tx.image("web1").error == f"change {n}"
        assert names(tx.children("web1")) == ["web1a", "web1b"]


def _described(image, text):
    import attrs

    return attrs.evolve(image, error=text)


def test_a_fold_killed_before_emptying_the_log_reads_the_same(tmp_path: Path, monkeypatch) -> None:
    store = Store(tmp_path / "metadata.json")
    build_family(store)
    with store.transaction() as tx:
        tx.remove_image("web1b")
        tx.put_image(_described(tx.image("web1a"), "moved"))
    with store.snapshot() as tx:
        before = [to_document(i) for i in tx.images()], names(tx.dependents("web1"))
    # Fold every log into its base, as if killed before emptying the logs: each patch is then
    # applied again on a base that holds it already.
    monkeypatch.setattr(files, "empty", lambda _path: None)
    for shard in range(SHARDS):
        log = tmp_path / "metadata.d" / f"images-{shard:02d}.jsonl"
        if log.exists() and log.stat().st_size:
            with store.transaction() as tx:
                tx._shard(shard)
                tx._fold(shard)
    with store.snapshot() as tx:
        assert ([to_document(i) for i in tx.images()], names(tx.dependents("web1"))) == before
        assert names(tx.dependents("web1")) == ["web1a"]


def test_a_writer_killed_among_its_appends_is_undone_by_the_next(tmp_path: Path, monkeypatch) -> None:
    store = Store(tmp_path / "metadata.json")
    build_family(store)
    logs = {n: d for n, d in shard_files(tmp_path, ".jsonl").items() if d}
    appended = []

    def append_then_die(path, length, data):
        if appended:
            raise KeyboardInterrupt  # dies before its second append
        appended.append(path)
        real_append(path, length, data)

    real_append = files._append
    monkeypatch.setattr(files, "_append", append_then_die)
    monkeypatch.setattr(files, "roll_back", lambda _undo: None)  # killed: no clean-up of its own
    # A clone whose shard exists already (that of web2): its shard's log and base's are appended.
    late = next(n for n in (f"late{i}" for i in range(10000))
                if zlib.crc32(n.encode()) % SHARDS == zlib.crc32(b"web2") % SHARDS)
    with pytest.raises(KeyboardInterrupt), store.transaction() as tx:
        tx.add_image(cow_clone(late, master("base")))
    monkeypatch.undo()
    assert appended and files.pending_undo(tmp_path / "metadata.d" / "undo.json")

    with store.snapshot() as tx:  # the next reader hands it to a writer, which cuts the logs back
        assert tx.find_image(late) is None
        assert names(tx.children("base")) == ["web1", "web2"]
    assert {n: d for n, d in shard_files(tmp_path, ".jsonl").items() if d} == logs  # cut back
    assert not files.pending_undo(tmp_path / "metadata.d" / "undo.json")


# -- schema 2 -------------------------------------------------------------------------------------
def schema2_repository(home: Path) -> Path:
    """A repository as schema 2 wrote it: 64 shards without logs, the history appended."""
    images = build_images()
    shards: dict[int, dict] = {}

    def shard(name: str) -> dict:
        return shards.setdefault(zlib.crc32(name.encode()) % 64,
                                 {"images": {}, "order": {}, "referrers": {}, "busy": {}})

    for position, image in enumerate(images, 1):
        shard(image.name)["images"][image.name] = to_document(image)
        shard(image.name)["order"][image.name] = position
        refs = {image.parent, image.master} | {v.backing[0] for v in image.volumes if v.backing}
        for target in sorted(r for r in refs if r):
            shard(target)["referrers"].setdefault(target, []).append(image.name)
        if image.state == "customizing":
            shard(image.name)["busy"][image.name] = "customizing"
    directory = home / "metadata.d"
    directory.mkdir(parents=True)
    for index, data in shards.items():
        (directory / f"images-{index:02d}.json").write_text(json.dumps(data))
    (directory / "machines.json").write_text(json.dumps(
        {"machines": {"vm1": to_document(Machine(name="vm1", platform="kvm", image="web1a"))}}))
    (directory / "events.jsonl").write_text("".join(
        json.dumps({**to_document(Event(image=i.name, kind="operation", message="made " + i.name)),
                    "_order": n}, separators=(",", ":")) + "\n" for n, i in enumerate(images)))
    metadata = home / "metadata.json"
    metadata.write_text(json.dumps({"_meta": {"1": {"schema": 2, "shards": 64,
                                                    "deployed": {"web1a": "vm1"}}}}))
    return metadata


def test_a_schema2_repository_is_read_and_upgraded_in_place(tmp_path: Path) -> None:
    metadata = schema2_repository(tmp_path)
    old = metadata.read_bytes()
    store = Store(metadata)
    with store.snapshot() as tx:
        assert tx.image_names() == [i.name for i in build_images()]
        assert names(tx.children("base")) == ["web1", "web2"]
        assert names(tx.images(state="customizing")) == ["web2"]
        assert names(tx.images(machine="vm1")) == ["web1a"]
    # Upgraded on first use: the new number (an older Encompass would not read the logs), the
    # schema-2 file kept as the backup, its 64 shards kept.
    meta = json.loads(metadata.read_text())["_meta"]["1"]
    assert (meta["schema"], meta["shards"]) == (SCHEMA, 64)
    assert metadata.with_name("metadata.json.bak").read_bytes() == old
    with store.transaction() as tx:
        tx.add_image(cow_clone("web3", master("base")))
        tx.add_event(Event(image="web1", kind="operation", message="after the upgrade"))
    with store.snapshot() as tx:
        assert names(tx.children("base")) == ["web1", "web2", "web3"]
        assert names(tx.dependents("web1")) == ["web1a"]
        assert [e.message for e in tx.events("web1")] == ["made web1", "after the upgrade"]
        assert tx.find_machine("vm1").image == "web1a"


def test_a_schema2_repository_in_a_read_only_directory_is_read_as_it_is(tmp_path: Path,
                                                                       monkeypatch) -> None:
    from encompass_core.store import upgrade

    metadata = schema2_repository(tmp_path)
    before = metadata.read_bytes()

    def refused(*_args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(upgrade, "upgrade_schema2", refused)
    monkeypatch.setattr("os.access", lambda *_a: False)
    with Store(metadata).snapshot() as tx:
        assert names(tx.children("web1")) == ["web1a", "web1b"]
        assert [e.message for e in tx.events("db1")] == ["made db1"]
    assert metadata.read_bytes() == before
