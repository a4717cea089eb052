"""Use cases of tenant resources: networks, VMs, checkpoints. The only place that
changes them. Each reserves quota in the caller's transaction before its job is
recorded, and each job gives it back exactly once (``quota_held``) when it fails or
when the resource is deleted.

A network or VM asked for while its subscription (or its network) is still
provisioning is accepted: its job waits for the job that makes what it needs
(``engine.enqueue(after=...)``), and is rolled back, giving its quota back, if that job
does not succeed."""

import ipaddress
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django_fsm import TransitionNotAllowed

from base import events
from base.batch import Pending, save_state
from base.constraints import violated
from base.errors import Conflict, ErrorCode, Invalid, NotFound
from base.events import Event
from plans import quota
from plans.models import Subscription, SubscriptionState
from provisioning import engine, holdings, reads, sizing
from provisioning.engine import Runbook
from provisioning.models import (
    Job,
    Network,
    NetworkState,
    Site,
    SiteState,
    Snapshot,
    SnapshotState,
    VirtualMachine,
    VmState,
)
from provisioning.runbooks import network as network_runbooks
from provisioning.runbooks import vm as vm_runbooks
from provisioning.runbooks.subscription import COMMISSION
from provisioning.sizing import SizeFault, VmSize

__all__ = [
    "VmSpec",
    "create_network",
    "create_snapshot",
    "create_vm",
    "delete_network",
    "delete_snapshot",
    "delete_vm",
    "resize_vm",
    "restore_snapshot",
    "vm_power",
]


@dataclass(frozen=True)
class VmSpec:
    name: str
    template_id: object
    vcpus: int
    memory_mb: int
    disk_gb: int
    network_id: object | None = None  # None: the subscription's default network


# --- helpers --------------------------------------------------------------------------

def active_site(subscription: Subscription) -> Site:
    """The site the subscription's resources run on now."""
    return _ready(_active_site_of(subscription))


def _ready(site: Site | None) -> Site:
    """``site`` (the active site of a subscription) once it is set up on its stamp."""
    if site is None or site.state != SiteState.READY:
        raise Conflict("The subscription is still being set up on its stamp; try again "
                       "when its commission job has finished.",
                       code=ErrorCode.SUBSCRIPTION_NOT_READY)
    return site


def _active_site_of(subscription: Subscription) -> Site | None:
    """The subscription's active site, with its cloud and stamp, whatever its state."""
    return (Site.objects.select_related("cloud__stamp")
            .filter(subscription=subscription, is_active=True)
            .exclude(state=SiteState.DELETED).first())


def _placement(subscription: Subscription) -> tuple[Site, Job | None]:
    """Where new work on the subscription goes, and the job it waits for (see
    ``_placed``)."""
    return _placed(_active_site_of(subscription))


def _placed(site: Site | None, network: Network | None = None) -> tuple[Site, Job | None]:
    """Where new work on the subscription of the active ``site`` goes, and the job it
    waits for: the commission while the subscription is provisioning, the network's
    create job while the network is (a default network is made by the commission)."""
    if site is None or site.state not in (SiteState.READY, SiteState.PROVISIONING):
        raise Conflict("The subscription is not set up on its stamp.",
                       code=ErrorCode.SUBSCRIPTION_NOT_READY)
    after = None
    if site.state == SiteState.PROVISIONING or (network is not None and network.is_default
                                                and network.state == NetworkState.PROVISIONING):
        after = _latest_job(site, COMMISSION.name)
    if network is not None and not network.is_default \
            and network.state == NetworkState.PROVISIONING:
        after = _latest_job(network, network_runbooks.CREATE.name)
    return site, after


def _latest_job(resource, runbook: str) -> Job | None:
    return (Job.objects.filter(resource_type=resource._meta.label_lower,
                               resource_id=str(resource.pk), runbook=runbook)
            .order_by("-created_at").first())


