"""Web UI of the tenant's resources: VMs with their power actions, resizing and
checkpoints, and networks. Every change goes through ``provisioning.resources``, the
same services the API calls; the pages only show what the services accept and refuse.

A page showing something in a transitional state (a VM starting, a network being
created) polls itself with htmx until it settles.
"""

import uuid
from functools import cached_property

from django.db.models import Count, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views import View
from django.views.generic import DetailView, FormView, TemplateView
from django_htmx.http import HttpResponseClientRedirect, HttpResponseClientRefresh

from base.web import ui
from base.web.views import (
    ListFormMixin,
    SearchListMixin,
    ServiceActionView,
    ServiceFormMixin,
    TenantPortalMixin,
)
from plans import quota
from plans.models import Subscription, SubscriptionState
from provisioning import lifecycle, presenters, resources, sizing
from provisioning.forms import (
    TAKES_NEW_WORK,
    CheckpointForm,
    NetworkFilterForm,
    NetworkForm,
    ResizeForm,
    VmFilterForm,
    VmForm,
)
from provisioning.models import (
    Job,
    JobState,
    Network,
    NetworkState,
    Snapshot,
    SnapshotState,
    VirtualMachine,
    VmState,
)
from provisioning.views.jobs import jobs_with_steps

__all__ = [
    "CheckpointCreateView",
    "CheckpointDeleteView",
    "CheckpointRestoreView",
    "NetworkDeleteView",
    "NetworkListView",
    "QuotaPreviewView",
    "VmCreateView",
    "VmDeleteView",
    "VmDetailView",
    "VmListView",
    "VmNewView",
    "VmPowerView",
    "VmResizeView",
    "commission_pending",
    "live_vm_count",
    "live_vm_counts",
]

# While one of these is on a page, the page polls until it settles.
VM_BUSY = frozenset({VmState.PROVISIONING, VmState.STARTING, VmState.STOPPING,
                     VmState.RESIZING, VmState.RESTORING, VmState.DELETING})
NETWORK_BUSY = frozenset({NetworkState.PROVISIONING, NetworkState.DELETING})
CHECKPOINT_BUSY = frozenset({SnapshotState.CREATING, SnapshotState.RESTORING,
                             SnapshotState.DELETING})
# The FSM transitions of a VM that the detail page offers as buttons.
VM_ACTIONS = ("start", "stop", "restart", "resize", "start_deleting")
VM_JOBS_SHOWN = 8


def live_vm_count() -> Count:
    """The VMs a subscription holds now (deleted ones are history)."""
    return Count("vms", filter=~Q(vms__state=VmState.DELETED), distinct=True)


def live_vm_counts(subscriptions) -> dict:
    """Subscription id -> the VMs it holds now, for these subscriptions only (one grouped
    query on the VMs' subscription index)."""
    from provisioning.models import VirtualMachine

    rows = (VirtualMachine.objects.filter(subscription__in=[s.pk for s in subscriptions])
            .exclude(state=VmState.DELETED).order_by().values("subscription_id")
            .annotate(n=Count("pk")).values_list("subscription_id", "n"))
    return dict(rows)


