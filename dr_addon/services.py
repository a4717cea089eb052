"""Use cases of the DR add-on: mappings, protection, drills, failover and failback.

Every fabric change is a runbook (``dr_addon.runbooks``); these functions check the
request, record the intent and enqueue the job in one transaction.
"""

from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_fsm import can_proceed

from base import events
from base.errors import Conflict, ErrorCode, Invalid, NotFound
from base.events import Event
from dr_addon import runbooks
from dr_addon.models import (
    ActiveSite,
    DrillKind,
    DrReport,
    NetworkMapping,
    ProtectedVm,
    ProtectedVmState,
    Protection,
    ProtectionState,
)
from plans.models import AddOn, AddOnKind, Subscription, SubscriptionAddOn
from provisioning import engine
from provisioning.engine import Runbook
from provisioning.models import Job, JobState, Site, SiteRole, SiteState, VmState

__all__ = [
    "DrAddOnHooks",
    "delete_mapping",
    "failback",
    "failover",
    "protect",
    "save_mapping",
    "status",
    "sync_due",
    "test_failover",
    "unprotect",
]


@transaction.atomic
def save_mapping(mapping: NetworkMapping | None, *, fields: dict, acting_user) -> NetworkMapping:
    creating = mapping is None
    mapping = mapping or NetworkMapping()
    before = {} if creating else events.values(mapping)
    for name, value in fields.items():
        setattr(mapping, name, value)
    addon: AddOn = mapping.addon
    if addon.kind != AddOnKind.DR:
        raise Invalid("Network mappings belong to DR add-ons.",
                      errors={"addon": ["Not a DR add-on."]})
    if mapping.recovery_network not in addon.recovery_cloud.provider_networks:
        known = ", ".join(addon.recovery_cloud.provider_networks) or "none"
        raise Invalid("The recovery network is not a network of the recovery cloud.",
                      errors={"recovery_network": [f"Choose one of: {known}."]})
    mapping.full_clean()
    mapping.save()
    events.record(Event.NETWORK_MAPPING_CREATED if creating else Event.NETWORK_MAPPING_CHANGED,
                  mapping, acting_user=acting_user, before=before,
                  after=events.values(mapping))
    return mapping


@transaction.atomic
def delete_mapping(mapping: NetworkMapping, *, acting_user) -> None:
    events.record(Event.NETWORK_MAPPING_DELETED, mapping, acting_user=acting_user,
                  before=events.values(mapping))
    mapping.delete()


def _primary_site(subscription: Subscription) -> Site:
    return Site.objects.select_related("cloud__stamp").get(
        subscription=subscription, role=SiteRole.PRIMARY, state=SiteState.READY)


def _protection(subscription: Subscription, *, lock: bool = False) -> Protection:
    queryset = Protection.objects.select_related("recovery_site__cloud__stamp", "addon")
    if lock:
        queryset = queryset.select_for_update(of=("self",))
    protection = queryset.filter(subscription=subscription).first()
    if protection is None:
        raise NotFound("This subscription has no DR protection.")
    return protection


class DrAddOnHooks:
    """What the DR add-on does at the subscription lifecycle's fixed points
    (``provisioning.addons``; registered in ``dr_addon.apps``)."""

    def check_attach(self, subscription: Subscription, addon: AddOn) -> None:
        if not addon.recovery_cloud.stamp.enabled:
            # Protection places new recovery copies on that stamp, which takes nothing new.
            raise Conflict("This DR add-on takes no new protection for now: the provider has "
                           "closed its recovery cloud to new work.",
                           code=ErrorCode.STAMP_DISABLED)
        try:
            _primary_site(subscription)
        except Site.DoesNotExist:
            raise Conflict("The subscription is still being set up; attach DR when its "
                           "commission has finished.",
                           code=ErrorCode.SUBSCRIPTION_NOT_READY) from None

    def attached(self, link: SubscriptionAddOn, *, acting_user) -> Job:
        return protect(link, acting_user=acting_user)

    def check_detach(self, link: SubscriptionAddOn) -> None:
        protection = _protection(link.subscription, lock=True)
        if protection.active_site != ActiveSite.PRIMARY:
            raise Conflict("Fail back before removing DR.", code=ErrorCode.DR_STATE)
        if not can_proceed(protection.start_unprotecting):
            raise Conflict.in_state(
                protection, f"DR is {protection.get_state_display().lower()}: remove it when "
                "that has finished.", code=ErrorCode.DR_STATE)

    def detached(self, link: SubscriptionAddOn, *, acting_user) -> None:
        unprotect(link, acting_user=acting_user)

    def vm_created(self, vm) -> None:
        protect_new_vm(vm)

    def vm_deleted(self, vm) -> None:
        ProtectedVm.objects.filter(vm=vm).delete()


