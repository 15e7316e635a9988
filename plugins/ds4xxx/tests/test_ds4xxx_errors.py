"""Bad input and failing peers: each is one clear line naming the pool, SMcli's own code and
text when SMcli refused, and the subsystem is left as it was (checked in the simulator's state:
no half-made logical drive, host or mapping)."""

from __future__ import annotations

import pytest
from ds4xxx_testing import make_driver

from encompass_core.contracts import AttachRequest, CloneProgress
from encompass_core.errors import Conflict, DriverError, InvalidInput, NotFound
from encompass_core.model import HostPort, Machine
from encompass_core.records import CloneRequest
from encompass_core.testing import make_source_image

BLADE1 = "iqn.2024-01.org.encompass:blade1"
BLADE2 = "iqn.2024-01.org.encompass:blade2"


def blade(name: str, initiator: str) -> Machine:
    return Machine(name=name, platform="bladecenter", kind="physical",
                   host_ports=(HostPort("iscsi", initiator),))


def request(image: str, mode: str) -> CloneRequest:
    return CloneRequest(image=image, index=0, mode=mode, max_depth=8, source_image="debian")


def one_line(error: BaseException) -> str:
    message = str(error)
    assert "\n" not in message and "Traceback" not in message and "'san'" in message, message
    return message


@pytest.fixture
def source(tmp_path):
    return make_source_image(tmp_path / "debian.raw")


@pytest.fixture
def master(driver, source):
    return driver.import_volume("debian", 0, source)


def test_an_unreachable_subsystem_is_one_line_and_changes_nothing(driver, simulator, master,
                                                                 tmp_path, source):
    before = simulator.state()
    simulator.set(subsystem__controllers__A__online=False, subsystem__controllers__B__online=False)
    with pytest.raises(DriverError) as refused:
        driver.clone_volume(master, driver, request("web01", "full"), CloneProgress())
    message = one_line(refused.value)
    assert "cannot reach the DS4xxx controllers at 127.0.0.2, 127.0.0.3" in message and "exit 4" in message
    with pytest.raises(DriverError):
        driver.import_volume("other", 0, source)
    assert simulator.state()["drives"] == before["drives"]

    # One controller back: SMcli reaches the subsystem through it.
    simulator.set(subsystem__controllers__B__online=True)
    made = driver.clone_volume(master, driver, request("web01", "cow"), CloneProgress())
    assert made.location in simulator.labels()


def test_a_full_array_refuses_with_smclis_error_and_leaves_no_logical_drive(driver, simulator,
                                                                           tmp_path):
    big = make_source_image(tmp_path / "big.raw", size_mib=300)  # the array holds 256 MB
    with pytest.raises(DriverError) as refused:
        driver.import_volume("big", 0, big)
    message = one_line(refused.value)
    assert message.startswith("pool 'san': SMcli refused 'create logicalDrive, set logicalDrive': ")
    assert "Error 1003 - The operation cannot complete because the array 1 does not have enough " \
           "free capacity" in message
    assert simulator.labels() == set()
    assert simulator.mappings() == {}


def test_a_volume_copy_that_does_not_fit_leaves_nothing(driver, simulator, tmp_path):
    master = driver.import_volume("debian", 0, make_source_image(tmp_path / "d.raw", size_mib=100))
    driver.clone_volume(master, driver, request("web01", "full"), CloneProgress())  # 200 of 256 MB
    before = simulator.labels()
    with pytest.raises(DriverError) as refused:
        driver.clone_volume(master, driver, request("web02", "full"), CloneProgress())
    assert "Error 1003" in one_line(refused.value)
    assert simulator.labels() == before == {"debian_0_RO", "web01_0"}
    assert simulator.state()["copies"] == {}
    # A FlashCopy needs only its repository (20% of the base): it still fits.
    assert driver.clone_volume(master, driver, request("web02", "cow"), CloneProgress()) is not None


def test_a_name_taken_on_the_subsystem_is_a_conflict_and_the_other_drive_is_untouched(
        driver, simulator, master):
    made_by_hand = simulator.smcli('create logicalDrive array=1 capacity=4 MB userLabel="web01_0";')
    assert made_by_hand.returncode == 0, made_by_hand.stdout
    before = simulator.state()["drives"]
    for mode in ("cow", "full"):
        with pytest.raises(Conflict) as refused:
            driver.clone_volume(master, driver, request("web01", mode), CloneProgress())
        assert "logical drive web01_0" in one_line(refused.value)
    assert simulator.state()["drives"] == before


def test_an_image_name_too_long_for_a_label_is_refused_before_anything(driver, simulator, master):
    with pytest.raises(InvalidInput) as refused:
        driver.clone_volume(master, driver, request("a-very-long-image-name-for-a-ds4k", "cow"),
                            CloneProgress())
    assert "30 characters" in one_line(refused.value)
    assert simulator.labels() == {"debian_0_RO"}


