"""The runbooks Buffet ships, registered with the engine on import, and the events
that trigger them (the explicit event table)."""

from provisioning.runbooks import network, subscription, vm
from provisioning.runbooks.subscription import decommission

__all__ = ["decommission", "network", "subscription", "vm"]
