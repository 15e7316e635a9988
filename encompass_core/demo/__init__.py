"""``encompass demo``: a tiny bootable master built from Debian packages, cloned, customized,
deployed and booted — the whole of Encompass in one command."""
