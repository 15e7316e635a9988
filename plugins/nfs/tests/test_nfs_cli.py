"""The nfs pool through the ``encompass`` command, as a user drives it: a master kept on the
export, clones made there and customized, clones streamed between the export and a local pool,
images read and deleted, and what the export holds after each step. The commands run in the
server's network namespace (they inherit the test thread's)."""

from __future__ import annotations

import pytest
from nfs_testing import encompass_cli

from encompass_core.testing import make_source_image


@pytest.fixture
def encompass(server, tmp_path):
    return encompass_cli(tmp_path / "home", f'\n[pools.nas]\ndriver = "nfs"\nurl = "{server.url}"\n')


def test_masters_and_clones_on_the_export_and_across_pools(server, encompass, tmp_path):
    source = make_source_image(tmp_path / "base.raw")
    encompass("master", "import", "base", str(source), "--pool", "nas")
    encompass("master", "items", "add", "base", "hostname", "--type", "file", "--path", "/etc/hostname",
              "--default", "localhost")
    encompass("clone", "base", "web01", "web02", "--pool", "nas")  # copy-on-write, on the server
    encompass("customize", "web01", "web02", "--set", "hostname={clone}")
    assert encompass("image", "cat", "web02", "/etc/hostname").stdout == "web02\n"
    assert server.contents() == ["base", "base/vol0.raw", "web01", "web01/vol0.qcow2",
                                 "web02", "web02/vol0.qcow2"]

    # Streamed by the core between the export and the local pool, both ways.
    encompass("clone", "web01", "web01-local", "--pool", "local", "--mode", "full")
    assert encompass("image", "cat", "web01-local", "/etc/hostname").stdout == "web01\n"
    encompass("master", "import", "local-base", str(source))
    encompass("clone", "local-base", "db01", "--pool", "nas", "--mode", "full")
    assert encompass("image", "cat", "db01", "/etc/hostname").stdout == "conformance\n"
    assert "db01/vol0.raw" in server.contents()
    encompass("master", "items", "add", "local-base", "hostname", "--type", "file", "--path",
              "/etc/hostname", "--default", "localhost")
    encompass("clone", "local-base", "app01", "--pool", "local")  # an overlay on this host...
    encompass("customize", "app01", "--set", "hostname=app01")
    encompass("clone", "app01", "app01-nas", "--pool", "nas", "--mode", "full")  # ...made whole there
    assert encompass("image", "cat", "app01-nas", "/etc/hostname").stdout == "app01\n"

    refused = encompass("clone", "base", "web01", "--pool", "nas", ok=False)
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1
    # A copy-on-write clone lands in the default (local) pool, which cannot overlay an export's
    # file: the refusal names both ways out.
    elsewhere = encompass("clone", "base", "web03", ok=False)
    assert elsewhere.returncode != 0
    assert "use --pool nas to clone it there, or --mode full" in elsewhere.stderr, elsewhere.stderr

    encompass("image", "delete", "web01", "web02", "db01", "app01-nas")
    assert server.contents() == ["base", "base/vol0.raw"]
