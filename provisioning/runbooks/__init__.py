"""The runbooks Buffet ships, registered with the engine on import."""

from provisioning.runbooks import network, subscription, vm

__all__ = ["network", "subscription", "vm"]
