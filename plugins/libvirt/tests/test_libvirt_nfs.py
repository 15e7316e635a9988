"""A kvm machine takes a volume of an NFS pool as a libvirt NFS network disk (QEMU's NFS client,
NFSv3): what the definition says, that libvirt 9.0's schema takes it, and what is refused. A
domain booting from one is the ``encompass demo --pool nas`` scenario (tests/scenarios)."""

from __future__ import annotations

import shutil
import subprocess
import types
import xml.etree.ElementTree as ET

import pytest
from encompass_libvirt.definitions import _nfs_disk
from encompass_libvirt.domxml import kvm_domain_xml

from encompass_core.contracts import Attachment
from encompass_core.errors import DriverError

IMAGE = types.SimpleNamespace(name="web01")


def nfs_attachment(fmt: str = "raw", address: str = "127.0.0.1:/export/web01/vol0.raw") -> Attachment:
    return Attachment(index=0, kind="nfs", address=address, format=fmt, boot=True, lun=0,
                      details={"uid": 0, "gid": 0, "url": "nfs://127.0.0.1/export/web01/vol0.raw"})


def test_an_nfs_volume_is_a_network_disk_of_the_nfs_protocol(tmp_path):
    disk = _nfs_disk(IMAGE, nfs_attachment())
    xml = kvm_domain_xml("web01", 256, 1, [disk], None, None, "", tmp_path / "console.log", "x86_64",
                         None, domain_type="qemu")

    element = ET.fromstring(xml).find("devices/disk")
    source = element.find("source")
    assert element.get("type") == "network"
    assert (source.get("protocol"), source.get("name")) == ("nfs", "/export/web01/vol0.raw")
    # libvirt refuses a port for NFS (QEMU asks the portmapper); QEMU speaks as the files' owner.
    assert source.find("host").attrib == {"name": "127.0.0.1"}
    assert source.find("identity").attrib == {"user": "+0", "group": "+0"}
    if shutil.which("virt-xml-validate"):
        (tmp_path / "web01.xml").write_text(xml)
        checked = subprocess.run(["virt-xml-validate", str(tmp_path / "web01.xml"), "domain"],
                                 capture_output=True, text=True, check=False)
        assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize(("attachment", "said"), [
    (nfs_attachment("qcow2"), "QEMU cannot follow over NFS"),
    (nfs_attachment(address="nfs://127.0.0.1/export/web01/vol0.raw"), "not a SERVER:/export/path"),
])
def test_what_qemu_cannot_reach_over_nfs_is_refused_in_one_line(attachment, said):
    with pytest.raises(DriverError) as refused:
        _nfs_disk(IMAGE, attachment)
    assert said in str(refused.value) and "\n" not in str(refused.value)
