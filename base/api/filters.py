"""Query filters shared by the APIs."""

from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

__all__ = ["UtcDateTimeFilter"]


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, turned into UTC before it reaches the database: an offset the
    database refuses (``-23:23``) or a time out of range once in UTC is a 400, never a
    failed query."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except (OverflowError, ValueError):
            raise forms.ValidationError("This time is out of range.", code="invalid") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField
