"""IBM BladeCenter: the blades of a chassis, driven through its Management Module's SNMP agent."""
