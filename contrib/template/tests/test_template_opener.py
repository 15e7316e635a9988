"""The opener reads and writes the files of a tar archive volume, and stays inside it."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from encompass_template import plugin
from encompass_template.opener import TemplateOpener

from encompass_core.customization.access import VolumeRef
from encompass_core.customization.openers import open_volume
from encompass_core.errors import DriverError
from encompass_core.plugins import PluginHost


def add(archive: tarfile.TarFile, name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE,
        link: str = "") -> None:
    member = tarfile.TarInfo(name)
    member.type, member.size, member.linkname = kind, len(data), link
    member.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    archive.addfile(member, io.BytesIO(data) if data else None)


@pytest.fixture
def volume(tmp_path: Path) -> VolumeRef:
    path = tmp_path / "root.tar"
    with tarfile.open(path, "w") as archive:
        add(archive, "etc", kind=tarfile.DIRTYPE)
        add(archive, "etc/hostname", b"base\n")
        add(archive, "etc/escape", kind=tarfile.SYMTYPE, link="/etc/shadow")
    return VolumeRef(path=str(path), format="tar")


def test_writes_are_packed_back_into_the_archive(volume):
    opener = TemplateOpener()
    assert opener.can_open(volume) is None
    with open_volume(volume, writable=True, openers=[opener]) as files:
        assert files.read("/etc/hostname") == b"base\n"
        files.write("/etc/hostname", b"web01\n")
    with tarfile.open(volume.path) as archive:
        assert archive.extractfile("etc/hostname").read() == b"web01\n"
    with open_volume(volume, writable=False, openers=[opener]) as files:
        assert sorted(files.listdir("/etc")) == ["escape", "hostname"]


def test_an_absolute_symlink_is_followed_inside_the_volume_only(volume):
    """/etc/escape -> /etc/shadow is the guest's /etc/shadow, never this server's."""
    host_shadow = Path("/etc/shadow").read_bytes()
    with open_volume(volume, writable=True, openers=[TemplateOpener()]) as files:
        files.write("/etc/escape", b"guest\n")
    assert Path("/etc/shadow").read_bytes() == host_shadow
    with tarfile.open(volume.path) as archive:
        assert archive.extractfile("etc/shadow").read() == b"guest\n"
        assert archive.getmember("etc/escape").issym()


def test_a_member_outside_the_archive_root_is_refused(tmp_path):
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as archive:
        add(archive, "../outside", b"x")
    with pytest.raises(DriverError, match="cannot unpack"):
        TemplateOpener().open(VolumeRef(path=str(path), format="tar"), writable=False)
    assert not (tmp_path / "outside").exists()


def test_other_formats_and_broken_archives_are_refused(tmp_path, volume):
    assert "not raw" in TemplateOpener().can_open(VolumeRef(path=volume.path, format="raw"))
    broken = tmp_path / "broken.tar"
    broken.write_bytes(b"not an archive")
    with pytest.raises(DriverError, match="cannot unpack"):
        TemplateOpener().open(VolumeRef(path=str(broken), format="tar"), writable=False)


def test_the_plugin_host_finds_the_opener():
    host = PluginHost().load(allow="none-of-them")
    host.register(plugin, name="under-test")
    try:
        assert "template" in [record.name for record in host.volume_openers()]
    finally:
        host.unregister("under-test")
