"""OVF and OVA (DMTF DSP0243): what ``encompass export`` writes and ``encompass import`` reads.

- :mod:`.safexml`: parsing descriptors that strangers wrote (no DTD, no entities).
- :mod:`.names`: the XML namespaces and the CIM resource types a descriptor uses.
- :mod:`.metadata`: the Encompass section (an image's documents, secrets left out).
- :mod:`.writer`: our descriptor; :mod:`.reader`: any descriptor, ours or another tool's.
- :mod:`.archive`: the OVA itself (a USTAR file), its manifest and its digests.
- :mod:`.vmdk`: disks as stream-optimized VMDK, made and checked with ``qemu-img``.
"""
