"""The built-in customization item types: file, regexp, bootscript, delete, cloud-init, service,
network, kernel."""
