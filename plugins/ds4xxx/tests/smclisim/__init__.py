"""The SMcli simulator (run it as tests/SMcli)."""