def _require_active(subscription: Subscription, *, or_provisioning: bool = False) -> None:
    if subscription.state == SubscriptionState.ACTIVE or (
            or_provisioning and subscription.state == SubscriptionState.PROVISIONING):
        return
    if subscription.state == SubscriptionState.FAILED:
        raise Conflict("The subscription's commission failed: retry it "
                       f"(POST /api/v1/subscriptions/{subscription.pk}/retry/).",
                       code=ErrorCode.SUBSCRIPTION_STATE)
    if subscription.state == SubscriptionState.PROVISIONING:
        raise Conflict("The subscription is still being set up on its stamp; try again "
                       "when its commission job has finished.",
                       code=ErrorCode.SUBSCRIPTION_NOT_READY)
    raise Conflict(f"The subscription is {subscription.state}: nothing can be created "
                   "or started in it.", code=ErrorCode.SUBSCRIPTION_STATE)


def _transition(obj, transition, verb: str) -> None:
    try:
        transition(obj)
    except TransitionNotAllowed as exc:
        raise Conflict.in_state(obj, f"A {obj.state} VM cannot be {verb}.",
                                code=ErrorCode.VM_STATE) from exc


def _enqueue(runbook: Runbook, subscription: Subscription, resource, *, acting_user,
             placement: tuple[Site, Job | None] | None = None, writes: Pending | None = None,
             **inputs) -> Job:
    site, after = placement or (active_site(subscription), None)
    return engine.enqueue(runbook, stamp=site.cloud.stamp, subscription=subscription,
                          resource=resource, acting_user=acting_user, after=after,
                          inputs={"site": str(site.pk), **inputs}, writes=writes)


# --- networks -------------------------------------------------------------------------

