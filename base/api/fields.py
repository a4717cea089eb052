"""Serializer pieces shared by the apps."""

import copy

from rest_framework import serializers

__all__ = ["FieldsBuiltOnce", "QuotasSerializer", "StrictUUIDField"]


class FieldsBuiltOnce:
    """A ``ModelSerializer`` that reads its model and builds its fields once per class,
    not once per instance: each instance gets a copy of them (as DRF copies declared
    fields). For serializers whose fields depend on nothing but the class (not on the
    context, the instance or the request) that the API builds on every call of a hot
    endpoint: building them is most of what DRF spends on a small write."""

    _built: dict[type, dict] = {}

    def get_fields(self):
        built = FieldsBuiltOnce._built.get(type(self))
        if built is None:
            built = FieldsBuiltOnce._built[type(self)] = super().get_fields()
        return copy.deepcopy(built)


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
