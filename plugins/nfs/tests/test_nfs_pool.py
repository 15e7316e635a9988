"""The nfs pool as a user meets it: what lands on the export, what it finds there, how machines
reach it, and what bad input and a server gone mid-copy leave behind (nothing half-made).

Every test runs against the session's nfs-ganesha through libnfs (``url``) unless it says
otherwise; ``server.contents()`` lists the export's files as the server keeps them.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest
from encompass_nfs.driver import NfsStorageDriver
from nfs_testing import make_driver

from encompass_core.config import Section
from encompass_core.contracts import AttachRequest, CloneProgress
from encompass_core.customization.openers import open_volume
from encompass_core.errors import ConfigError, Conflict, DriverError, NotFound, NotSupported
from encompass_core.model import Machine
from encompass_core.records import CloneRequest
from encompass_core.testing import make_source_image


def clone(driver, source, image, mode):
    return driver.clone_volume(source, driver, CloneRequest(image, source.index, mode, 8, "master"),
                               CloneProgress())


def one_line(error, pool="nas"):
    message = str(error)
    assert "\n" not in message and f"'{pool}'" in message, message
    return message


@pytest.fixture
def driver(server, tmp_path):
    made = make_driver(tmp_path, url=server.url)
    yield made
    made.close()


@pytest.fixture
def master(driver, tmp_path):
    return driver.import_volume("master", 0, make_source_image(tmp_path / "master.raw"))


def test_volumes_land_on_the_export_as_files_a_mounted_host_can_open(server, driver, master):
    cow = clone(driver, master, "web01", "cow")
    full = clone(driver, master, "web02", "full")
    assert server.contents() == ["master", "master/vol0.raw", "web01", "web01/vol0.qcow2",
                                 "web02", "web02/vol0.raw"]
    export = server.export_dir
    assert stat.S_IMODE(os.stat(export / "master/vol0.raw").st_mode) == 0o444
    assert (cow.location, full.location) == (f"{server.url}/web01/vol0.qcow2",
                                             f"{server.url}/web02/vol0.raw")
    # The overlay names its backing file relative to itself: right wherever the export is mounted.
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(export / "web01/vol0.qcow2")],
                                     capture_output=True, check=True).stdout)
    assert info["backing-filename"] == "../master/vol0.raw"
    for made in ("web01/vol0.qcow2", "web02/vol0.raw"):
        subprocess.run(["qemu-img", "compare", "-q", str(export / made), str(export / "master/vol0.raw")],
                       check=True)
    # The full copy stays sparse: the 8 MiB master holds about 100 KiB of data.
    assert os.stat(export / "web02/vol0.raw").st_blocks * 512 < (1 << 20)


def test_a_clone_customized_through_the_export_changes_only_its_own_file(server, driver, master):
    cow = clone(driver, master, "web01", "cow")
    with driver.expose(cow, writable=True) as ref, open_volume(ref, writable=True) as files:
        files.write("/etc/hostname", b"web01\n")
    with driver.expose(cow, writable=False) as ref, open_volume(ref, writable=False) as files:
        assert files.read("/etc/hostname") == b"web01\n"
    export = server.export_dir
    shown = subprocess.run(["debugfs", "-R", "cat /etc/hostname", str(export / "master/vol0.raw")],
                           capture_output=True, check=True).stdout
    assert shown == b"conformance\n"
    # Customizing left no helper file on the export.
    assert server.contents() == ["master", "master/vol0.raw", "web01", "web01/vol0.qcow2"]


def test_discover_finds_what_the_export_holds_and_skips_what_is_not_a_volume(server, driver, master,
                                                                             tmp_path):
    clone(driver, master, "web01", "cow")
    export = server.export_dir
    (export / "legacy").mkdir()
    make_source_image(export / "legacy" / "vol2.raw", size_mib=4)
    (export / "legacy" / ".vol3.raw.partial").write_bytes(b"half")
    (export / "legacy" / "notes.txt").write_text("not a volume\n")
    (export / "README").write_text("a file at the top\n")
    found = {(item.image, item.volume.index): item for item in driver.discover()}
    assert sorted(found) == [("legacy", 2), ("master", 0), ("web01", 0)]
    assert found[("legacy", 2)].volume.format == "raw" and not found[("legacy", 2)].volume.readonly
    assert found[("master", 0)].volume.readonly
    overlay = found[("web01", 0)]
    assert overlay.volume.size == master.size
    assert overlay.backing == master.location


def test_a_clone_named_like_an_existing_volume_is_refused_and_changes_nothing(server, driver, master,
                                                                              tmp_path):
    clone(driver, master, "web01", "full")
    before = server.contents()
    for mode in ("cow", "full"):
        with pytest.raises(Conflict) as refused:
            clone(driver, master, "web01", mode)
        assert "web01/vol0" in one_line(refused.value)
    with pytest.raises(Conflict):
        driver.import_volume("master", 0, make_source_image(tmp_path / "other.raw", size_mib=4))
    assert server.contents() == before


def test_an_unreachable_server_is_one_line(tmp_path):
    down = make_driver(tmp_path, url="nfs://127.0.0.1/export?nfsport=1&mountport=1")
    with pytest.raises(DriverError) as refused:
        down.discover()
    assert "cannot reach the NFS server 127.0.0.1" in one_line(refused.value)


def test_a_missing_export_is_one_line_and_a_good_pool_works_after_it(server, tmp_path):
    missing = make_driver(tmp_path, name="gone", url="nfs://127.0.0.1/nosuch")
    with pytest.raises(NotFound) as refused:
        missing.discover()
    assert "does not export /nosuch" in one_line(refused.value, "gone")
    with pytest.raises(NotFound):  # asked again: refused again, never a hang or a crash
        missing.import_volume("master", 0, make_source_image(tmp_path / "m.raw"))
    good = make_driver(tmp_path, url=server.url)
    good.import_volume("master", 0, make_source_image(tmp_path / "m.raw"))
    assert [item.image for item in good.discover()] == ["master"]
    assert server.contents() == ["master", "master/vol0.raw"]


def test_a_server_stopped_mid_copy_fails_in_one_line_and_cleanup_leaves_nothing(server, driver, tmp_path):
    source = tmp_path / "big.raw"
    source.write_bytes(os.urandom(48 << 20))
    stopped = []

    def stop_at_first_bytes(done):
        if not stopped:
            stopped.append(done)
            server.stop_server()

    with pytest.raises(DriverError) as failed:
        driver.import_volume("big", 0, source, progress=stop_at_first_bytes)
    message = one_line(failed.value)
    assert "stopped answering" in message and "encompass image delete big" in message
    server.start()
    assert server.contents() in ([], ["big", "big/.vol0.raw.partial"])
    assert [item.image for item in driver.discover()] == []  # a partial file is never a volume
    driver.cleanup("big")
    assert server.contents() == []


def test_directory_trees_keep_modes_owners_and_links_and_boot_as_nfs_roots(server, driver, tmp_path):
    tree = tmp_path / "root"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("template\n")
    (tree / "root").mkdir(mode=0o700)
    (tree / "root" / "secret").write_text("s\n")
    os.chown(tree / "root" / "secret", 1000, 1000)
    (tree / "bin").mkdir()
    (tree / "bin" / "sh").write_bytes(b"\x7fELF")
    (tree / "bin" / "sh").chmod(0o755)
    os.symlink("/bin/sh", tree / "bin" / "ash")
    master = driver.import_volume("root-master", 0, tree)
    assert master.format == "dir" and master.readonly
    on_export = server.export_dir / "root-master" / "vol0"
    assert stat.S_IMODE(os.stat(on_export / "root").st_mode) == 0o700
    assert os.stat(on_export / "root" / "secret").st_uid == 1000
    assert os.readlink(on_export / "bin" / "ash") == "/bin/sh"
    assert stat.S_IMODE(os.stat(on_export / "bin" / "sh").st_mode) == 0o755

    copy = clone(driver, master, "node1", "full")
    with driver.expose(copy, writable=True) as ref, open_volume(ref, writable=True) as files:
        files.write("/etc/hostname", b"node1\n")
    assert (server.export_dir / "node1/vol0/etc/hostname").read_text() == "node1\n"
    assert (on_export / "etc" / "hostname").read_text() == "template\n"
    assert not [name for name in server.contents() if ".partial" in name or ".old" in name]

    machine = Machine(name="diskless1", platform="pxe")
    attached = driver.attach(copy, machine, AttachRequest(kinds=("nfs",), boot=True))
    assert attached.kind == "nfs" and attached.address == "127.0.0.1:/export/node1/vol0"
    assert attached.details["nfsroot"] == "127.0.0.1:/export/node1/vol0,vers=3,tcp"
    assert {item.volume.format for item in driver.discover()} == {"dir"}


def test_attach_says_where_each_host_sees_the_volume(server, tmp_path):
    driver = make_driver(tmp_path, url=server.url, mounts={"kvm1": "/mnt/nas", "*": "/net/nas/"})
    master = driver.import_volume("master", 0, make_source_image(tmp_path / "m.raw"))
    web = clone(driver, master, "web01", "cow")
    on_kvm1 = Machine(name="vm1", platform="kvm", extra={"host": {"hostname": "kvm1"}})
    elsewhere = Machine(name="vm2", platform="kvm")
    assert driver.attach(web, on_kvm1, AttachRequest(kinds=("file",))).address == \
        "/mnt/nas/web01/vol0.qcow2"
    assert driver.attach(web, elsewhere, AttachRequest(kinds=("file",))).address == \
        "/net/nas/web01/vol0.qcow2"
    over_nfs = driver.attach(web, elsewhere, AttachRequest(kinds=("nfs", "file"), boot=True, lun=0))
    assert (over_nfs.kind, over_nfs.address, over_nfs.format) == \
        ("nfs", "127.0.0.1:/export/web01/vol0.qcow2", "qcow2")
    assert over_nfs.details["url"] == f"{server.url}/web01/vol0.qcow2"

    no_mounts = make_driver(tmp_path, name="bare", url=server.url)
    assert no_mounts.capabilities.attach_kinds == ("nfs",)
    with pytest.raises(NotSupported) as refused:
        no_mounts.attach(web, elsewhere, AttachRequest(kinds=("file",)))
    assert "mounts" in one_line(refused.value, "bare")


def test_settings_are_checked_in_one_line(tmp_path):
    with pytest.raises(ConfigError) as refused:
        make_driver(tmp_path)
    assert "[pools.nas]: needs 'url'" in str(refused.value) and "\n" not in str(refused.value)
    for url in ("http://nas/export", "nfs://nas", "nfs://nas/export?version=2", "nfs://nas/x?speed=9"):
        with pytest.raises(ConfigError):
            make_driver(tmp_path, url=url)
    with pytest.raises(ConfigError):
        make_driver(tmp_path, url="nfs://nas/export", mounts={"kvm1": "relative/path"})
    assert isinstance(make_driver(tmp_path, path=str(tmp_path)), NfsStorageDriver)
    assert Section("nas", "nfs", {}).name == "nas"


def test_a_mounted_export_copies_on_the_server_and_keeps_trees(tmp_path):
    mount = tmp_path / "mnt"  # any directory stands in for the mount (the kernel here has no NFS)
    mount.mkdir()
    driver = make_driver(tmp_path, path=str(mount))
    master = driver.import_volume("master", 0, make_source_image(tmp_path / "m.raw"))
    cow, full = clone(driver, master, "web01", "cow"), clone(driver, master, "web02", "full")
    assert (cow.location, full.location) == (str(mount / "web01/vol0.qcow2"), str(mount / "web02/vol0.raw"))
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", cow.location],
                                     capture_output=True, check=True).stdout)
    assert info["backing-filename"] == "../master/vol0.raw"
    assert os.stat(full.location).st_blocks * 512 < (1 << 20)  # copy_file_range kept the holes
    # A machine on this host sees the files where they are; the pool has no url: no nfs kind.
    assert driver.capabilities.attach_kinds == ("file", "dir")
    attached = driver.attach(cow, Machine(name="vm", platform="kvm"), AttachRequest(kinds=("file",)))
    assert attached.address == cow.location

    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("template\n")
    os.symlink("hostname", tree / "etc" / "name")
    root = driver.import_volume("root", 0, tree)
    node = clone(driver, root, "node1", "cow")  # a tree is copied whatever the mode
    assert node.format == "dir" and os.readlink(mount / "node1/vol0/etc/name") == "hostname"
    with driver.expose(node, writable=True) as ref, open_volume(ref, writable=True) as files:
        files.write("/etc/hostname", b"node1\n")
    assert (mount / "node1/vol0/etc/hostname").read_text() == "node1\n"
    assert (mount / "root/vol0/etc/hostname").read_text() == "template\n"

    # A mount that refuses a delete (here an immutable file) is a driver error, one line.
    subprocess.run(["chattr", "+i", full.location], check=True)
    try:
        with pytest.raises(DriverError) as refused:
            driver.delete_volume(full)
    finally:
        subprocess.run(["chattr", "-i", full.location], check=True)
    assert one_line(refused.value) == f"pool 'nas': cannot remove {mount}/web02/vol0.raw: " \
                                      "Operation not permitted"
    driver.delete_volume(full)
    assert not os.path.exists(full.location)


def test_an_nfsv4_pool_keeps_disk_files_and_refuses_trees_in_one_line(server, tmp_path):
    driver = make_driver(tmp_path, url=server.url + "?version=4")
    assert driver.capabilities.formats == ("raw", "qcow2")
    tree = tmp_path / "tree"
    tree.mkdir()
    with pytest.raises(NotSupported) as refused:
        driver.inspect_source(tree)
    assert "NFSv3" in one_line(refused.value)
    with pytest.raises(NotSupported):
        driver.import_volume("root", 0, tree)
    assert server.contents() == []
