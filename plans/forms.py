"""Forms of plans, add-ons and subscriptions. They parse input; ``plans.services``
decides (quotas, DR stamps, templates of the plan's cloud, states)."""

from django import forms

from base.web.forms import PortalForm, ServiceModelForm
from base.web.widgets import SearchPicker
from fabric.models import Template
from plans.models import AddOn, Plan

__all__ = ["AddOnChoiceForm", "AddOnForm", "PlanChoiceForm", "PlanForm", "SubscribeForm"]

QUOTA_FIELDS = ["quota_vcpus", "quota_memory_mb", "quota_storage_gb", "quota_vms",
                "quota_networks", "quota_snapshots"]
_QUOTA_LABELS = {"quota_vcpus": "vCPUs", "quota_memory_mb": "Memory (MB)",
                 "quota_storage_gb": "Storage (GB)", "quota_vms": "VMs",
                 "quota_networks": "Networks", "quota_snapshots": "Snapshots"}


class SubscribeForm(PortalForm):
    name = forms.CharField(max_length=100, required=False,
                           help_text="To tell your subscriptions apart, e.g. “production”. "
                                     "Empty: the plan's name.")


class AddOnChoiceForm(PortalForm):
    addon = forms.UUIDField()


class PlanChoiceForm(PortalForm):
    plan = forms.UUIDField()


class PlanForm(ServiceModelForm):
    fieldsets = [
        ("Plan", ["name", "description", "state", "cloud", "price_monthly",
                  "meter_stopped_vms", "max_subscriptions"]),
        ("Quotas per subscription", QUOTA_FIELDS),
        ("Largest VM", ["max_vm_vcpus", "max_vm_memory_mb", "max_vm_disk_gb"]),
        ("Offer", ["templates", "addons", "offered_to"]),
    ]

    class Meta:
        model = Plan
        fields = ["name", "description", "state", "cloud", "price_monthly", "meter_stopped_vms",
                  "max_subscriptions", *QUOTA_FIELDS, "max_vm_vcpus", "max_vm_memory_mb",
                  "max_vm_disk_gb", "templates", "addons", "offered_to"]
        labels = {**_QUOTA_LABELS, "max_vm_vcpus": "vCPUs", "max_vm_memory_mb": "Memory (MB)",
                  "max_vm_disk_gb": "Disk (GB)", "price_monthly": "Price a month",
                  "meter_stopped_vms": "Meter stopped VMs",
                  "offered_to": "Offered to (while private)", "addons": "Add-ons"}
        widgets = {"description": forms.Textarea(attrs={"rows": 2}),
                   "templates": forms.CheckboxSelectMultiple,
                   "addons": forms.CheckboxSelectMultiple,
                   "offered_to": SearchPicker("provider:tenant_pick", what="a tenant")}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["templates"].queryset = Template.objects.select_related("cloud")
        self.fields["addons"].queryset = AddOn.objects.all()

    def relations(self) -> dict:
        return {name: self.cleaned_data[name] for name in ("templates", "addons", "offered_to")}


class AddOnForm(ServiceModelForm):
    fieldsets = [
        ("Add-on", ["name", "description", "kind", "price_monthly"]),
        ("Extra quota (quota add-ons)", QUOTA_FIELDS),
        ("Disaster recovery (DR add-ons)", ["recovery_cloud", "rpo_seconds"]),
    ]

    class Meta:
        model = AddOn
        fields = ["name", "description", "kind", "price_monthly", *QUOTA_FIELDS,
                  "recovery_cloud", "rpo_seconds"]
        labels = {**_QUOTA_LABELS, "price_monthly": "Price a month",
                  "rpo_seconds": "Recovery point objective (seconds)"}
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}
