"""Encompass on VMware vSphere: the ``esx`` platform (VMs of a vCenter or ESX host) and the
``esx`` storage driver (VMDKs on a datastore), through pyvmomi."""
