"""The uplink service: connections to the remote server, phase by phase."""
