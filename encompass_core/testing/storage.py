"""The conformance suite of storage drivers: every method of
:class:`~encompass_core.contracts.StorageDriver`, its error cases and its declared capabilities.

Subclass :class:`StorageDriverSuite` in a test module (a class named ``Test...``) and provide
the fixtures ``driver`` and ``record``; see :mod:`encompass_core.testing`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ..contracts import (
    ATTACH_KINDS,
    Attachment,
    AttachRequest,
    CloneProgress,
    DiscoveredVolume,
    JobStatus,
    StorageCapabilities,
    StorageDriver,
    VolumeReader,
)
from ..customization.openers import open_volume
from ..errors import Conflict, DriverError, NotFound, NotSupported
from ..model import HostPort, Machine, StorageJob, Volume
from ..records import CloneRequest
from .common import check_record

#: The files of the source image (:func:`make_source_image`), which the tests read back.
SOURCE_FILES = {"etc/hostname": b"conformance\n", "etc/motd": b"made by the conformance suite\n"}
MASTER = "conformance-master"
CLONE_MODES = ("cow", "full")


def make_source_image(path: Path, size_mib: int = 8) -> Path:
    """A raw disk holding an ext4 filesystem with :data:`SOURCE_FILES`, made without mounting
    (``mke2fs -d``)."""
    tree = path.with_name(path.name + ".tree")
    for name, content in SOURCE_FILES.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(content)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(tree), str(path), f"{size_mib}M"],
                   check=True, capture_output=True)
    return path


def read_file(driver: StorageDriver, volume: Volume, path: str = "/etc/hostname") -> bytes:
    """A file inside the volume, read through the pool's ``expose`` and a volume opener."""
    with driver.expose(volume, writable=False) as ref, open_volume(ref, writable=False) as files:
        return files.read(path)


def clone(driver: StorageDriver, source: Volume, image: str, mode: str) -> Volume | None:
    """``driver.clone_volume`` of one of its own volumes, as the core asks it."""
    request = CloneRequest(image=image, index=source.index, mode=mode, max_depth=8,
                           source_image=MASTER)
    return driver.clone_volume(source, driver, request, CloneProgress())


def writable_volume(driver: StorageDriver, master: Volume, image: str) -> Volume:
    """A writable volume holding the master's content: a native clone (full if declared), else
    the core's copy through ``expose`` and ``write_volume``."""
    modes = driver.capabilities.clone_modes
    if modes:
        made = clone(driver, master, image, "full" if "full" in modes else modes[0])
        assert made is not None, f"clone mode {modes[0]} is declared, and clone_volume returned None"
        return made
    with driver.expose(master, writable=False) as ref:
        return driver.write_volume(image, master.index, ref, master.size)


class _BytesReader:
    """A :class:`VolumeReader` of bytes in memory (another pool's volume, for write_stream)."""

    format = "raw"
    label = "a volume in memory"
    parallel = 1

    def __init__(self, data: bytes) -> None:
        self.data, self.size = data, len(data)

    def read_into(self, offset: int, buffer: memoryview) -> int:
        part = self.data[offset:offset + len(buffer)]
        buffer[:len(part)] = part
        return len(part)


