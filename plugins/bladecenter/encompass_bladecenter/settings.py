"""The settings of a ``[platforms.NAME] driver = "bladecenter"`` table: how to reach one
chassis' Management Module over SNMP, and how its blades reach the SAN."""

from __future__ import annotations

from encompass_core.settings import Setting

PLATFORM = (
    Setting("address", str, required=True, help="the Management Module's address (host name or IP)"),
    Setting("port", int, 161, "the UDP port of its SNMP agent", minimum=1),
    Setting("version", str, "2c", "the SNMP version: 2c (community) or 3 (user, passwords)",
            choices=("2c", "3")),
    Setting("community", str, secret=True, help="with version 2c: the read-write community"),
    Setting("user", str, help="with version 3: the SNMPv3 user"),
    Setting("auth_password", str, secret=True, help="with version 3: the user's authentication password"),
    Setting("priv_password", str, secret=True, help="with version 3: the user's privacy password "
                                                    "(none: authentication without privacy)"),
    Setting("auth_protocol", str, "SHA", "with version 3: MD5 or SHA", choices=("MD5", "SHA")),
    Setting("priv_protocol", str, "AES", "with version 3: DES or AES", choices=("DES", "AES")),
    Setting("timeout", float, 5.0, "seconds to wait for one SNMP answer", minimum=0.1),
    Setting("retries", int, 1, "times a request is sent again when no answer comes", minimum=0),
    Setting("iscsi_initiator_format", str,
            help="the iSCSI initiator name each blade's boot firmware uses, made from {slot}, "
                 "{name}, {serial} and {uuid} (the MM does not report it); none: blades reach "
                 "the SAN only through the FC WWNs the MM reports"),
    Setting("console_log", str, help="where each blade's serial console is captured (a "
            "serial-over-LAN logger such as conserver), a path with {slot} and {name}"),
    Setting("memory_mib", int, 512, "the memory of each blade, for hardware-profile fits (the "
            "tables the driver reads do not report it)", minimum=1),
    Setting("cpus", int, 1, "the processors of each blade, for hardware-profile fits", minimum=1),
    Setting("power_timeout", float, 60.0, "seconds a blade may take to reach the power state asked",
            minimum=1),
)
