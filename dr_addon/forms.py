"""Forms of the DR pages: the provider's filters of every protection, and a network
mapping. They only parse input; ``dr_addon.services`` decides what is allowed."""

from django import forms

from base.web.forms import ListFilterForm, ServiceModelForm
from dr_addon.models import ActiveSite, NetworkMapping, ProtectionState
from plans.models import AddOn, AddOnKind

__all__ = ["MappingFilterForm", "NetworkMappingForm", "ProtectionFilterForm"]


def _dr_addons():
    return AddOn.objects.filter(kind=AddOnKind.DR).select_related("recovery_cloud").order_by("name")


class ProtectionFilterForm(ListFilterForm):
    state = forms.ChoiceField(required=False, label="State",
                              choices=[("", "All states"), *ProtectionState.choices])
    active_site = forms.ChoiceField(required=False, label="Active site",
                                    choices=[("", "Either site"), *ActiveSite.choices])
    lag = forms.TypedChoiceField(required=False, label="Lag", empty_value=None,
                                 coerce=lambda value: value == "past",
                                 choices=[("", "Any lag"), ("past", "Past the RPO target"),
                                          ("within", "Within the RPO target")])
    addon = forms.ModelChoiceField(queryset=AddOn.objects.none(), required=False,
                                   label="Add-on", empty_label="All DR add-ons")
    # ``past_target`` is annotated by the list (``presenters.past_target``).
    lookups = {"state": "state", "active_site": "active_site", "lag": "past_target",
               "addon": "addon"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["addon"].queryset = _dr_addons()


class MappingFilterForm(ListFilterForm):
    addon = forms.ModelChoiceField(queryset=AddOn.objects.none(), required=False,
                                   label="Add-on", empty_label="All DR add-ons")
    lookups = {"addon": "addon"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["addon"].queryset = _dr_addons()


class NetworkMappingForm(ServiceModelForm):
    """A provider network of the plans' cloud and its counterpart on the recovery cloud.

    The recovery networks each add-on can map to are listed under the field, so the
    provider does not have to guess what ``save_mapping`` will accept.
    """

    class Meta:
        model = NetworkMapping
        fields = ["addon", "primary_network", "recovery_network"]
        labels = {"addon": "DR add-on"}
        help_texts = {"primary_network": "A provider network of the clouds whose plans "
                                          "offer the add-on, e.g. “external”."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        addons = list(_dr_addons())
        self.fields["addon"].queryset = _dr_addons()
        self.fields["addon"].empty_label = "Choose a DR add-on"
        known = "; ".join(f"{a.name}: {', '.join(a.recovery_cloud.provider_networks) or 'none'}"
                          for a in addons)
        self.fields["recovery_network"].help_text = (
            f"A network of the add-on's recovery cloud ({known})." if known
            else "A network of the add-on's recovery cloud.")