def _int(value) -> int:
    """A number the user is still typing: whatever does not parse counts as nothing."""
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _uuid_or_404(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise Http404("No such object.") from None


def _sizes(form) -> dict:
    """What the form holds now: what was typed, else the initial values."""
    source = form.data if form.is_bound else form.initial
    return {name: source.get(name) for name in ("template", "vcpus", "memory_mb", "disk_gb")}


def commission_pending(subscription) -> Job | None:
    """The job setting the subscription up on its stamp, unless it has succeeded: until
    it does, the subscription has no network and nothing can be created in it."""
    job = lifecycle.commission_job(subscription)
    return None if job is None or job.state == JobState.SUCCEEDED else job


def preview(subscription, templates, sizes, vm: VirtualMachine | None = None) -> dict:
    """The quota a new VM (or, with ``vm``, a resize) would use, and its size checks."""
    usage = quota.summary(subscription)
    vcpus, memory_mb = _int(sizes.get("vcpus")), _int(sizes.get("memory_mb"))
    if vm is not None:
        # A resize reserves only its growth (``resources.resize_vm``).
        template, disk_gb = vm.template, None
        old = sizing.VmSize.of(vm)
        requested = sizing.growth(sizing.resize_delta(
            old, old.resized(vcpus=vcpus, memory_mb=memory_mb)))
    else:
        chosen = str(sizes.get("template") or "")
        template = next((t for t in templates if str(t.pk) == chosen),
                        templates[0] if templates else None)
        disk_gb = _int(sizes.get("disk_gb"))
        requested = sizing.VmSize(vcpus, memory_mb, disk_gb).usage()
    bars = ui.request_bars(usage, requested)
    checks = ([] if template is None else
              presenters.size_checks(template, subscription.plan, vcpus=vcpus, memory_mb=memory_mb,
                             disk_gb=disk_gb))
    return {"bars": bars, "checks": checks, "template": template,
            "fits": not any(b.over for b in bars) and not any(c.problem for c in checks)}


class OperatorMixin(TenantPortalMixin):
    """Readers look; operators, admins and owners operate."""

    write_permission = "provisioning.operate"


class OperatorOnlyMixin(OperatorMixin):
    """A page that exists only to change something (a form): operators only."""

    permission_required = "provisioning.operate"


# --- VMs ------------------------------------------------------------------------------

class VmListView(TenantPortalMixin, SearchListMixin):
    section = "vms"
    template_name = "provisioning/vm_list.html"
    search_fields = ("name", "ip_address", "template__os", "template__name")
    filter_form_class = VmFilterForm

    def get_filter_form_kwargs(self):
        return {"tenant": self.tenant}

    def get_queryset(self):
        vms = (VirtualMachine.objects.exclude(state=VmState.DELETED).restrict(self.tenant)
               .select_related("subscription", "network", "template").order_by("-created_at"))
        return self.search(self.filter(vms))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["busy"] = any(vm.state in VM_BUSY for vm in context["page_obj"])
        return context


class VmNewView(OperatorOnlyMixin, TemplateView):
    """Which subscription the new VM goes into; straight to its form if there is one."""

    section = "vms"
    template_name = "provisioning/vm_new.html"

    def get(self, request, *args, **kwargs):
        subscriptions = list(Subscription.objects.filter(
            state__in=TAKES_NEW_WORK).restrict(self.tenant).select_related("plan")
            .order_by("name"))
        if len(subscriptions) == 1:
            return redirect("vm_create", subscriptions[0].pk)
        return self.render_to_response(self.get_context_data(subscriptions=subscriptions))


class SubscriptionFormMixin(OperatorOnlyMixin):
    """A form about one of the caller's subscriptions (``pk`` in the URL)."""

    @cached_property
    def subscription(self) -> Subscription:
        return get_object_or_404(
            Subscription.objects.exclude(state=SubscriptionState.DELETED).restrict(self.tenant)
            .select_related("plan"), pk=self.kwargs["pk"])


class VmCreateView(SubscriptionFormMixin, ServiceFormMixin, FormView):
    section = "vms"
    template_name = "provisioning/vm_form.html"
    form_class = VmForm
    success_message = "“{object.name}” is being created."

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "subscription": self.subscription}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = context["form"]
        context.update(subscription=self.subscription,
                       preview=preview(self.subscription, form.templates, _sizes(form)),
                       commission=commission_pending(self.subscription))
        return context

    def perform(self, form):
        vm, _job = resources.create_vm(self.subscription, form.spec(),
                                       acting_user=self.request.user)
        return vm

    def get_success_url(self):
        return reverse("vm_detail", args=[self.object.pk])


class QuotaPreviewView(SubscriptionFormMixin, View):
    """The htmx partial of the VM and resize forms: used + requested against the limit
    per dimension, recomputed as the user types."""

    def get(self, request, pk):
        subscription = self.subscription
        vm = None
        if vm_id := request.GET.get("vm"):
            vm = get_object_or_404(subscription.vms.exclude(state=VmState.DELETED)
                                   .select_related("template"), pk=_uuid_or_404(vm_id))
        templates = [] if vm else list(subscription.plan.templates.all())
        return TemplateResponse(request, "provisioning/quota_preview.html",
                                {"preview": preview(subscription, templates, request.GET, vm)})


