from rest_framework import serializers

from base.api.fields import FieldsBuiltOnce
from base.models import AuditEvent


class _Plain(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "uid", "at", "event", "object_type", "object_id"]
        read_only_fields = ["at"]


class _Once(FieldsBuiltOnce, _Plain):
    class Meta(_Plain.Meta):
        pass


def test_fields_built_once_are_the_fields_drf_builds_and_each_instance_has_its_own():
    # given a serializer built once and the same serializer as DRF builds it every time
    first, second = _Once(data={"event": "a.b"}), _Once(data={"event": "c"})
    # then each has the fields DRF would build, with the same options
    assert repr(first).replace("_Once", "_Plain") == repr(_Plain(data={"event": "a.b"}))
    # and each instance's fields are its own, bound to it: validating one leaves the other
    assert first.fields["event"] is not second.fields["event"]
    assert first.fields["event"].parent is first
    assert second.fields["event"].parent is second
    assert not first.is_valid()
    assert set(first.errors) == {"object_type", "object_id"}
    assert second.is_valid() is False and second.fields["event"].parent is second
