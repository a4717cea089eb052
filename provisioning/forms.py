"""Forms of the tenant's resources and of the job lists. They parse input;
``provisioning.resources`` and the models' own validation decide (sizes, CIDRs, quota,
states)."""

from django import forms
from django.db.models import QuerySet

from base.web.forms import ListFilterForm, PortalForm
from base.web.widgets import SearchPicker
from fabric.models import Stamp, Template
from plans.models import Subscription, SubscriptionState
from provisioning import sizing
from provisioning.engine import registered
from provisioning.models import JobState, Network, NetworkState, VmState
from provisioning.resources import VmSpec
from tenants.models import Tenant

__all__ = ["CheckpointForm", "JobFilterForm", "NetworkFilterForm", "NetworkForm",
           "ProviderJobFilterForm", "ResizeForm", "VmFilterForm",
           "VmForm"]


# --- Tenant resources -----------------------------------------------------------------

def _live_subscriptions(tenant) -> QuerySet:
    """The tenant's subscriptions, with their plans (a choice's label names its plan)."""
    return (Subscription.objects.filter(tenant=tenant).exclude(state=SubscriptionState.DELETED)
            .select_related("plan").order_by("name"))


class _NetworkChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, network):
        return f"{network.name} · {network.cidr}"


class _TemplateChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, template):
        return f"{template.os} ({template.name})"


class VmForm(PortalForm):
    """A new VM in one subscription: only its plan's images and its networks that are ready
    or being made (a VM on one of those waits for it)."""

    name = forms.CharField(max_length=63, help_text="Unique in the subscription, e.g. web-1.")
    template = _TemplateChoiceField(queryset=Template.objects.none(), empty_label=None,
                                    label="Image")
    network = _NetworkChoiceField(queryset=Network.objects.none(), empty_label=None)
    vcpus = forms.IntegerField(label="vCPUs", min_value=1)
    memory_mb = forms.IntegerField(label="Memory (MB)", min_value=1,
                                   widget=forms.NumberInput(attrs={"step": 256}))
    disk_gb = forms.IntegerField(label="Disk (GB)", min_value=1)

    fieldsets = [("Machine", ["name", "template", "network"]),
                 ("Size", ["vcpus", "memory_mb", "disk_gb"])]
    # The quota calls a VM's disk "storage".
    service_fields = {"storage_gb": "disk_gb"}

    def __init__(self, *args, subscription: Subscription, **kwargs):
        super().__init__(*args, **kwargs)
        plan = subscription.plan
        self.templates = list(plan.templates.order_by("os", "name"))
        self.fields["template"].queryset = plan.templates.order_by("os", "name")
        self.fields["network"].queryset = subscription.networks.filter(
            state__in=[NetworkState.READY, NetworkState.PROVISIONING]).order_by(
            "-is_default", "name")
        first = self.templates[0] if self.templates else None
        if first is not None:
            self.initial.setdefault("template", first.pk)
            self.initial.setdefault("vcpus", first.min_vcpus)
            self.initial.setdefault("memory_mb", first.min_memory_mb)
            self.initial.setdefault("disk_gb", first.min_disk_gb)
        # The browser's bounds, before an image is chosen; the service checks the chosen
        # image's own.
        for bound in sizing.form_bounds(self.templates, plan):
            field = self.fields[bound.field]
            field.widget.attrs.update(min=bound.least, max=bound.most)
            field.help_text = f"At most {bound.most:,} in this plan."

    def spec(self) -> VmSpec:
        data = self.cleaned_data
        return VmSpec(name=data["name"], template_id=data["template"].pk, vcpus=data["vcpus"],
                      memory_mb=data["memory_mb"], disk_gb=data["disk_gb"],
                      network_id=data["network"].pk)


class ResizeForm(PortalForm):
    vcpus = forms.IntegerField(label="vCPUs", min_value=1)
    memory_mb = forms.IntegerField(label="Memory (MB)", min_value=1,
                                   widget=forms.NumberInput(attrs={"step": 256}))

    def __init__(self, *args, vm, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial.setdefault("vcpus", vm.vcpus)
        self.initial.setdefault("memory_mb", vm.memory_mb)
        for bound in sizing.size_bounds(vm.template, vm.subscription.plan, disk=False):
            self.fields[bound.field].widget.attrs["max"] = bound.most


class CheckpointForm(PortalForm):
    name = forms.CharField(max_length=63, label="Checkpoint name",
                           help_text="E.g. “before upgrade”.")


# Where new networks and VMs can be asked for (a provisioning one queues them).
TAKES_NEW_WORK = (SubscriptionState.ACTIVE, SubscriptionState.PROVISIONING)


class NetworkForm(PortalForm):
    subscription = forms.ModelChoiceField(queryset=Subscription.objects.none(),
                                          empty_label=None)
    name = forms.CharField(max_length=63)
    cidr = forms.CharField(label="CIDR", max_length=43,
                           help_text="A private IPv4 range from /16 to /29, e.g. 10.2.0.0/24.")

    def __init__(self, *args, tenant: Tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["subscription"].queryset = _live_subscriptions(tenant).filter(
            state__in=TAKES_NEW_WORK)


# --- Filters of the lists -------------------------------------------------------------

class VmFilterForm(ListFilterForm):
    subscription = forms.ModelChoiceField(queryset=Subscription.objects.none(), required=False,
                                          empty_label="All subscriptions")
    state = forms.ChoiceField(required=False, choices=[("", "All states"), *(
        c for c in VmState.choices if c[0] != VmState.DELETED)])
    network = _NetworkChoiceField(queryset=Network.objects.none(), required=False,
                                  empty_label="All networks")
    lookups = {"subscription": "subscription", "state": "state", "network": "network"}

    def __init__(self, *args, tenant: Tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["subscription"].queryset = _live_subscriptions(tenant)
        self.fields["network"].queryset = (
            Network.objects.filter(subscription__tenant=tenant)
            .exclude(state=NetworkState.DELETED).order_by("name", "cidr"))


class NetworkFilterForm(ListFilterForm):
    subscription = forms.ModelChoiceField(queryset=Subscription.objects.none(), required=False,
                                          empty_label="All subscriptions")
    lookups = {"subscription": "subscription"}

    def __init__(self, *args, tenant: Tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["subscription"].queryset = _live_subscriptions(tenant)


def _runbook_choices():
    return [("", "All runbooks"), *((name, name) for name in sorted(registered()))]


class JobFilterForm(ListFilterForm):
    state = forms.ChoiceField(required=False, choices=[("", "All states"), *JobState.choices])
    subscription = forms.ModelChoiceField(queryset=Subscription.objects.none(), required=False,
                                          empty_label="All subscriptions")
    lookups = {"state": "state", "subscription": "subscription"}

    def __init__(self, *args, tenant: Tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["subscription"].queryset = _live_subscriptions(tenant)


class ProviderJobFilterForm(ListFilterForm):
    state = forms.ChoiceField(required=False, choices=[("", "All states"), *JobState.choices])
    runbook = forms.ChoiceField(required=False, choices=_runbook_choices)
    stamp = forms.ModelChoiceField(queryset=Stamp.objects.order_by("name"), required=False,
                                   empty_label="All stamps")
    tenant = forms.ModelChoiceField(
        queryset=Tenant.objects.order_by("name"), required=False, empty_label="All tenants",
        widget=SearchPicker("provider:tenant_pick", what="a tenant", multiple=False,
                            empty_label="All tenants"))
    lookups = {"state": "state", "runbook": "runbook", "stamp": "stamp", "tenant": "tenant"}
