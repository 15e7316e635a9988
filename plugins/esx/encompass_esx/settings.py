"""The settings of esx pools and platforms: one form for both sides (a vCenter or an ESX host).

``[platforms.NAME]`` and ``[pools.NAME]`` tables name the same server the same way; a pool adds
the ``datastore`` its VMDKs live on, a platform where the VMs it creates go.
"""

from __future__ import annotations

from encompass_core.settings import Setting

#: How to reach and trust the server: shared by pools and platforms.
CONNECTION = (
    Setting("host", str, help="the vCenter or ESX host's name or address", required=True),
    Setting("port", int, 443, "the HTTPS port of its SDK", minimum=1),
    Setting("user", str, help="the user to log in as (administrator@vsphere.local, root)",
            required=True),
    Setting("password", str, secret=True, required=True, help="the user's password"),
    Setting("verify_tls", bool, True, "check the server's certificate; false only for a lab "
                                      "server whose certificate cannot be trusted otherwise"),
    Setting("ca_file", str, help="a PEM file of the CA (or the self-signed certificate) to trust"),
    Setting("datacenter", str, help="the datacenter to use where the server has several"),
    Setting("task_timeout", int, 1800, "seconds a vSphere task may take before it is given up",
            minimum=1),
    Setting("timeout", int, 60, "seconds one request to the server may take", minimum=1),
)

#: A pool of VMDKs on one datastore.
POOL = (
    *CONNECTION,
    Setting("datastore", str, help="the datastore holding the pool's VMDKs", required=True),
    Setting("folder", str, "encompass", "the datastore folder the pool's VMDKs live under"),
    Setting("concurrency", int, 2, "clones made in this pool at once, at the most", minimum=1),
)

#: A platform: the VMs of a vCenter or ESX host.
PLATFORM = (
    *CONNECTION,
    Setting("datastore", str, help="where the VMs it creates keep their files (default: the "
                                   "first datastore of their host)"),
    Setting("host_system", str, help="the host new VMs start on (default: the first host)"),
    Setting("network", str, help="the network new VMs are connected to (default: none)"),
    Setting("guest_id", str, "otherLinux64Guest", "the guest OS type of the VMs it creates"),
    Setting("guest_customization", bool, True, "hand a clone's hostname and addresses to a "
            "vSphere customization spec (needs VMware Tools in the guest); false: the core "
            "writes them into the clone's files"),
)
