"""Encompass storage pools on IBM DS4000-series subsystems, through SMcli."""
