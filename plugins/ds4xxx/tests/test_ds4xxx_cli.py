"""A user's walk through a SAN pool with the ``encompass`` command: import a master onto the
subsystem, clone it both ways, customize a clone, read it back, delete; and ``encompass repair``
after a clone process was killed in the middle of its VolumeCopy."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from ds4xxx_testing import ENCOMPASS, cli_env, encompass, ok

from encompass_core.testing import make_source_image

MIB = 1 << 20


def test_import_clone_customize_read_and_delete_on_the_san(home, simulator, tmp_path):
    assert "ds4xxx" in ok(home, "plugins")
    ok(home, "master", "import", "debian", str(make_source_image(tmp_path / "debian.raw")))
    ok(home, "master", "items", "add", "debian", "hostname", "--type", "file", "--path",
       "/etc/hostname", "--default", "conformance")
    ok(home, "clone", "debian", "web01")  # cow: a FlashCopy
    ok(home, "clone", "debian", "web02", "--mode", "full")  # a VolumeCopy
    assert simulator.labels() >= {"debian_0_RO", "web01_0", "web02_0"}
    flash = next(d for d in simulator.state()["drives"].values() if d["label"] == "web01_0")
    assert flash["kind"] == "flashcopy"

    ok(home, "customize", "web01", "--set", "hostname=web01")
    assert ok(home, "image", "cat", "web01", "/etc/hostname") == "web01\n"
    assert ok(home, "image", "cat", "web02", "/etc/hostname") == "conformance\n"
    assert ok(home, "image", "cat", "debian", "/etc/hostname") == "conformance\n"
    assert simulator.mappings() == {}, "nothing stays mapped to the utility server"

    ok(home, "image", "delete", "web01", "web02")
    assert simulator.labels() == {"debian_0_RO"}


def test_a_clone_killed_during_its_volume_copy_is_repaired(home, simulator, tmp_path):
    ok(home, "master", "import", "debian", str(make_source_image(tmp_path / "debian.raw")))
    simulator.set(copy_rate=MIB // 8)  # a minute for 8 MiB
    clone = subprocess.Popen([str(ENCOMPASS), "clone", "debian", "web03", "--mode", "full"],
                             env=cli_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not simulator.state()["copies"]:
            assert clone.poll() is None and time.monotonic() < deadline, "the copy never started"
            time.sleep(0.1)
        while "web03_0_P" not in ok(home, "image", "show", "web03", "--json"):
            assert time.monotonic() < deadline, "the job was never recorded on the image"
            time.sleep(0.1)
    finally:
        os.killpg(clone.pid, signal.SIGKILL)
        clone.wait()
    assert "web03_0_P" in simulator.labels()

    repaired = ok(home, "repair")
    assert "web03" in repaired
    assert simulator.labels() == {"debian_0_RO"}
    assert simulator.state()["copies"] == {}
    assert encompass(home, "image", "show", "web03").returncode != 0  # never made: gone
