"""Form pieces shared by both portals: Bootstrap rendering with errors next to each field,
and the translation of a service's refusal into form errors.

Forms here only parse input (types, required fields). Every rule lives in the service
that the API calls too; what it refuses comes back through ``add_service_errors``.
"""

from collections.abc import Iterable
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.forms.boundfield import BoundField

from base.errors import ServiceError

__all__ = ["ListFilterForm", "PortalForm", "PortalFormMixin", "ServiceModelForm",
           "add_service_errors", "error_messages"]

# Names of quota dimensions in errors that no field of the form shows (the quota's
# ``plans.models.QuotaDimension`` labels; base cannot import plans).
_FIELD_LABELS = {"vcpus": "vCPUs", "memory_mb": "Memory (MB)", "storage_gb": "Storage (GB)",
                 "vms": "VMs", "networks": "Networks", "snapshots": "Snapshots"}

_CHECK_WIDGETS = (forms.CheckboxInput, forms.RadioSelect, forms.CheckboxSelectMultiple)


class PortalBoundField(BoundField):
    """Adds Bootstrap's classes; Django already links errors and help by aria-describedby."""

    def build_widget_attrs(self, attrs, widget=None):
        attrs = super().build_widget_attrs(attrs, widget)
        widget = widget or self.field.widget
        if isinstance(widget, _CHECK_WIDGETS):
            css = "form-check-input"
        elif isinstance(widget, forms.Select | forms.SelectMultiple):
            css = "form-select"
        else:
            css = "form-control"
        if self.errors:
            css += " is-invalid"
        # Classes the form gave the widget (e.g. ``w-auto``) stay.
        given = " ".join(filter(None, [widget.attrs.get("class"), attrs.get("class")]))
        attrs["class"] = f"{given} {css}".strip()
        return attrs


class PortalFormMixin:
    """Renders with the portal's templates: label, control, help and errors per field."""

    template_name = "portal/forms/form.html"
    bound_field_class = PortalBoundField


class PortalForm(PortalFormMixin, forms.Form):
    pass


class ListFilterForm(PortalForm):
    """The filters of a list (``?state=running&subscription=…``). Every field is
    optional; a value that does not parse is ignored rather than refused.

    ``lookups`` maps each field to the queryset lookup it filters on.
    """

    lookups: dict[str, str] = {}

    def apply(self, queryset):
        self.is_valid()
        for name, lookup in self.lookups.items():
            value = self.cleaned_data.get(name)
            if value not in (None, ""):
                queryset = queryset.filter(**{lookup: value})
        return queryset

    def value(self, name: str):
        """The parsed value of one filter, or None."""
        self.is_valid()
        return self.cleaned_data.get(name) or None

    @property
    def active(self) -> bool:
        """Whether any filter is set (an empty list then says so, not "nothing yet")."""
        return any(self.data.get(name) for name in self.fields)


class ServiceModelForm(PortalFormMixin, forms.ModelForm):
    """A ModelForm that only parses input.

    The service that saves the object validates it (``full_clean`` and its own rules),
    so the form skips ModelForm's instance validation: one rule, one place. The instance
    given to the form is left untouched; the service receives ``cleaned_data``.
    """

    def _post_clean(self):
        pass

    def changed_fields(self) -> dict[str, Any]:
        """The cleaned values of the model's own (not many-to-many) fields."""
        many = {f.name for f in self._meta.model._meta.many_to_many}
        return {name: value for name, value in self.cleaned_data.items() if name not in many}


def _as_text(message: Any) -> str:
    if isinstance(message, dict) and {"requested", "used", "limit"} <= message.keys():
        left = max(0, message["limit"] - message["used"])
        return (f"Asks for {message['requested']:,} but only {left:,} of "
                f"{message['limit']:,} {'is' if left == 1 else 'are'} left.")
    if isinstance(message, dict):
        return ", ".join(f"{key} {value}" for key, value in message.items())
    return str(message)


def error_messages(messages: Any) -> list[str]:
    if isinstance(messages, str | dict) or not isinstance(messages, Iterable):
        messages = [messages]
    return [_as_text(m) for m in messages]


def add_service_errors(form: forms.BaseForm, exc: ServiceError | ValidationError) -> None:
    """Put what a service refused on the form: each field's messages next to the field,
    the rest (and the service's summary) at the top.

    A form whose fields are named apart from the service's (a VM's ``disk_gb`` is the
    quota's ``storage_gb``) says so in ``service_fields``.
    """
    aliases = getattr(form, "service_fields", {})
    if isinstance(exc, ServiceError):
        errors, summary = exc.errors, exc.detail
    elif hasattr(exc, "error_dict"):
        errors, summary = exc.message_dict, ""
    else:
        errors, summary = {NON_FIELD_ERRORS: exc.messages}, ""
    shown: set[str] = set()
    for field, messages in errors.items():
        field = aliases.get(field, field)
        texts = error_messages(messages)
        if field in form.fields:
            form.add_error(field, texts)
        else:
            label = "" if field in (NON_FIELD_ERRORS, "non_field_errors") else (
                _FIELD_LABELS.get(field, field.replace("_", " ").capitalize()) + ": ")
            form.add_error(None, [label + text for text in texts])
        shown.update(texts)
    if summary and summary not in shown:
        form.add_error(None, summary)