def _parse_cidr(cidr: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        raise Invalid("The CIDR is not valid.", errors={"cidr": [str(exc)]}) from exc
    if network.version != 4 or not network.is_private:
        raise Invalid("Tenant networks use private IPv4 ranges.",
                      errors={"cidr": ["Use a private IPv4 range such as 10.0.1.0/24."]})
    if not 16 <= network.prefixlen <= 29:
        raise Invalid("The network size is out of range.",
                      errors={"cidr": ["Use a prefix between /16 and /29."]})
    return network


@transaction.atomic
def create_network(subscription: Subscription, *, name: str, cidr: str,
                   acting_user) -> tuple[Network, Job]:
    # The subscription row lock serialises the overlap check of concurrent requests.
    subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
    _require_active(subscription, or_provisioning=True)
    wanted = _parse_cidr(cidr)
    live = subscription.networks.exclude(state=NetworkState.DELETED)
    for other in live:
        if wanted.overlaps(ipaddress.ip_network(other.cidr)):
            raise Invalid("The CIDR overlaps another network of the subscription.",
                          errors={"cidr": [f"Overlaps '{other.name}' ({other.cidr})."]})
    if live.filter(name=name).exists():
        raise Invalid("A network with this name exists.", errors={"name": ["Already used."]})
    placement = _placement(subscription)
    quota.reserve(subscription, {"networks": 1})
    network = Network.objects.create(subscription=subscription, name=name, cidr=str(wanted),
                                     gateway_address=str(next(wanted.hosts())))
    job = _enqueue(network_runbooks.CREATE, subscription, network, acting_user=acting_user,
                   placement=placement, network=str(network.pk))
    events.record(Event.NETWORK_REQUESTED, network, acting_user=acting_user,
                  after=events.values(network, ["name", "cidr", "state"]), job=job.pk)
    return network, job


@transaction.atomic
def delete_network(network: Network, *, acting_user) -> Job:
    network = Network.objects.select_for_update().select_related("subscription").get(
        pk=network.pk)
    if network.is_default:
        raise Conflict("The default network goes with the subscription.",
                       code=ErrorCode.NETWORK_DEFAULT)
    if network.state not in (NetworkState.READY, NetworkState.FAILED):
        raise Conflict.in_state(network, f"A {network.state} network cannot be deleted.",
                                code=ErrorCode.NETWORK_STATE)
    if network.vms.exclude(state=VmState.DELETED).exists():
        raise Conflict("VMs are attached to this network; delete them first.",
                       code=ErrorCode.NETWORK_IN_USE)
    before = {"state": network.state}
    network.start_deleting()
    network.save()
    job = _enqueue(network_runbooks.DELETE, network.subscription, network,
                   acting_user=acting_user,
                   network=str(network.pk))
    events.record(Event.NETWORK_DELETING, network, acting_user=acting_user, before=before,
                  after={"state": network.state}, job=job.pk)
    return job


# --- VMs ------------------------------------------------------------------------------

def _check_size(subscription: Subscription, template, vcpus: int, memory_mb: int,
                disk_gb: int | None) -> None:
    errors: dict[str, list[str]] = {}
    for check in sizing.check_size(template, subscription.plan, vcpus=vcpus,
                                   memory_mb=memory_mb, disk_gb=disk_gb):
        match check.fault:
            case SizeFault.TOO_SMALL:
                errors[check.field] = [f"'{template.name}' needs at least {check.bound.least}."]
            case SizeFault.TOO_LARGE:
                errors[check.field] = [f"The plan allows at most {check.bound.most} per VM."]
    if errors:
        raise Invalid("The VM size does not fit the template or the plan.", errors=errors)


def create_vm(subscription: Subscription, spec: VmSpec, *, acting_user, tenant=None
              ) -> tuple[VirtualMachine, Job]:
    """A VM of ``spec`` on ``subscription`` (the subscription or its id; with ``tenant``,
    one of the tenant's that is not deleted, else a 400 on ``subscription``)."""
    try:
        return _create_vm(subscription, spec, acting_user=acting_user, tenant=tenant)
    except IntegrityError as exc:
        # A create of the same name committed between this one's check and its insert:
        # the live-name constraint refused this one, and nothing of it is left.
        if not violated(exc, VirtualMachine, "vm_name_unique_live"):
            raise
        raise Invalid(_NAME_USED, errors={"name": ["Already used."]}) from None


_NAME_USED = "A VM with this name exists."


@transaction.atomic
def _create_vm(subscription, spec: VmSpec, *, acting_user, tenant) -> tuple[
        VirtualMachine, Job]:
    # The subscription, its plan, the template, the network with the subscription's active
    # site, and whether the name is taken: one statement.
    read = reads.vm_create_reads(getattr(subscription, "pk", subscription),
                                 template_id=spec.template_id, network_id=spec.network_id,
                                 name=spec.name, tenant=tenant)
    if read is None:
        raise Invalid("No such subscription.",
                      errors={"subscription": ["Not a subscription of yours."]})
    subscription, template, network = read.subscription, read.template, read.network
    _require_active(subscription, or_provisioning=True)
    errors = {}
    if template is None:
        errors["template"] = ["Not a template of the subscription's plan."]
    if network is None and spec.network_id is None:
        errors["network"] = ["The subscription has no default network; name one."]
    elif network is None:
        errors["network"] = ["Not a network of this subscription."]
    elif network.state not in (NetworkState.READY, NetworkState.PROVISIONING):
        errors["network"] = [f"The network is {network.state}."]
    if errors:
        raise Invalid("The VM cannot be created from this request.", errors=errors)
    _check_size(subscription, template, spec.vcpus, spec.memory_mb, spec.disk_gb)
    if read.name_taken:
        raise Invalid(_NAME_USED, errors={"name": ["Already used."]})
    placement = site, _ = _placed(network.active_site, network)
    vm = VirtualMachine(subscription=subscription, name=spec.name, template=template,
                        network=network, vcpus=spec.vcpus, memory_mb=spec.memory_mb,
                        disk_gb=spec.disk_gb)
    # The address first: its claim makes no other create wait (one being claimed is
    # skipped), and the VM's row is written with it.
    vm.ip_address = holdings.claim_free_address(network, vm)
    # The VM, its job and steps and its audit row are written in the reservation's
    # statement (on PostgreSQL; before it elsewhere). What other creates wait on, last:
    # the quota's rows, then the cloud's capacity's.
    writes = Pending()
    writes.add(vm)
    job = _enqueue(vm_runbooks.CREATE, subscription, vm, acting_user=acting_user,
                   placement=placement, writes=writes, vm=str(vm.pk))
    events.record(Event.VM_REQUESTED, vm, acting_user=acting_user,
                  after=events.values(vm, _VM_FIELDS), job=job.pk, writes=writes)
    quota.reserve(subscription, vm.usage(), cloud_id=site.cloud_id, writes=writes)
    return vm, job


def _locked_vm(vm: VirtualMachine, tenant=None) -> tuple[VirtualMachine, Site | None]:
    """``vm`` read again under lock, in place (the caller's instance is the one the change
    leaves), with its subscription and plan and its template; and the subscription's
    active site. With ``tenant``, a 404 unless it is a VM of the tenant's that is not
    deleted (``vm`` may then be ``VirtualMachine(pk=...)`` of an id from a request)."""
    read = reads.vm_change_reads(vm.pk, tenant=tenant)
    if read is None:
        raise NotFound("No such VM.")
    vm.__dict__.update(read.vm.__dict__)
    return vm, read.site


_VM_FIELDS = ["name", "template", "network", "vcpus", "memory_mb", "disk_gb", "ip_address",
              "state"]

POWER = {
    "start": (VirtualMachine.start, "started", vm_runbooks.START, Event.VM_STARTING),
    "stop": (VirtualMachine.stop, "stopped", vm_runbooks.STOP, Event.VM_STOPPING),
    "restart": (VirtualMachine.restart, "restarted", vm_runbooks.RESTART, Event.VM_RESTARTING),
}


@transaction.atomic
def vm_power(vm: VirtualMachine, action: str, *, acting_user, tenant=None) -> Job:
    """Start, stop or restart: 409 when the action makes no sense in the VM's state. (For
    ``tenant`` and the instance ``vm``, see ``_locked_vm``.)"""
    transition, verb, runbook, event = POWER[action]
    vm, site = _locked_vm(vm, tenant)
    if action != "stop":
        _require_active(vm.subscription)
    previous = vm.state
    _transition(vm, transition, verb)
    writes = Pending()
    job = _enqueue(runbook, vm.subscription, vm, acting_user=acting_user,
                   placement=(_ready(site), None), writes=writes, vm=str(vm.pk),
                   previous=previous)
    events.record(event, vm, acting_user=acting_user, before={"state": previous},
                  after={"state": vm.state}, job=job.pk, writes=writes)
    save_state(vm, previous, writes)
    return job


@transaction.atomic
def resize_vm(vm: VirtualMachine, *, vcpus: int, memory_mb: int, acting_user,
              tenant=None) -> Job:
    """Quota is checked on the difference; a shrink gives back when it has happened."""
    vm, site = _locked_vm(vm, tenant)
    _require_active(vm.subscription)
    _check_size(vm.subscription, vm.template, vcpus, memory_mb, None)
    if (vcpus, memory_mb) == (vm.vcpus, vm.memory_mb):
        raise Invalid("The VM already has this size.",
                      errors={"vcpus": ["Unchanged."], "memory_mb": ["Unchanged."]})
    previous = vm.state
    _transition(vm, VirtualMachine.resize, "resized")
    old = VmSize.of(vm)
    delta = sizing.resize_delta(old, old.resized(vcpus=vcpus, memory_mb=memory_mb))
    quota.reserve(vm.subscription, sizing.growth(delta), cloud_id=vm.subscription.plan.cloud_id)
    vm.save()
    job = _enqueue(vm_runbooks.RESIZE, vm.subscription, vm, acting_user=acting_user,
                   placement=(_ready(site), None), vm=str(vm.pk),
                   previous=previous, vcpus=vcpus, memory_mb=memory_mb,
                   old_vcpus=vm.vcpus, old_memory_mb=vm.memory_mb)
    # The size changes when the job has resized the VM: the row says what was asked for.
    events.record(Event.VM_RESIZING, vm, acting_user=acting_user,
                  before={"state": previous, "vcpus": vm.vcpus, "memory_mb": vm.memory_mb},
                  after={"state": vm.state, "vcpus": vcpus, "memory_mb": memory_mb},
                  job=job.pk)
    return job


@transaction.atomic
def delete_vm(vm: VirtualMachine, *, acting_user, tenant=None) -> Job:
    """Quota comes back when the delete job has finished. (For ``tenant`` and the instance
    ``vm``, see ``_locked_vm``.)"""
    vm, site = _locked_vm(vm, tenant)
    previous = vm.state
    _transition(vm, VirtualMachine.start_deleting, "deleted")
    # The job and its steps and the audit row are written in the VM's UPDATE (on
    # PostgreSQL; before it elsewhere).
    writes = Pending()
    job = _enqueue(vm_runbooks.DELETE, vm.subscription, vm, acting_user=acting_user,
                   placement=(_ready(site), None), writes=writes, vm=str(vm.pk))
    events.record(Event.VM_DELETING, vm, acting_user=acting_user, before={"state": previous},
                  after={"state": vm.state}, job=job.pk, writes=writes)
    save_state(vm, previous, writes)
    return job


# --- checkpoints ----------------------------------------------------------------------

@transaction.atomic
def create_snapshot(vm: VirtualMachine, *, name: str, acting_user) -> tuple[Snapshot, Job]:
    vm, site = _locked_vm(vm)
    _require_active(vm.subscription)
    if vm.state not in (VmState.RUNNING, VmState.STOPPED):
        raise Conflict.in_state(vm, f"A {vm.state} VM cannot take a checkpoint.",
                                code=ErrorCode.VM_STATE)
    quota.reserve(vm.subscription, {"snapshots": 1})
    snapshot = Snapshot.objects.create(vm=vm, name=name)
    job = _enqueue(vm_runbooks.CREATE_SNAPSHOT, vm.subscription, snapshot,
                   acting_user=acting_user, placement=(_ready(site), None),
                   snapshot=str(snapshot.pk))
    events.record(Event.SNAPSHOT_REQUESTED, snapshot, acting_user=acting_user,
                  after={"name": snapshot.name, "vm": str(vm.pk), "state": snapshot.state},
                  job=job.pk)
    return snapshot, job


@transaction.atomic
def restore_snapshot(snapshot: Snapshot, *, acting_user) -> Job:
    """Restore the checkpoint (a job). ``snapshot`` is read again under lock, in place: the
    caller's instance is the one the change leaves."""
    snapshot.__dict__.update(Snapshot.objects.select_for_update().get(pk=snapshot.pk).__dict__)
    if snapshot.state != SnapshotState.READY:
        raise Conflict.in_state(snapshot, f"A {snapshot.state} checkpoint cannot be restored.",
                                code=ErrorCode.SNAPSHOT_STATE)
    vm, site = _locked_vm(snapshot.vm)
    previous = vm.state
    _transition(vm, VirtualMachine.restore, "restored")
    vm.save()
    snapshot.start_restoring()
    snapshot.save()
    job = _enqueue(vm_runbooks.RESTORE_SNAPSHOT, vm.subscription, snapshot,
                   acting_user=acting_user, placement=(_ready(site), None),
                   snapshot=str(snapshot.pk), previous=previous)
    events.record(Event.SNAPSHOT_RESTORING, snapshot, acting_user=acting_user,
                  before={"vm_state": previous}, after={"vm_state": vm.state}, vm=vm.pk,
                  job=job.pk)
    return job


@transaction.atomic
def delete_snapshot(snapshot: Snapshot, *, acting_user) -> Job:
    """Delete the checkpoint (a job); ``snapshot`` is read again under lock, in place."""
    snapshot.__dict__.update(Snapshot.objects.select_for_update().select_related(
        "vm__subscription").get(pk=snapshot.pk).__dict__)
    if snapshot.state not in (SnapshotState.READY, SnapshotState.FAILED):
        raise Conflict.in_state(snapshot, f"A {snapshot.state} checkpoint cannot be deleted.",
                                code=ErrorCode.SNAPSHOT_STATE)
    before = {"state": snapshot.state}
    snapshot.start_deleting()
    snapshot.save()
    job = _enqueue(vm_runbooks.DELETE_SNAPSHOT, snapshot.vm.subscription, snapshot,
                   acting_user=acting_user, snapshot=str(snapshot.pk))
    events.record(Event.SNAPSHOT_DELETING, snapshot, acting_user=acting_user, before=before,
                  after={"state": snapshot.state}, job=job.pk)
    return job
