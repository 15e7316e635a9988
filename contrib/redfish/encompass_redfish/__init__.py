"""The encompass-redfish plugin for Encompass (see README.md)."""
