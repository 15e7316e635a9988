"""One module per scenario. Operations reach drivers only through the plugin contract and
metadata only through the store."""
