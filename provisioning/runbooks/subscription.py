"""The runbooks of the subscription lifecycle (``provisioning.lifecycle`` starts them).

``subscription.commission`` is the "commission customer" workflow: a tenant container
on the plan's stamp, an external address from the cloud's pool, a gateway, a default
routed network, an outbound firewall rule and source NAT to the external address.
A failure at any step undoes the steps before it. The edge (address, gateway, firewall,
NAT) is made where the stamp can: a stamp without gateways, firewall or NAT rules (a
libvirt host) skips those steps, and its tenants get their container and default network
only (``Step.optional``). ``subscription.decommission`` removes
everything, VMs included, moving forward only: a failure stops it for a retry.
"""

import logging

from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from base import events
from base.events import Event
from fabric.drivers import Capability
from plans.models import QuotaLedger, Subscription
from provisioning import engine, ipam
from provisioning.engine import Runbook, Step, StepContext
from provisioning.models import (
    Network,
    NetworkAddress,
    NetworkState,
    Site,
    SiteState,
    Snapshot,
    VirtualMachine,
)

__all__ = ["COMMISSION", "DECOMMISSION", "SUSPEND"]

log = logging.getLogger(__name__)


def _site(ctx: StepContext) -> Site:
    return Site.objects.select_related("cloud", "subscription").get(pk=ctx.inputs["site"])


def _record(ctx: StepContext, **fields) -> dict:
    """Write what a step made onto the site at once, so reconciliation knows it."""
    Site.objects.filter(pk=ctx.inputs["site"]).update(**fields)
    return fields


def _locked_site(job_or_ctx) -> Site:
    return Site.objects.select_for_update().get(pk=job_or_ctx.inputs["site"])


# --- commission -----------------------------------------------------------------------

def create_container(ctx):
    site = _site(ctx)
    container = ctx.driver.create_container(key=ctx.key(), name=f"sub-{site.subscription_id}")
    ctx.log(f"container {container.id}")
    return _record(ctx, container_id=container.id)


def delete_container(ctx):
    ctx.driver.delete_container(key=ctx.key("undo"), container_id=ctx.outputs["container_id"],
                                force=True)
    _record(ctx, container_id="")


def reserve_external_address(ctx):
    site = _site(ctx)
    address = ipam.allocate_external(site, held_by_fabric=ctx.driver.external_addresses())
    ctx.log(f"external address {address}")
    return _record(ctx, external_ip=address)


def release_external_address(ctx):
    ipam.release_external(_site(ctx))
    _record(ctx, external_ip=None)


def create_gateway(ctx):
    gateway = ctx.driver.create_gateway(key=ctx.key(), container_id=ctx.outputs["container_id"],
                                        external_ip=ctx.outputs["external_ip"])
    ctx.log(f"gateway {gateway.id} on {gateway.external_ip}")
    return _record(ctx, gateway_id=gateway.id)


def delete_gateway(ctx):
    ctx.driver.delete_gateway(key=ctx.key("undo"), gateway_id=ctx.outputs["gateway_id"])
    _record(ctx, gateway_id="")


def create_default_network(ctx):
    site = _site(ctx)
    network = ctx.driver.create_network(key=ctx.key(), container_id=ctx.outputs["container_id"],
                                        name="default", cidr=site.cloud.default_network_cidr,
                                        kind="routed")
    ctx.log(f"network {network.id} {network.cidr} via {network.gateway_address}")
    return {**_record(ctx, network_id=network.id, network_cidr=network.cidr),
            "gateway_address": network.gateway_address}


def delete_default_network(ctx):
    ctx.driver.delete_network(key=ctx.key("undo"), network_id=ctx.outputs["network_id"])
    _record(ctx, network_id="", network_cidr="")


def allow_outbound(ctx):
    rule = ctx.driver.add_firewall_rule(
        key=ctx.key(), container_id=ctx.outputs["container_id"], direction="outbound",
        action="allow", source=ctx.outputs["network_cidr"], destination="any")
    ctx.log(f"firewall rule {rule}: outbound from {ctx.outputs['network_cidr']}")
    return _record(ctx, firewall_rule_id=rule)


def delete_outbound_rule(ctx):
    ctx.driver.delete_firewall_rule(key=ctx.key("undo"),
                                    rule_id=ctx.outputs["firewall_rule_id"])
    _record(ctx, firewall_rule_id="")