class StorageDriverSuite:
    """Tests every storage driver passes. Fixtures to provide: ``driver`` (a driver for a fresh,
    empty pool, closed afterwards) and ``record`` (the record the plugin registers).

    ``source_file`` (a raw ext4 image holding :data:`SOURCE_FILES`) and ``master`` (it imported
    as volume 0 of ``conformance-master``) have defaults; a pool that imports nothing
    (``capabilities.imports`` false) overrides ``master`` to make one its own way. ``machine``
    is the machine volumes are attached to: override it when the pool needs real host ports.
    """

    # -- fixtures ------------------------------------------------------------------------------
    @pytest.fixture
    def source_file(self, tmp_path: Path) -> Path:
        return make_source_image(tmp_path / "source.raw")

    @pytest.fixture
    def master(self, driver: StorageDriver, source_file: Path) -> Volume:
        return driver.import_volume(MASTER, 0, source_file)

    @pytest.fixture
    def machine(self) -> Machine:
        return Machine(name="conformance-machine", platform="conformance",
                       host_ports=(HostPort("iscsi", "iqn.2024-01.org.encompass:conformance"),),
                       addresses=("127.0.0.1",))

    # -- what the driver is --------------------------------------------------------------------
    def test_the_driver_derives_from_the_contract_and_declares_what_it_does(self, driver, record):
        assert isinstance(driver, StorageDriver)
        caps = driver.capabilities
        assert isinstance(caps, StorageCapabilities)
        assert caps.formats, "declare the volume formats the pool makes"
        assert set(caps.clone_modes) <= set(CLONE_MODES), caps.clone_modes
        assert set(caps.attach_kinds) <= set(ATTACH_KINDS), caps.attach_kinds
        if caps.long_jobs:
            assert type(driver).job_status is not StorageDriver.job_status
            assert type(driver).cancel_job is not StorageDriver.cancel_job
        assert driver.concurrency >= 1
        check_record(record, driver)

    # -- import ----------------------------------------------------------------------------------
    def test_import_makes_a_readonly_master_volume_of_a_declared_format(self, driver, source_file):
        if not driver.capabilities.imports:
            with pytest.raises(NotSupported):
                driver.import_volume(MASTER, 0, source_file)
            return
        driver.inspect_source(source_file)  # a good source is not refused
        volume = driver.import_volume(MASTER, 0, source_file)
        assert isinstance(volume, Volume)
        assert (volume.index, volume.pool) == (0, driver.pool)
        assert volume.format in driver.capabilities.formats
        assert volume.readonly, "an imported volume is a master's: read-only"
        assert volume.size >= source_file.stat().st_size
        assert read_file(driver, volume) == SOURCE_FILES["etc/hostname"]

    def test_importing_a_volume_twice_is_a_conflict_and_keeps_the_first(self, driver, master,
                                                                        source_file, tmp_path):
        other = make_source_image(tmp_path / "other.raw", size_mib=4)
        with pytest.raises(Conflict):
            driver.import_volume(MASTER, master.index, other)
        assert read_file(driver, master) == SOURCE_FILES["etc/hostname"]
        assert master.location in [found.volume.location for found in driver.discover()]

    # -- clones ----------------------------------------------------------------------------------
    def test_each_declared_clone_mode_makes_a_writable_volume_with_the_content(self, driver, master):
        for mode in CLONE_MODES:
            made = clone(driver, master, f"conformance-{mode}", mode)
            if mode not in driver.capabilities.clone_modes:
                assert made is None, f"clone mode {mode} is not declared: return None"
                continue
            assert isinstance(made, Volume), f"clone mode {mode} is declared"
            assert (made.index, made.pool) == (master.index, driver.pool)
            assert made.format in driver.capabilities.formats
            assert not made.readonly
            assert made.depth == (master.depth + 1 if mode == "cow" else 0)
            assert made.location != master.location
            assert read_file(driver, made) == SOURCE_FILES["etc/hostname"]

    def test_cloning_a_missing_volume_names_it(self, driver, source_file):
        gone = driver.import_volume("conformance-gone", 0, source_file)
        driver.delete_volume(gone)
        for mode in driver.capabilities.clone_modes:
            with pytest.raises((NotFound, DriverError)) as refused:
                clone(driver, gone, f"conformance-{mode}", mode)
            assert isinstance(refused.value, NotFound) or gone.location in str(refused.value)
        with pytest.raises(NotFound), driver.expose(gone, writable=False):
            pass

    # -- expose ----------------------------------------------------------------------------------
    def test_a_readonly_exposure_is_a_volume_an_opener_reads(self, driver, master):
        with driver.expose(master, writable=False) as ref, open_volume(ref, writable=False) as files:
            assert files.read("/etc/motd") == SOURCE_FILES["etc/motd"]
            assert sorted(files.listdir("/etc")) == ["hostname", "motd"]

    def test_a_writable_exposure_keeps_its_changes_and_is_released(self, driver, master):
        volume = writable_volume(driver, master, "conformance-web01")
        with driver.expose(volume, writable=True) as ref, open_volume(ref, writable=True) as files:
            files.write("/etc/hostname", b"web01\n")
        assert read_file(driver, volume) == b"web01\n"
        # Released: it can be exposed for writing again, and the master did not change.
        with driver.expose(volume, writable=True) as ref, open_volume(ref, writable=True) as files:
            files.write("/etc/hostname", b"web02\n")
        assert read_file(driver, volume) == b"web02\n"
        assert read_file(driver, master) == SOURCE_FILES["etc/hostname"]

    def test_exposing_a_master_for_writing_is_refused(self, driver, master):
        with pytest.raises(Conflict), driver.expose(master, writable=True):
            pass
        assert read_file(driver, master) == SOURCE_FILES["etc/hostname"]

    def test_write_volume_copies_an_exposed_volume(self, driver, master):
        # The core's copy across pools: the source exposed by its pool, written by this one.
        with driver.expose(master, writable=False) as ref:
            made = driver.write_volume("conformance-copy", 1, ref, master.size)
        assert isinstance(made, Volume)
        assert (made.index, made.pool) == (1, driver.pool)
        assert made.format in driver.capabilities.formats
        assert not made.readonly and made.depth == 0
        assert read_file(driver, made) == SOURCE_FILES["etc/hostname"]

    # -- direct streams (optional) -----------------------------------------------------------------
    def test_a_direct_reader_gives_the_volume_bytes_or_is_none(self, driver, master, source_file):
        # open_reader: None (the core then copies through expose), or the master's raw bytes.
        reading = driver.open_reader(master)
        if reading is None:
            return
        with reading as reader:
            assert isinstance(reader, VolumeReader) and reader.parallel >= 1
            assert reader.format == "raw" and reader.size == source_file.stat().st_size
            whole, tail = bytearray(reader.size), bytearray(100)
            assert reader.read_into(0, memoryview(whole)) == reader.size
            assert whole == source_file.read_bytes()
            assert reader.read_into(reader.size - 10, memoryview(tail)) == 10  # the end: fewer
            assert tail[:10] == source_file.read_bytes()[-10:]

    def test_write_stream_makes_a_volume_from_a_reader_or_is_none(self, driver, source_file):
        # write_stream: None (the core then asks write_volume), or a new volume with the bytes.
        reader = _BytesReader(source_file.read_bytes())
        done: list[int] = []
        made = driver.write_stream("conformance-streamed", 0, reader, reader.size, done.append)
        if made is None:
            return
        assert (made.index, made.pool, made.format) == (0, driver.pool, "raw")
        assert not made.readonly and made.depth == 0 and sum(done) == reader.size
        assert read_file(driver, made) == SOURCE_FILES["etc/hostname"]

    # -- attach ----------------------------------------------------------------------------------
    def test_attach_answers_with_an_offered_kind_and_echoes_boot_and_lun(self, driver, master,
                                                                        machine):
        volume = writable_volume(driver, master, "conformance-web01")
        offered = driver.capabilities.attach_kinds
        assert offered, "declare how machines reach the pool's volumes"
        attached = driver.attach(volume, machine, AttachRequest(kinds=offered, boot=True, lun=0))
        assert isinstance(attached, Attachment)
        assert attached.kind in offered and attached.address
        assert (attached.index, attached.boot, attached.lun) == (volume.index, True, 0)
        assert attached.format == volume.format and not attached.readonly
        driver.detach(volume, machine)
        master_attached = driver.attach(master, machine, AttachRequest(kinds=offered))
        assert master_attached.readonly, "a master's volume is attached read-only"
        driver.detach(master, machine)

        alone = []  # each kind asked alone: that kind, or refused for this volume's format
        for kind in offered:
            try:
                one = driver.attach(volume, machine, AttachRequest(kinds=(kind,), lun=3))
            except NotSupported:
                continue
            assert (one.kind, one.boot, one.lun) == (kind, False, 3)
            alone.append(kind)
            driver.detach(volume, machine)
        assert alone, f"no kind of {offered} attaches a {volume.format} volume on its own"

    def test_attach_refuses_kinds_it_does_not_offer(self, driver, master, machine):
        volume = writable_volume(driver, master, "conformance-web01")
        others = tuple(kind for kind in ATTACH_KINDS if kind not in driver.capabilities.attach_kinds)
        if others:
            with pytest.raises(NotSupported):
                driver.attach(volume, machine, AttachRequest(kinds=others, boot=True, lun=0))

    def test_detach_twice_is_fine(self, driver, master, machine):
        volume = writable_volume(driver, master, "conformance-web01")
        driver.attach(volume, machine, AttachRequest(kinds=driver.capabilities.attach_kinds))
        driver.detach(volume, machine)
        driver.detach(volume, machine)
        driver.detach(master, machine)  # never attached

    # -- delete, discover ------------------------------------------------------------------------
    def test_discover_lists_what_was_made_with_its_format(self, driver, master):
        copy = writable_volume(driver, master, "conformance-web01")
        found = driver.discover()
        assert all(isinstance(item, DiscoveredVolume) for item in found)
        by_location = {item.volume.location: item for item in found}
        for image, volume in ((MASTER, master), ("conformance-web01", copy)):
            assert volume.location in by_location, f"discover misses {volume.location}"
            item = by_location[volume.location]
            assert item.image == image
            assert (item.volume.index, item.volume.format, item.volume.pool) == \
                (volume.index, volume.format, driver.pool)
        assert by_location[master.location].volume.readonly

    def test_discover_names_what_a_copy_on_write_volume_reads_through(self, driver, master):
        """``encompass discover`` checks lineage against this: a copy-on-write clone's
        ``backing`` is its source's location, and an independent volume has none."""
        full = writable_volume(driver, master, "conformance-web01")
        cow = clone(driver, master, "conformance-web02", "cow") \
            if "cow" in driver.capabilities.clone_modes else None
        by_location = {item.volume.location: item for item in driver.discover()}
        assert by_location[master.location].backing is None
        if full.depth == 0:
            assert by_location[full.location].backing is None
        if cow is not None:
            assert by_location[cow.location].backing == master.location
        wwns = [item.volume.wwn for item in by_location.values() if item.volume.wwn]
        assert len(wwns) == len(set(wwns)), "a world-wide name names one volume"

    def test_delete_volume_twice_is_fine_and_discover_forgets_it(self, driver, master):
        copy = writable_volume(driver, master, "conformance-web01")
        driver.delete_volume(copy)
        driver.delete_volume(copy)
        locations = [item.volume.location for item in driver.discover()]
        assert copy.location not in locations and master.location in locations
        assert read_file(driver, master) == SOURCE_FILES["etc/hostname"]

    # -- optional methods ------------------------------------------------------------------------
    def test_flatten_makes_a_clone_independent_or_is_not_supported(self, driver, master):
        source = writable_volume(driver, master, "conformance-web01")
        if "cow" in driver.capabilities.clone_modes:
            source = clone(driver, master, "conformance-web02", "cow")
        try:
            flat = driver.flatten_volume(source)
        except NotSupported:
            return
        assert isinstance(flat, Volume) and flat.depth == 0
        assert read_file(driver, flat) == SOURCE_FILES["etc/hostname"]

    def test_long_jobs_are_followed_or_not_supported(self, driver):
        job = StorageJob(pool=driver.pool, index=0, id="conformance-no-such-job",
                         description="a job nobody started")
        if not driver.capabilities.long_jobs:
            with pytest.raises(NotSupported):
                driver.job_status(job)
            with pytest.raises(NotSupported):
                driver.cancel_job(job)
            return
        try:
            status = driver.job_status(job)
        except NotFound:
            return
        assert isinstance(status, JobStatus) and status.state in ("done", "failed")

    def test_cleanup_returns_lines(self, driver, master):
        assert driver.cleanup("conformance-never-made") == []
        writable_volume(driver, master, "conformance-web01")
        removed = driver.cleanup("conformance-web01")
        assert isinstance(removed, list) and all(isinstance(line, str) for line in removed)
        assert read_file(driver, master) == SOURCE_FILES["etc/hostname"]
