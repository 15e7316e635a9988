"""NAS pools on an NFS export for Encompass: disk files and directory trees on an export,
reached through libnfs (``url = "nfs://HOST/EXPORT"``) or a mount of it (``path``)."""
