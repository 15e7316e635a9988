"""Encompass on Intel AMT: the ``amt`` platform, PCs powered, booted and identified through
WS-Management (HTTP 16992 or HTTPS 16993, digest authentication)."""
