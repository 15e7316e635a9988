"""Windows customization for Encompass: the ``sysprep`` item type, which writes the answer file
sysprep reads (unattend.xml, sysprep.inf, SetupComplete.cmd), and the ``windows`` presets."""