def protect(link: SubscriptionAddOn, *, acting_user) -> Job:
    """Attaching a DR add-on protects the whole subscription: the job that does it."""
    subscription = link.subscription
    primary = _primary_site(subscription)
    recovery = Site.objects.create(subscription=subscription, cloud=link.addon.recovery_cloud,
                                   role=SiteRole.RECOVERY, is_active=False)
    protection = Protection.objects.create(subscription=subscription, addon=link.addon,
                                           recovery_site=recovery)
    return engine.enqueue(runbooks.PROTECT, stamp=primary.cloud.stamp,
                          subscription=subscription, resource=protection,
                          acting_user=acting_user, inputs={"protection": str(protection.pk)})


def unprotect(link: SubscriptionAddOn, *, acting_user) -> Protection:
    protection = _protection(link.subscription, lock=True)
    protection.start_unprotecting()
    protection.save()
    recovery = Site.objects.select_for_update().get(pk=protection.recovery_site_id)
    recovery.start_deleting()
    recovery.save()
    engine.enqueue(runbooks.UNPROTECT, stamp=_primary_site(link.subscription).cloud.stamp,
                   subscription=link.subscription, resource=protection, acting_user=acting_user,
                   inputs={"protection": str(protection.pk)})
    return protection


def protect_new_vm(vm) -> None:
    """A VM created in a protected subscription is protected too."""
    protection = Protection.objects.filter(
        subscription_id=vm.subscription_id, state=ProtectionState.PROTECTED,
        active_site=ActiveSite.PRIMARY).first()
    if protection is None:
        return
    engine.enqueue(runbooks.PROTECT_VM, stamp=_primary_site(vm.subscription).cloud.stamp,
                   subscription=vm.subscription, resource=vm,
                   inputs={"protection": str(protection.pk), "vm": str(vm.pk)})


def sync_due() -> list[str]:
    """Enqueue a sync for each protection with a VM past half its RPO target."""
    started = []
    now = timezone.now()
    for protection in Protection.objects.filter(state=ProtectionState.PROTECTED).select_related(
            "addon", "subscription"):
        due = now - timedelta(seconds=protection.addon.rpo_seconds / 2)
        if not protection.vms.filter(Q(last_sync_at__lt=due) | Q(last_sync_at__isnull=True),
                                     state=ProtectedVmState.PROTECTED).exists():
            continue
        pending = Job.objects.filter(runbook="dr.sync", resource_id=str(protection.pk),
                                     state__in=[JobState.QUEUED, JobState.RUNNING]).exists()
        if pending:
            continue
        with transaction.atomic():
            engine.enqueue(runbooks.SYNC, stamp=_primary_site(protection.subscription).cloud.stamp,
                           subscription=protection.subscription, resource=protection,
                           inputs={"protection": str(protection.pk)})
        started.append(str(protection.pk))
    return started


_EVENTS = {DrillKind.TEST: Event.DR_TEST_FAILOVER, DrillKind.PLANNED: Event.DR_PLANNED,
           DrillKind.UNPLANNED: Event.DR_UNPLANNED, DrillKind.FAILBACK: Event.DR_FAILBACK}


def _start(protection: Protection, kind: str, runbook: Runbook, *, stamp,
           begin: Callable[[Protection], None] | None, acting_user, **inputs):
    report = DrReport.objects.create(protection=protection, kind=kind)
    job = engine.enqueue(runbook, stamp=stamp, subscription=protection.subscription,
                         resource=protection, acting_user=acting_user,
                         inputs={"protection": str(protection.pk), "report": str(report.pk),
                                 **inputs})
    DrReport.objects.filter(pk=report.pk).update(job=job)
    before = events.values(protection, ["state", "active_site"])
    if begin is not None:
        begin(protection)
        protection.save()
    events.record(_EVENTS[kind], protection, acting_user=acting_user, before=before,
                  after=events.values(protection, ["state", "active_site"]), job=job.pk)
    return job


