"""Customization: the built-in item types and safe access to files inside volumes."""
