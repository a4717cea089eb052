"""Tenant network runbooks."""

from provisioning.engine import Runbook, Step, register
from provisioning.holdings import give_back, take_back
from provisioning.models import Network, Site

__all__ = ["CREATE", "DELETE"]


def _network(ctx_or_job) -> Network:
    return Network.objects.select_related("subscription").get(pk=ctx_or_job.inputs["network"])


def _locked(job) -> Network:
    return (Network.objects.select_for_update(of=("self",)).select_related("subscription")
            .get(pk=job.inputs["network"]))


def create_network(ctx):
    network = _network(ctx)
    site = Site.objects.get(pk=ctx.inputs["site"])
    info = ctx.driver.create_network(key=ctx.key(), container_id=site.container_id,
                                     name=network.name, cidr=network.cidr, kind="routed")
    Network.objects.filter(pk=network.pk).update(fabric_id=info.id,
                                                 gateway_address=info.gateway_address)
    ctx.log(f"network {info.id} {info.cidr} via {info.gateway_address}")
    return {"network_fabric_id": info.id}


def delete_created_network(ctx):
    ctx.driver.delete_network(key=ctx.key("undo"), network_id=ctx.outputs["network_fabric_id"])


def _ready(job):
    network = _locked(job)
    network.mark_ready()
    network.save()


def _failed(job):
    network = _locked(job)
    network.mark_failed()
    network.save()
    give_back(network)


def _retried(job):
    network = _locked(job)
    network.retry_create()
    network.save()
    take_back(network)


CREATE = register(Runbook(
    name="network.create", description="Create a routed tenant network on the gateway.",
    steps=(Step("Create the network", create_network, delete_created_network),),
    on_success=_ready, on_rollback=_failed, on_retry=_retried,
    awaited=True))  # the VM creates on a network still provisioning


def delete_network(ctx):
    network = _network(ctx)
    if network.fabric_id:
        ctx.driver.delete_network(key=ctx.key(), network_id=network.fabric_id)
    return {}


def _deleted(job):
    network = _locked(job)
    network.mark_deleted()
    network.save()
    give_back(network)


DELETE = register(Runbook(
    name="network.delete", description="Delete a tenant network.",
    steps=(Step("Delete the network", delete_network),), on_success=_deleted,
    compensate=False))
