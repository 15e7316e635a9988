"""The encompass-template plugin for Encompass (see README.md)."""
