"""Built-in drivers, registered through the same hooks as external plugins."""