def test_a_drive_mapped_to_another_host_is_a_conflict_and_no_host_is_left(driver, simulator, master):
    web01 = driver.clone_volume(master, driver, request("web01", "cow"), CloneProgress())
    driver.attach(web01, blade("blade1", BLADE1), AttachRequest(kinds=("iscsi",), boot=True))
    hosts = sorted(simulator.state()["hosts"])
    with pytest.raises(Conflict) as refused:
        driver.attach(web01, blade("blade2", BLADE2), AttachRequest(kinds=("iscsi",), boot=True))
    assert "mapped to host 'blade1' (LUN 0)" in one_line(refused.value)
    assert sorted(simulator.state()["hosts"]) == hosts  # blade2's host was not left behind
    assert simulator.mappings() == {"web01_0": ("blade1", 0)}
    # Nor can the utility server take it while blade1 has it.
    with pytest.raises(Conflict), driver.expose(web01, writable=True):
        pass
    assert simulator.mappings() == {"web01_0": ("blade1", 0)}


def test_a_lun_taken_on_the_host_is_a_conflict(driver, simulator, master):
    first = driver.clone_volume(master, driver, request("web01", "cow"), CloneProgress())
    second = driver.clone_volume(master, driver, request("web02", "cow"), CloneProgress())
    machine = blade("blade1", BLADE1)
    driver.attach(first, machine, AttachRequest(kinds=("iscsi",), boot=True))
    with pytest.raises(Conflict) as refused:
        driver.attach(second, machine, AttachRequest(kinds=("iscsi",), boot=True))
    assert "LUN 0 of host 'blade1' is taken by logical drive 'web01_0'" in one_line(refused.value)
    assert simulator.mappings() == {"web01_0": ("blade1", 0)}


def test_a_machine_without_an_initiator_name_is_refused(driver, simulator, master):
    with pytest.raises(InvalidInput) as refused:
        driver.attach(master, Machine(name="pc1", platform="amt", kind="physical"),
                      AttachRequest(kinds=("iscsi",)))
    assert "no iSCSI initiator name" in one_line(refused.value)
    assert simulator.mappings() == {}


def test_a_password_protected_subsystem_needs_the_password(tmp_path, simulator, monkeypatch, source):
    simulator.set(subsystem__password="s3cret-pw")
    without = make_driver(tmp_path)
    with pytest.raises(DriverError) as refused:
        without.import_volume("debian", 0, source)
    message = one_line(refused.value)
    assert "Error 1009 - The operation cannot complete because the storage subsystem password" in message
    assert simulator.labels() == set()

    monkeypatch.setenv("SAN_PASSWORD", "s3cret-pw")
    with_password = make_driver(tmp_path, password_env="SAN_PASSWORD")
    volume = with_password.import_volume("debian", 0, source)
    assert volume.location in simulator.labels()
    assert "s3cret-pw" not in repr(volume)
    monkeypatch.setenv("SAN_PASSWORD", "wrong-pw")
    with pytest.raises(DriverError) as refused:
        with_password.delete_volume(volume)
    assert "wrong-pw" not in str(refused.value) and "s3cret" not in str(refused.value)
    assert volume.location in simulator.labels()


def test_a_missing_smcli_is_one_line(tmp_path, simulator):
    broken = make_driver(tmp_path, smcli=str(tmp_path / "no-SMcli"))
    with pytest.raises(DriverError) as refused:
        broken.discover()
    assert "SMcli not found" in one_line(refused.value)


def test_a_master_with_flashcopies_is_not_deleted(driver, simulator, master):
    driver.clone_volume(master, driver, request("web01", "cow"), CloneProgress())
    with pytest.raises(Conflict) as refused:
        driver.delete_volume(master)
    assert "base of the FlashCopy logical drive(s) web01_0" in one_line(refused.value)
    assert {"debian_0_RO", "web01_0"} <= simulator.labels()


def test_a_flashcopy_of_a_flashcopy_is_refused(driver, simulator, master):
    snap = driver.clone_volume(master, driver, request("web01", "cow"), CloneProgress())
    with pytest.raises(Conflict) as refused:
        driver.clone_volume(snap, driver, request("web02", "cow"), CloneProgress())
    assert "--mode full" in one_line(refused.value)
    made = driver.clone_volume(snap, driver, request("web02", "full"), CloneProgress())
    assert made.depth == 0 and "web02_0" in simulator.labels()


def test_cloning_a_volume_gone_from_the_subsystem_names_it(driver, simulator, master):
    simulator.smcli('delete logicalDrive ["debian_0_RO"];')
    with pytest.raises(NotFound) as refused:
        driver.clone_volume(master, driver, request("web01", "cow"), CloneProgress())
    assert "debian_0_RO" in one_line(refused.value)
