"""The subscription lifecycle, read top to bottom.

    subscribe ──> provisioning: commission (a job: tenant container, edge, default network)
              ──> active, or failed (with the job's error) ──> retry_commission
    attach an add-on ──> a DR add-on protects the whole subscription (a job)
    detach an add-on ──> a DR add-on unprotects it (a job)
    suspend ──> running VMs are stopped (a job) ──> resume
    decommission ──> everything on the fabric is removed (a job) ──> deleted

Each function is one transaction: ``plans.services`` checks and changes the subscription
rows and the quota limits, the models' transitions move the states, and the runbook
engine records the job that does the fabric's part after commit. Add-ons with behaviour
of their own are called through their ``provisioning.addons`` hooks at fixed points.
Views, serializers and tasks call these functions; none of them repeats their rules.
"""

import logging

from django.db import transaction
from django_fsm import TransitionNotAllowed

from base import events
from base.errors import Conflict, ErrorCode
from base.events import Event
from fabric.drivers import Capability
from plans import services as plan_services
from plans.models import Subscription, SubscriptionAddOn, SubscriptionState
from provisioning import addons, engine, ipam
from provisioning.models import (
    Job,
    Network,
    Site,
    SiteRole,
    SiteState,
    VirtualMachine,
    VmState,
)
from provisioning.runbooks.subscription import COMMISSION, DECOMMISSION, SUSPEND
from tenants.models import Tenant, User

__all__ = ["attach_addon", "commission", "commission_job", "decommission", "detach_addon",
           "resume", "retry_commission", "subscribe", "suspend"]

log = logging.getLogger(__name__)


@transaction.atomic
def subscribe(tenant: Tenant, *, plan_id, name: str, acting_user: User
              ) -> tuple[Subscription, Job]:
    """Subscribe the tenant to a plan it can see, and commission the subscription: it is
    ``provisioning`` until the job ends. Networks and VMs asked for meanwhile wait for it."""
    subscription = plan_services.subscribe(tenant, plan_id=plan_id, name=name,
                                           acting_user=acting_user)
    return subscription, commission(subscription, acting_user=acting_user)


def commission(subscription: Subscription, *, acting_user: User | None) -> Job:
    """The subscription's primary site on the plan's cloud, built by a job; its default
    network is there at once, provisioning, so that VMs can be asked for on it."""
    cloud = subscription.plan.cloud
    site = Site.objects.create(subscription=subscription, cloud=cloud, role=SiteRole.PRIMARY)
    # Reserve the external address now, so an exhausted pool is a 409 for the tenant
    # (and a warning for the provider) rather than a failed job later. The commission
    # step checks it against what the fabric holds and moves on if it is taken there.
    # A stamp without gateways (libvirt) holds no external address: none is reserved.
    if not cloud.stamp.lacks(Capability.GATEWAYS):
        try:
            ipam.allocate_external(site, held_by_fabric=set())
        except Conflict:
            log.warning("external pool %s of cloud %s is exhausted: a subscription was "
                        "refused", cloud.external_pool_cidr, cloud.name)
            raise
    Network.objects.create(subscription=subscription, name="default",
                           cidr=cloud.default_network_cidr, is_default=True, quota_held=False,
                           gateway_address=ipam.first_host(cloud.default_network_cidr))
    return engine.enqueue(COMMISSION, stamp=cloud.stamp, inputs={"site": str(site.pk)},
                          subscription=subscription, resource=site, acting_user=acting_user)


def commission_job(subscription: Subscription) -> Job | None:
    """The latest job that commissioned the subscription's primary site."""
    return (Job.objects.filter(subscription=subscription, runbook=COMMISSION.name)
            .order_by("-created_at").first())


@transaction.atomic
def retry_commission(subscription: Subscription, *, acting_user: User) -> Job:
    """Run the failed commission of a subscription again (the subscription is
    ``provisioning`` again; its job's ``on_retry`` moves it)."""
    subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
    job = commission_job(subscription)
    if subscription.state != SubscriptionState.FAILED or job is None:
        raise Conflict(f"A {subscription.state} subscription has no failed commission to "
                       "retry.", code=ErrorCode.SUBSCRIPTION_STATE)
    return engine.retry(job, acting_user=acting_user)


@transaction.atomic
def attach_addon(subscription: Subscription, *, addon_id, acting_user: User
                 ) -> tuple[SubscriptionAddOn, Job | None]:
    """Attach an add-on of the plan; the add-on's own hooks check and start its work (the
    job that does it, or None: a quota add-on has none)."""
    def precondition(locked: Subscription, addon) -> None:
        addons.hooks_for(addon.kind).check_attach(locked, addon)

    link = plan_services.attach_addon(subscription, addon_id=addon_id, acting_user=acting_user,
                                      precondition=precondition)
    return link, addons.hooks_for(link.addon.kind).attached(link, acting_user=acting_user)


@transaction.atomic
def detach_addon(subscription: Subscription, *, addon_id, acting_user: User) -> None:
    def precondition(link: SubscriptionAddOn) -> None:
        addons.hooks_for(link.addon.kind).check_detach(link)

    link = plan_services.detach_addon(subscription, addon_id=addon_id, acting_user=acting_user,
                                      precondition=precondition)
    addons.hooks_for(link.addon.kind).detached(link, acting_user=acting_user)


@transaction.atomic
def suspend(subscription: Subscription, *, acting_user: User) -> Subscription:
    """Suspend the subscription and stop its running VMs (a job)."""
    subscription = plan_services.suspend_subscription(subscription, acting_user=acting_user)
    running = list(VirtualMachine.objects.select_for_update().filter(
        subscription=subscription, state=VmState.RUNNING))
    if running:
        for vm in running:
            vm.stop()
            vm.save()
        site = Site.objects.select_related("cloud__stamp").get(
            subscription=subscription, role=SiteRole.PRIMARY, state=SiteState.READY)
        engine.enqueue(SUSPEND, stamp=site.cloud.stamp, subscription=subscription,
                       inputs={"site": str(site.pk), "vms": [str(vm.pk) for vm in running]},
                       acting_user=acting_user)
    return subscription


@transaction.atomic
def resume(subscription: Subscription, *, acting_user: User) -> Subscription:
    """Resume a suspended subscription; its VMs stay stopped until the tenant starts them."""
    return plan_services.resume_subscription(subscription, acting_user=acting_user)


@transaction.atomic
def decommission(subscription: Subscription, *, acting_user: User
                 ) -> tuple[Subscription, Job | None]:
    """Start removing a subscription and everything it has on the fabric."""
    subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
    before = {"state": subscription.state}
    try:
        subscription.start_deleting()
    except TransitionNotAllowed as exc:
        raise Conflict(f"A {subscription.state} subscription cannot be decommissioned.",
                       code=ErrorCode.SUBSCRIPTION_STATE) from exc
    subscription.save()
    events.record(Event.SUBSCRIPTION_DELETING, subscription, acting_user=acting_user,
                  before=before, after={"state": subscription.state})
    site = Site.objects.select_for_update(of=("self",)).filter(
        subscription=subscription, role=SiteRole.PRIMARY).exclude(
        state=SiteState.DELETED).select_related("cloud__stamp").first()
    if site is None:
        subscription.mark_deleted()
        subscription.save()
        return subscription, None
    site.start_deleting()
    site.save()
    job = engine.enqueue(DECOMMISSION, stamp=site.cloud.stamp,
                         inputs={"site": str(site.pk)}, subscription=subscription,
                         resource=site, acting_user=acting_user)
    return subscription, job
