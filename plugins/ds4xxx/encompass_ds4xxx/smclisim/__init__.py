"""The SMcli simulator: IBM DS Storage Manager's command line over tgt, for tests and the lab
(``SMcli`` in the plugin's tests, :mod:`..lab_peer`). It is not IBM's SMcli; see the README."""