class VmMixin(OperatorMixin):
    """One of the caller's live VMs (``pk`` in the URL)."""

    section = "vms"

    def vms(self):
        return (VirtualMachine.objects.exclude(state=VmState.DELETED).restrict(self.tenant)
                .select_related("subscription__plan", "network", "template"))

    @cached_property
    def vm(self) -> VirtualMachine:
        return get_object_or_404(self.vms(), pk=self.kwargs["pk"])


class VmDetailView(VmMixin, DetailView):
    """The VM, the buttons that make sense in its state, its checkpoints and jobs.

    While something is in flight the live part polls itself; once everything has
    settled, the poll reloads the page so the forms match the new state.
    """

    template_name = "provisioning/vm_detail.html"
    live_target = "vm-live"

    def get_object(self, queryset=None):
        return self.vm

    def get(self, request, *args, **kwargs):
        polling = request.htmx and request.htmx.target == self.live_target
        try:
            response = super().get(request, *args, **kwargs)
        except Http404:
            if polling:  # deleted meanwhile
                return HttpResponseClientRedirect(reverse("vm_list"))
            raise
        if polling and not response.context_data["busy"]:
            return HttpResponseClientRefresh()
        return response

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        vm = self.vm
        checkpoints = list(vm.snapshots.exclude(state=SnapshotState.DELETED)
                           .order_by("-created_at"))
        # Jobs of the VM and of its checkpoints, deleted ones included.
        ids = [str(vm.pk), *(str(pk) for pk in vm.snapshots.values_list("pk", flat=True))]
        jobs = presenters.job_rows(jobs_with_steps().restrict(self.tenant)
                                   .filter(resource_id__in=ids)
                                   .order_by("-created_at")[:VM_JOBS_SHOWN])
        available = {t.name for t in vm.get_available_state_transitions()}
        settled = vm.state in (VmState.RUNNING, VmState.STOPPED)
        context.update(
            vm=vm, checkpoints=checkpoints, jobs=jobs,
            actions={name: name in available for name in VM_ACTIONS},
            can_checkpoint=settled,
            can_restore="restore" in available,
            subscription_active=vm.subscription.state == SubscriptionState.ACTIVE,
            resize_form=ResizeForm(vm=vm), checkpoint_form=CheckpointForm(),
            busy=(vm.state in VM_BUSY or any(c.state in CHECKPOINT_BUSY for c in checkpoints)
                  or any(not row.finished for row in jobs)),
        )
        return context


class VmActionView(VmMixin, ServiceActionView):
    def get_object(self):
        return self.vm

    def get_success_url(self):
        return reverse("vm_detail", args=[self.kwargs["pk"]])


class VmPowerView(VmActionView):
    """Start, stop or restart (``action``); the service refuses what makes no sense in
    the VM's state."""

    action = ""
    doing = {"start": "starting", "stop": "stopping", "restart": "restarting"}

    def perform(self, vm):
        resources.vm_power(vm, self.action, acting_user=self.request.user)
        return f"“{vm.name}” is {self.doing[self.action]}."


class VmDeleteView(VmActionView):
    confirm = ("Delete the VM “{object.name}” and its checkpoints? Its disk is destroyed; "
               "its quota comes back when the job has finished.")
    confirm_label = "Delete VM"

    def perform(self, vm):
        resources.delete_vm(vm, acting_user=self.request.user)
        return f"“{vm.name}” is being deleted."

    def get_success_url(self):
        return reverse("vm_list")


class VmFormMixin(VmMixin, ServiceFormMixin):
    """A form about one VM: a page of its own, shown again with the service's errors."""

    permission_required = "provisioning.operate"

    def get_context_data(self, **kwargs):
        return super().get_context_data(vm=self.vm, **kwargs)

    def get_success_url(self):
        return reverse("vm_detail", args=[self.vm.pk])


