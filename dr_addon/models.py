"""DR add-on set-up: how the provider maps primary networks to recovery networks."""

import uuid

from django.db import models

__all__ = ["NetworkMapping"]


class NetworkMapping(models.Model):
    """A provider network of the plan's cloud and its counterpart on the recovery cloud."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    addon = models.ForeignKey("plans.AddOn", on_delete=models.CASCADE,
                              related_name="network_mappings")
    primary_network = models.CharField(max_length=100)
    recovery_network = models.CharField(max_length=100)

    class Meta:
        ordering = ["addon", "primary_network"]
        constraints = [
            models.UniqueConstraint(fields=["addon", "primary_network"],
                                    name="network_mapping_once_per_primary",
                                    violation_error_message="This primary network is already "
                                                            "mapped for the add-on."),
        ]

    def __str__(self):
        return f"{self.primary_network} -> {self.recovery_network}"
