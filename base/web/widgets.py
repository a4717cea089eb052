"""Form widgets of the portals.

``SearchPicker`` chooses among more objects than a page can list (every tenant of a
provider): it renders only the chosen ones, checked, and a search box whose answers
(the first ``PICK_LIMIT`` matches, from the view at ``search_url``) join them as
options to tick. The field still validates what is posted against its whole queryset.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.urls import reverse

__all__ = ["PICK_LIMIT", "SearchPicker"]

PICK_LIMIT = 20


class SearchPicker(forms.CheckboxSelectMultiple):
    """A model choice (``multiple``: several, as checkboxes; else one, as radios) whose
    options are what is chosen plus what a search finds."""

    template_name = "portal/widgets/search_picker.html"
    option_template_name = "django/forms/widgets/checkbox_option.html"

    def __init__(self, search_url_name: str, *, what: str, multiple: bool = True,
                 empty_label: str = "", attrs=None):
        super().__init__(attrs)
        self.search_url_name, self.what, self.empty_label = search_url_name, what, empty_label
        self.allow_multiple_selected = multiple
        self.input_type = "checkbox" if multiple else "radio"

    def value_from_datadict(self, data, files, name):
        if self.allow_multiple_selected:
            return super().value_from_datadict(data, files, name)
        return data.get(name)

    def use_required_attribute(self, initial):
        return False  # a choice may be nothing but a search away

    def optgroups(self, name, value, attrs=None):
        """Only the chosen objects: one query of the chosen ids, never the whole table."""
        ids = [v for v in value if v not in (None, "")]
        queryset = getattr(self.choices, "queryset", None)
        chosen = []
        if ids and queryset is not None:
            try:
                chosen = list(queryset.filter(pk__in=ids))
            except (ValidationError, ValueError):  # a value that is not an id: nothing
                chosen = []
        options = [self.create_option(name, str(obj.pk), str(obj), True, index,
                                      attrs=attrs) for index, obj in enumerate(chosen)]
        return [(None, options, 0)] if options else []

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["widget"].update(
            search_url=reverse(self.search_url_name), what=self.what,
            input_type=self.input_type, multiple=self.allow_multiple_selected,
            empty_label=self.empty_label)
        return context