class VmResizeView(VmFormMixin, FormView):
    template_name = "provisioning/vm_resize.html"
    form_class = ResizeForm
    success_message = "“{object.name}” is being resized."

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "vm": self.vm}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["preview"] = preview(self.vm.subscription, [], _sizes(context["form"]), self.vm)
        return context

    def perform(self, form):
        resources.resize_vm(self.vm, acting_user=self.request.user, **form.cleaned_data)
        return self.vm


class CheckpointCreateView(VmFormMixin, FormView):
    template_name = "provisioning/checkpoint_form.html"
    form_class = CheckpointForm
    success_message = "Taking the checkpoint “{object.name}”."

    def perform(self, form):
        snapshot, _job = resources.create_snapshot(self.vm, name=form.cleaned_data["name"],
                                                   acting_user=self.request.user)
        return snapshot


class CheckpointActionView(VmActionView):
    def get_object(self):
        return get_object_or_404(self.vm.snapshots.exclude(state=SnapshotState.DELETED)
                                 .select_related("vm"), pk=self.kwargs["checkpoint_id"])


class CheckpointRestoreView(CheckpointActionView):
    confirm = ("Restore “{object.vm.name}” to the checkpoint “{object.name}”? What the VM "
               "wrote since is lost.")
    confirm_label = "Restore"

    def perform(self, snapshot: Snapshot):
        resources.restore_snapshot(snapshot, acting_user=self.request.user)
        return f"“{snapshot.vm.name}” is being restored to “{snapshot.name}”."


class CheckpointDeleteView(CheckpointActionView):
    confirm = "Delete the checkpoint “{object.name}” of “{object.vm.name}”?"
    confirm_label = "Delete checkpoint"

    def perform(self, snapshot: Snapshot):
        resources.delete_snapshot(snapshot, acting_user=self.request.user)
        return f"The checkpoint “{snapshot.name}” is being deleted."


# --- Networks -------------------------------------------------------------------------

class NetworkListView(OperatorMixin, ServiceFormMixin, ListFormMixin, SearchListMixin):
    """Everyone sees the networks; operators create and delete them."""

    section = "networks"
    template_name = "provisioning/network_list.html"
    form_class = NetworkForm
    search_fields = ("name", "cidr")
    filter_form_class = NetworkFilterForm
    success_message = "The network “{object.name}” is being created."

    def get_filter_form_kwargs(self):
        return {"tenant": self.tenant}

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "tenant": self.tenant}

    def get_initial(self):
        # "New network" on a subscription's page links here with ?subscription=<id>.
        chosen = self.filter_form.value("subscription")
        return {"subscription": chosen.pk} if chosen else {}

    def get_queryset(self):
        networks = (Network.objects.exclude(state=NetworkState.DELETED).restrict(self.tenant)
                    .select_related("subscription")
                    .annotate(vm_count=Count("vms", filter=~Q(vms__state=VmState.DELETED)))
                    .order_by("subscription__name", "-is_default", "name"))
        return self.search(self.filter(networks))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["busy"] = any(n.state in NETWORK_BUSY for n in context["page_obj"])
        return context

    def perform(self, form):
        data = form.cleaned_data
        network, _job = resources.create_network(data["subscription"], name=data["name"],
                                                 cidr=data["cidr"], acting_user=self.request.user)
        return network

    def get_success_url(self):
        return reverse("network_list")


class NetworkDeleteView(OperatorMixin, ServiceActionView):
    section = "networks"
    confirm = "Delete the network “{object.name}” ({object.cidr}) of {object.subscription.name}?"
    confirm_label = "Delete network"

    def get_object(self):
        return get_object_or_404(
            Network.objects.exclude(state=NetworkState.DELETED).restrict(self.tenant).select_related("subscription"),
            pk=self.kwargs["pk"])

    def perform(self, network):
        resources.delete_network(network, acting_user=self.request.user)
        return f"The network “{network.name}” is being deleted."

    def get_success_url(self):
        return reverse("network_list")
