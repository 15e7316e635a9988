"""A template Encompass plugin."""
