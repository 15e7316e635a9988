"""VMware's own OVF code judges an OVA that ``encompass export`` wrote: it is imported into vcsim
through pyvmomi the way ``govc import.ova`` does it — ``OvfManager.CreateImportSpec`` on the
descriptor (no error, no warning, the profile's CPUs and memory and the disk's capacity in the
spec), ``ImportVApp``, the disk uploaded through the ``HttpNfcLease`` — and the VM is then in
the inventory with its disk. (vcsim keeps no bytes a lease receives: the disk's content is
checked by the core's round-trip test, not here.)"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ENCOMPASS = Path(sys.executable).with_name("encompass")
CAPACITY = 64 << 20


def encompass(home: Path, *args: object) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCOMPASS_")}
    env.update(ENCOMPASS_HOME=str(home), XDG_CACHE_HOME=str(home.parent / "xdg-cache"))
    done = subprocess.run([str(ENCOMPASS), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    """An OVA of master 'appliance' (2 CPUs, 512 MiB, a 64 MiB ext4 disk) written by the CLI."""
    home = tmp_path / "home"
    encompass(home, "init")
    disk = tmp_path / "disk.raw"
    subprocess.run(["truncate", "-s", str(CAPACITY), str(disk)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(disk)], check=True)
    encompass(home, "master", "import", "appliance", disk, "--hw", "cpus=2", "--hw", "memory=512M",
              "--sw", "os=debian", "--sw", "version=12")
    ova = tmp_path / "appliance.ova"
    encompass(home, "export", "appliance", ova)
    return ova


def by_name(entities, name: str):
    return next(entity for entity in entities if entity.name == name)


def test_vmware_imports_an_exported_ova(platform, vcsim, exported: Path, request):
    from pyVmomi import vim

    with tarfile.open(exported) as archive:
        descriptor = archive.extractfile("appliance.ovf").read().decode()
        vmdk_info = archive.getmember("appliance-disk0.vmdk")
        vmdk = archive.extractfile(vmdk_info).read()
    content = platform.session.content
    datacenter = by_name(content.rootFolder.childEntity, "DC0")
    compute = by_name(datacenter.hostFolder.childEntity, "DC0_H0")
    datastore = by_name(datacenter.datastore, "LocalDS_0")
    name = "ova-" + request.node.name[5:25].replace("_", "-")

    params = vim.OvfManager.CreateImportSpecParams(entityName=name, diskProvisioning="thin")
    result = content.ovfManager.CreateImportSpec(descriptor, compute.resourcePool, datastore, params)

    assert not result.error, [e.msg for e in result.error]
    assert not result.warning, [w.msg for w in result.warning]
    config = result.importSpec.configSpec
    assert (config.numCPUs, config.memoryMB) == (2, 512)
    disks = [change.device for change in config.deviceChange
             if isinstance(change.device, vim.vm.device.VirtualDisk)]
    assert len(disks) == 1 and disks[0].capacityInKB == CAPACITY // 1024
    (item,) = result.fileItem
    assert item.path == "appliance-disk0.vmdk" and item.size == vmdk_info.size

    lease = compute.resourcePool.ImportVApp(result.importSpec, datacenter.vmFolder, compute.host[0])
    deadline = time.monotonic() + 60
    while lease.state == vim.HttpNfcLease.State.initializing:
        assert time.monotonic() < deadline, "the lease never became ready"
        time.sleep(0.2)
    assert lease.state == vim.HttpNfcLease.State.ready, lease.error
    info = lease.info  # read before HttpNfcLeaseComplete, which ends it
    (device,) = [u for u in info.deviceUrl if u.importKey == item.deviceId]
    url = urlsplit(device.url.replace("*", vcsim.host))
    connection = http.client.HTTPSConnection(url.hostname, url.port or vcsim.port,
                                             context=platform.session.ssl_context())
    # What govc does for a disk: POST the stream-optimized VMDK (PUT when the file is created).
    connection.request("PUT" if item.create else "POST", url.path + (f"?{url.query}" if url.query else ""),
                       body=vmdk, headers={"Content-Type": "application/x-vnd.vmware-streamVmdk",
                                           "Content-Length": str(len(vmdk)),
                                           "Cookie": platform.session.session_cookie()})
    response = connection.getresponse()
    response.read()
    connection.close()
    assert response.status in (200, 201), response.status
    lease.HttpNfcLeaseProgress(100)
    lease.HttpNfcLeaseComplete()

    machine = next(m for m in platform.discover() if m.name == name)
    try:
        assert (machine.hardware.cpus, machine.hardware.memory_mib) == (2, 512)
        assert len(machine.disks) == 1 and machine.disks[0].startswith("[LocalDS_0] ")
    finally:
        platform.destroy_machine(machine)