def add_source_nat(ctx):
    rule = ctx.driver.add_nat_rule(key=ctx.key(), container_id=ctx.outputs["container_id"],
                                   internal_cidr=ctx.outputs["network_cidr"],
                                   external_ip=ctx.outputs["external_ip"])
    ctx.log(f"SNAT rule {rule}: {ctx.outputs['network_cidr']} -> {ctx.outputs['external_ip']}")
    return _record(ctx, nat_rule_id=rule)


def delete_source_nat(ctx):
    ctx.driver.delete_nat_rule(key=ctx.key("undo"), rule_id=ctx.outputs["nat_rule_id"])
    _record(ctx, nat_rule_id="")


def _default_network(subscription_id) -> Network | None:
    return (Network.objects.select_for_update().filter(subscription_id=subscription_id,
                                                       is_default=True)
            .exclude(state=NetworkState.DELETED).first())


def _commissioned(job):
    site = _locked_site(job)
    # A decommission asked for while the commission ran has moved the site on to
    # ``deleting``: it stays so, and that job removes what this one made.
    if can_proceed(site.mark_ready):
        site.mark_ready()
        site.save()
    network = _default_network(site.subscription_id)
    if network is not None and can_proceed(network.mark_ready):
        gateway = job.outputs.get("gateway_address") or network.gateway_address
        if gateway != network.gateway_address:
            log.warning("stamp gave default network %s the gateway %s, not %s", network.pk,
                        gateway, network.gateway_address)
        network.cidr, network.fabric_id, network.gateway_address = (
            site.network_cidr, site.network_id, gateway)
        network.mark_ready()
        network.save()
    subscription = Subscription.objects.select_for_update().get(pk=site.subscription_id)
    if can_proceed(subscription.mark_active):
        subscription.mark_active()
        subscription.save()
        events.record(Event.SUBSCRIPTION_ACTIVE, subscription)


def _commission_failed(job):
    site = _locked_site(job)
    if can_proceed(site.mark_failed):
        site.mark_failed()
        site.save()
    ipam.release_external(site)
    network = _default_network(site.subscription_id)
    if network is not None and can_proceed(network.mark_failed):
        network.mark_failed()
        network.save()
    subscription = Subscription.objects.select_for_update().get(pk=site.subscription_id)
    if can_proceed(subscription.mark_failed):
        subscription.mark_failed(error=job.error)
        subscription.save()
        events.record(Event.SUBSCRIPTION_FAILED, subscription, error=job.error[:500])


def _commission_retried(job):
    site = _locked_site(job)
    site.retry()
    site.save()
    network = _default_network(site.subscription_id)
    if network is not None and can_proceed(network.retry_create):
        network.retry_create()
        network.save()
    subscription = Subscription.objects.select_for_update().get(pk=site.subscription_id)
    if can_proceed(subscription.retry_commission):
        subscription.retry_commission()
        subscription.save()


COMMISSION = engine.register(Runbook(
    name="subscription.commission",
    description="Create the subscription's tenant container and edge on its stamp.",
    steps=(
        Step("Create tenant container", create_container, delete_container),
        # An external address is held by a gateway: without gateways there is none to hold.
        Step("Reserve external address", reserve_external_address, release_external_address,
             needs=frozenset({Capability.GATEWAYS}), optional=True),
        Step("Create gateway", create_gateway, delete_gateway,
             needs=frozenset({Capability.GATEWAYS}), optional=True),
        Step("Create default routed network", create_default_network, delete_default_network),
        Step("Allow outbound traffic", allow_outbound, delete_outbound_rule,
             needs=frozenset({Capability.FIREWALL}), optional=True),
        Step("Source NAT to the external address", add_source_nat, delete_source_nat,
             needs=frozenset({Capability.GATEWAYS, Capability.NAT}), optional=True),
    ),
    on_success=_commissioned,
    on_rollback=_commission_failed,
    on_retry=_commission_retried,
    awaited=True,  # the network and VM creates of a subscription still provisioning
))


# --- decommission ---------------------------------------------------------------------

def delete_vms(ctx):
    site = _site(ctx)
    if not site.container_id:
        return {}
    inventory = ctx.driver.inventory()
    vms = [vm for vm in inventory.vms if vm.container_id == site.container_id]
    for vm in vms:
        ctx.driver.delete_vm(key=ctx.key(vm.id), vm_id=vm.id)
        ctx.log(f"deleted VM {vm.id} ({vm.name})")
    return {"vms_deleted": len(vms)}


