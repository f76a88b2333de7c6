"""Edge join toolkit: the hub (control plane) and the device agent. Does not import install/ or addon."""
