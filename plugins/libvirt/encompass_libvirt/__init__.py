"""Encompass plugin for Xen and KVM/QEMU hypervisors, through libvirt-python."""