@transaction.atomic
def test_failover(subscription: Subscription, *, acting_user):
    """Start recovery copies in an isolated network, check them, clean up."""
    protection = _protection(subscription, lock=True)
    if protection.state != ProtectionState.PROTECTED:
        raise Conflict.in_state(
            protection, f"DR is {protection.get_state_display().lower()}; a drill needs "
            "a protected subscription.", code=ErrorCode.DR_STATE)
    if DrReport.objects.filter(protection=protection, kind=DrillKind.TEST,
                               finished_at__isnull=True).exists():
        raise Conflict("A test failover is already running.", code=ErrorCode.DR_BUSY)
    return _start(protection, DrillKind.TEST, runbooks.TEST_FAILOVER,
                  stamp=protection.recovery_site.cloud.stamp, begin=None,
                  acting_user=acting_user)


@transaction.atomic
def failover(subscription: Subscription, *, mode: str, acting_user):
    protection = _protection(subscription, lock=True)
    if protection.state != ProtectionState.PROTECTED:
        raise Conflict.in_state(
            protection, f"DR is {protection.get_state_display().lower()}; failover needs a "
            "protected subscription running on its primary site.", code=ErrorCode.DR_STATE)
    if mode not in (DrillKind.PLANNED, DrillKind.UNPLANNED):
        raise Invalid("Unknown failover mode.", errors={"mode": ["planned or unplanned"]})
    busy = subscription.vms.filter(state__in=[
        VmState.PROVISIONING, VmState.STARTING, VmState.STOPPING, VmState.RESIZING,
        VmState.RESTORING, VmState.DELETING]).exists()
    if busy and mode == DrillKind.PLANNED:
        raise Conflict("VMs have jobs in flight; let them finish first.", code=ErrorCode.DR_BUSY)
    # The job runs on the recovery stamp's queue: the primary may be gone.
    return _start(protection, mode, runbooks.FAILOVER, stamp=protection.recovery_site.cloud.stamp,
                  begin=Protection.start_failover, acting_user=acting_user, mode=mode)


@transaction.atomic
def failback(subscription: Subscription, *, acting_user):
    protection = _protection(subscription, lock=True)
    if protection.state != ProtectionState.FAILED_OVER:
        raise Conflict("Failback needs a subscription running on its recovery site.",
                       code=ErrorCode.DR_STATE)
    return _start(protection, DrillKind.FAILBACK, runbooks.FAILBACK,
                  stamp=protection.recovery_site.cloud.stamp,
                  begin=Protection.start_failback, acting_user=acting_user)


def status(subscription: Subscription) -> dict:
    """What API.md's ``GET /subscriptions/<id>/dr/`` answers."""
    protection = _protection(subscription)
    rpo = protection.addon.rpo_seconds
    now = timezone.now()
    protected = []
    for row in protection.vms.select_related("vm").order_by("vm__name"):
        lag = (now - row.last_sync_at).total_seconds() if row.last_sync_at else None
        protected.append({
            "vm": str(row.vm_id), "name": row.vm.name, "state": row.state,
            "last_sync_at": row.last_sync_at, "sequence": row.sequence,
            "rpo_seconds": round(lag, 1) if lag is not None else None,
            "rpo_target_seconds": rpo,
            "over_rpo": lag is None or lag > rpo,
        })
    return {
        "state": protection.state,
        "recovery_cloud": str(protection.recovery_site.cloud_id),
        "active_site": protection.active_site,
        "rpo_target_seconds": rpo,
        "protected": protected,
        "reports": [
            {"id": str(r.id), "kind": r.kind, "job": str(r.job_id) if r.job_id else None,
             "started_at": r.started_at, "finished_at": r.finished_at, "outcome": r.outcome,
             "data_loss_seconds": r.data_loss_seconds, "details": r.details}
            for r in protection.reports.all()[:20]],
    }