def _forget_resources(subscription) -> None:
    """The fabric has nothing left: the portal's resources are gone too.

    Row by row rather than one UPDATE per table, so each goes through its ``forget``
    transition: a decommission is rare and a subscription holds tens of resources, not
    millions, and no other code path needs to write the state column in bulk."""
    resources = (VirtualMachine.objects.filter(subscription=subscription),
                 Snapshot.objects.filter(vm__subscription=subscription),
                 Network.objects.filter(subscription=subscription))
    for queryset in resources:
        live = queryset.exclude(state__in=queryset.model.TERMINAL_STATES)
        for resource in live.select_for_update(of=("self",)):
            resource.forget()
            resource.quota_held = False
            resource.save()
    NetworkAddress.objects.filter(network__subscription=subscription).delete()


def delete_edge(ctx):
    site = _site(ctx)
    driver = ctx.driver
    if site.nat_rule_id:
        driver.delete_nat_rule(key=ctx.key("nat"), rule_id=site.nat_rule_id)
    if site.firewall_rule_id:
        driver.delete_firewall_rule(key=ctx.key("fw"), rule_id=site.firewall_rule_id)
    if site.container_id:
        inventory = driver.inventory()
        for network in inventory.networks:
            if network.container_id == site.container_id:
                driver.delete_network(key=ctx.key(network.id), network_id=network.id)
                ctx.log(f"deleted network {network.id} ({network.cidr})")
    if site.gateway_id:
        driver.delete_gateway(key=ctx.key("gw"), gateway_id=site.gateway_id)
    _record(ctx, nat_rule_id="", firewall_rule_id="", network_id="", gateway_id="")
    return {}


def delete_tenant_container(ctx):
    site = _site(ctx)
    if site.container_id:
        ctx.driver.delete_container(key=ctx.key(), container_id=site.container_id, force=True)
        ctx.log(f"deleted container {site.container_id}")
    ipam.release_external(site)
    with transaction.atomic():
        _record(ctx, container_id="", external_ip=None)
        site = _locked_site(ctx)
        if site.state != SiteState.DELETED:  # a resumed step finds it done
            site.mark_deleted()
            site.save()
    return {}


def _release_capacity(subscription) -> None:
    from plans import quota

    held = VirtualMachine.objects.filter(subscription=subscription, quota_held=True)
    for vm in held:
        quota.release(subscription, vm.usage(), cloud_id=subscription.plan.cloud_id)


def _decommissioned(job):
    subscription = Subscription.objects.select_for_update().get(pk=job.subscription_id)
    if not Site.objects.filter(subscription=subscription).exclude(
            state=SiteState.DELETED).exists():
        subscription.mark_deleted()
        subscription.save()
        _release_capacity(subscription)
        _forget_resources(subscription)
        QuotaLedger.objects.filter(subscription=subscription).update(used=0)
        events.record(Event.SUBSCRIPTION_DELETED, subscription, at=timezone.now())


DECOMMISSION = engine.register(Runbook(
    name="subscription.decommission",
    description="Remove everything the subscription has on its stamp.",
    steps=(
        Step("Delete VMs", delete_vms),
        Step("Delete network edge", delete_edge),
        Step("Delete tenant container", delete_tenant_container),
    ),
    on_success=_decommissioned,
    compensate=False,
))


# --- suspension -----------------------------------------------------------------------

def stop_running_vms(ctx):
    stopped = []
    for vm in VirtualMachine.objects.filter(pk__in=ctx.inputs["vms"]):
        ctx.driver.stop_vm(key=ctx.key(str(vm.pk)), vm_id=vm.fabric_id)
        ctx.log(f"stopped {vm.name}")
        stopped.append(str(vm.pk))
    return {"stopped": stopped}


def _suspension_done(job):
    for vm in VirtualMachine.objects.select_for_update().filter(pk__in=job.inputs["vms"]):
        vm.settle_stopped()
        vm.save()


SUSPEND = engine.register(Runbook(
    name="subscription.suspend", description="Stop every running VM of a suspended "
    "subscription.", steps=(Step("Stop running VMs", stop_running_vms),),
    on_success=_suspension_done, compensate=False))
