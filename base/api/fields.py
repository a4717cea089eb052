"""Serializer pieces shared by the apps."""

from rest_framework import serializers

__all__ = ["QuotasSerializer", "StrictUUIDField"]


def _quota(dimension: str):
    return serializers.IntegerField(source=f"quota_{dimension}", min_value=0,
                                    max_value=2**31 - 1, required=False)


class QuotasSerializer(serializers.Serializer):
    """``{"vcpus": 8, ...}`` read from and written to ``quota_<dimension>`` columns."""

    vcpus = _quota("vcpus")
    memory_mb = _quota("memory_mb")
    storage_gb = _quota("storage_gb")
    vms = _quota("vms")
    networks = _quota("networks")
    snapshots = _quota("snapshots")


class StrictUUIDField(serializers.UUIDField):
    """A UUID given as a string; DRF would also take an integer and turn 7 into a UUID."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)
