"""Hardware-profile matching, against libvirt's built-in test driver (test:///default).

That driver's one domain, 'test', has 8 GiB, 2 vCPUs and an i686 CPU: it fits a small i686
image and refuses, with reasons, images that need more memory, another architecture, or
another platform kind — and a refused deploy leaves the clone as it was.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ENCOMPASS = str(Path(sys.executable).with_name("encompass"))


@pytest.fixture
def encompass(tmp_path):
    env = dict(os.environ, ENCOMPASS_HOME=str(tmp_path / "home"))

    def run(*args):
        done = subprocess.run([ENCOMPASS, *args], capture_output=True, text=True, env=env, check=False)
        return done.returncode, done.stdout, done.stderr

    assert run("init")[0] == 0
    with open(tmp_path / "home" / "encompass.toml", "a") as config:
        config.write('\n[platforms.lab]\ndriver = "kvm"\nuri = "test:///default"\n')
    disk = tmp_path / "disk.raw"
    disk.write_bytes(b"\xeb" * 4096)
    for name, hw in (("big", ["memory=16G"]), ("other-arch", ["memory=1G"]),
                     ("xen-only", ["memory=1G", "arch=i686", "platforms=xen"]),
                     ("fits", ["memory=1G", "arch=i686", "cpus=2"])):
        args = [a for pair in hw for a in ("--hw", pair)]
        assert run("master", "import", name, str(disk), *args)[0] == 0
        assert run("clone", name, f"{name}-1")[0] == 0
    code, _, err = run("discover", "--platform", "lab", "--apply")
    assert code == 0, err
    return run


def test_machine_list_says_which_machines_fit_and_why_not(encompass):
    code, out, _ = encompass("machine", "list", "--fits", "big-1", "--json")
    assert code == 0
    (machine,) = json.loads(out)
    assert machine["name"] == "test" and machine["fits"] is False
    assert "has 8192 MiB, the image needs 16384 MiB" in machine["why_not"]

    code, out, _ = encompass("machine", "list", "--fits", "fits-1", "--json")
    assert json.loads(out)[0]["fits"] is True


@pytest.mark.parametrize(("clone", "reason"), [
    ("big-1", "has 8192 MiB, the image needs 16384 MiB"),
    ("other-arch-1", "is i686, the image needs x86_64"),
    ("xen-only-1", "is on platform 'lab', the image allows only xen"),
])
def test_deploy_refuses_a_machine_that_does_not_fit(encompass, clone, reason):
    code, _, err = encompass("deploy", clone, "test")
    assert code == 4
    assert reason in err and "encompass machine list --fits" in err
    assert len(err.strip().splitlines()) == 1
    _, out, _ = encompass("image", "show", clone, "--json")
    assert json.loads(out)["state"] == "ready"
    _, out, _ = encompass("machine", "show", "test", "--json")
    assert json.loads(out)["image"] is None
