"""DR runbooks: protect, protect a new VM, sync, test failover, failover, failback,
unprotect. Steps make their per-VM fabric calls with bounded concurrency
(``provisioning.engine.fanout``), one idempotency key per VM, and check the fabric's
state before acting, so a retried step picks up where it stopped. The calls only talk
to the stamps; the step's own thread records each answer as it comes.
Failover and failback move forward only: a failure of some VMs leaves the others done
and a consistent, reported state (which VMs are where is recorded per VM as it happens)
that a retry completes."""

from functools import partial

from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from dr_addon.models import (
    ActiveSite,
    DrillKind,
    DrReport,
    ProtectedNetwork,
    ProtectedVm,
    ProtectedVmState,
    Protection,
)
from fabric.drivers import DriverError, PowerState
from fabric.services import driver_for
from provisioning import ipam
from provisioning.engine import Runbook, Step, register
from provisioning.engine.fanout import each_done, fan_out
from provisioning.models import (
    Network,
    NetworkState,
    Site,
    SiteRole,
    SiteState,
    VirtualMachine,
    VmState,
)

__all__ = ["FAILBACK", "FAILOVER", "PROTECT", "PROTECT_VM", "SYNC", "TEST_FAILOVER"]


def _protection(ctx_or_job) -> Protection:
    return Protection.objects.select_related(
        "recovery_site__cloud__stamp", "subscription", "addon").get(
        pk=ctx_or_job.inputs["protection"])


def _primary(protection: Protection) -> Site:
    return Site.objects.select_related("cloud__stamp").get(
        subscription_id=protection.subscription_id, role=SiteRole.PRIMARY,
        state=SiteState.READY)


def _locked(model, pk):
    return model.objects.select_for_update().get(pk=pk)


def _drivers(protection: Protection):
    return (driver_for(_primary(protection).cloud.stamp),
            driver_for(protection.recovery_site.cloud.stamp))


def _live_vms(protection: Protection):
    return (VirtualMachine.objects.filter(subscription_id=protection.subscription_id)
            .exclude(state__in=[VmState.DELETED, VmState.DELETING, VmState.FAILED,
                                VmState.PROVISIONING])
            .exclude(fabric_id="").order_by("name"))


def _vm_id(row: ProtectedVm) -> str:
    return str(row.vm_id)


def _each_vm(ctx, rows, call):
    """``(row, answer)`` of each protected VM's call as it ends; raises, once all have
    ended, if some failed (``fanout.each_done``)."""
    return each_done(ctx, rows, call, name=_vm_id)


def _on_every_vm(ctx, protection: Protection, call, *related: str) -> None:
    """``call(row)`` for each protected VM, when nothing of the answers is recorded."""
    rows = ProtectedVm.objects.filter(protection=protection).select_related(*related)
    for _ in _each_vm(ctx, list(rows), call):
        pass


def _target(site: Site) -> dict:
    """Where a replication goes: a site's stamp and container."""
    return {"target_endpoint": site.cloud.stamp.endpoint,
            "target_container_id": site.container_id,
            "target_token": site.cloud.stamp.credentials.get("token")}


def _ensure_power(driver, key: str, vm_id: str, on: bool) -> None:
    info = driver.get_vm(vm_id)
    if (info.power_state == PowerState.RUNNING) == on:
        return
    (driver.start_vm if on else driver.stop_vm)(key=key, vm_id=vm_id)


def _set_power(ctx, *, site: str, on: bool) -> dict:
    """Power every protected VM on or off on one site (checked first: safe to redo)."""
    protection = _protection(ctx)
    primary, recovery = _drivers(protection)
    on_primary = site == ActiveSite.PRIMARY
    driver = primary if on_primary else recovery

    def power(row: ProtectedVm) -> None:
        _ensure_power(driver, ctx.key(str(row.vm_id)),
                      row.primary_fabric_id if on_primary else row.recovery_fabric_id, on=on)

    _on_every_vm(ctx, protection, power)
    return {}


# --- protect --------------------------------------------------------------------------

def create_recovery_container(ctx):
    protection = _protection(ctx)
    site = protection.recovery_site
    _, recovery = _drivers(protection)
    container = recovery.create_container(key=ctx.key(), name=f"dr-{protection.subscription_id}")
    Site.objects.filter(pk=site.pk).update(container_id=container.id)
    address = ipam.allocate_external(site, held_by_fabric=recovery.external_addresses())
    gateway = recovery.create_gateway(key=ctx.key("gw"), container_id=container.id,
                                      external_ip=address)
    Site.objects.filter(pk=site.pk).update(gateway_id=gateway.id, external_ip=address)
    ctx.log(f"recovery container {container.id}, gateway on {address}")
    return {"recovery_container": container.id}


def delete_recovery_container(ctx):
    protection = _protection(ctx)
    _, recovery = _drivers(protection)
    recovery.delete_container(key=ctx.key("undo"), container_id=ctx.outputs[
        "recovery_container"], force=True)
    ipam.release_external(protection.recovery_site)
    with transaction.atomic():
        site = _locked(Site, protection.recovery_site_id)
        site.container_id, site.gateway_id, site.external_ip = "", "", None
        if site.state != SiteState.FAILED:  # a resumed undo finds it done
            site.mark_failed()
        site.save()


def recreate_networks(ctx):
    """The tenant's networks, from their definitions, on the recovery side."""
    protection = _protection(ctx)
    _, recovery = _drivers(protection)
    site = Site.objects.get(pk=protection.recovery_site_id)
    made = 0
    for network in Network.objects.filter(subscription_id=protection.subscription_id,
                                          state=NetworkState.READY):
        if ProtectedNetwork.objects.filter(network=network).exists():
            continue
        info = recovery.create_network(key=ctx.key(str(network.pk)),
                                       container_id=site.container_id, name=network.name,
                                       cidr=network.cidr, kind="routed")
        ProtectedNetwork.objects.create(protection=protection, network=network,
                                        primary_fabric_id=network.fabric_id,
                                        recovery_fabric_id=info.id)
        if network.is_default:
            rule = recovery.add_nat_rule(key=ctx.key(f"nat-{network.pk}"),
                                         container_id=site.container_id,
                                         internal_cidr=network.cidr,
                                         external_ip=site.external_ip)
            Site.objects.filter(pk=site.pk).update(network_id=info.id,
                                                   network_cidr=network.cidr,
                                                   nat_rule_id=rule)
        made += 1
        ctx.log(f"network {network.name} {network.cidr} -> {info.id}")
    return {"networks": made}


def _replicating_to(protection: Protection) -> dict:
    """Where ``enable_replication`` sends a VM: the recovery site's stamp and container
    (read again: the first step of ``dr.protect`` made the container)."""
    site = protection.recovery_site
    return {**_target(site),
            "target_container_id": Site.objects.get(pk=site.pk).container_id}


def _replicate(ctx, primary_driver, target: dict, vm: VirtualMachine):
    """The fabric call alone (any thread): ``vm`` replicates to ``target``."""
    return primary_driver.enable_replication(key=ctx.key(str(vm.pk)), vm_id=vm.fabric_id,
                                             **target)


def _record_protected(ctx, protection, vm: VirtualMachine, info) -> ProtectedVm:
    with transaction.atomic():
        row, _ = ProtectedVm.objects.get_or_create(vm=vm, defaults={"protection": protection})
        row = _locked(ProtectedVm, row.pk)
        row.protection = protection
        row.primary_fabric_id, row.recovery_fabric_id = vm.fabric_id, info.partner_vm_id
        row.sequence, row.last_sync_at = info.sequence, info.last_sync_at
        row.mark_protected()
        row.save()
    ctx.log(f"{vm.name}: replica {info.partner_vm_id}, sequence {info.sequence}")
    return row


def enable_replication(ctx):
    protection = _protection(ctx)
    primary, _ = _drivers(protection)
    vms = list(_live_vms(protection))
    done = set(ProtectedVm.objects.filter(vm__in=[vm.pk for vm in vms],
                                          state=ProtectedVmState.PROTECTED)
               .values_list("vm_id", flat=True))
    target = _replicating_to(protection)
    for vm, info in each_done(ctx, [vm for vm in vms if vm.pk not in done],
                              partial(_replicate, ctx, primary, target),
                              name=lambda vm: vm.name):
        _record_protected(ctx, protection, vm, info)
    return {"protected_vms": len(vms)}


def disable_replication(ctx):
    protection = _protection(ctx)
    primary, _ = _drivers(protection)

    def disable(row: ProtectedVm) -> None:
        primary.disable_replication(key=ctx.key(f"undo-{row.vm_id}"),
                                    vm_id=row.primary_fabric_id)

    for row, _ in _each_vm(ctx, list(ProtectedVm.objects.filter(protection=protection)),
                           disable):
        row.delete()


def _protected(job):
    protection = _locked(Protection, job.inputs["protection"])
    protection.mark_protected()
    protection.save()
    site = _locked(Site, protection.recovery_site_id)
    site.mark_ready()
    site.save()


def _protect_failed(job):
    protection = _locked(Protection, job.inputs["protection"])
    protection.mark_error()
    protection.save()


def _protect_retried(job):
    protection = _locked(Protection, job.inputs["protection"])
    protection.retry()
    protection.save()
    site = _locked(Site, protection.recovery_site_id)
    site.retry()
    site.save()


PROTECT = register(Runbook(
    name="dr.protect", description="Protect every VM of a subscription on the recovery stamp.",
    steps=(Step("Create the recovery container and gateway", create_recovery_container,
                delete_recovery_container),
           Step("Recreate tenant networks on the recovery side", recreate_networks),
           Step("Enable replication of every VM", enable_replication, disable_replication)),
    on_success=_protected, on_rollback=_protect_failed, on_retry=_protect_retried))


def protect_one_vm(ctx):
    protection = _protection(ctx)
    primary, _ = _drivers(protection)
    vm = VirtualMachine.objects.get(pk=ctx.inputs["vm"])
    info = _replicate(ctx, primary, _replicating_to(protection), vm)
    _record_protected(ctx, protection, vm, info)
    return {}


PROTECT_VM = register(Runbook(
    name="dr.protect-vm", description="Protect a VM created in a protected subscription.",
    steps=(Step("Enable replication", protect_one_vm),), compensate=False))


# --- sync -----------------------------------------------------------------------------

def sync_all(ctx):
    protection = _protection(ctx)
    primary, _ = _drivers(protection)
    synced = 0
    rows = list(ProtectedVm.objects.filter(protection=protection,
                                           state=ProtectedVmState.PROTECTED))
    for done in fan_out(rows, lambda row: primary.sync_replication(
            key=ctx.key(str(row.vm_id)), vm_id=row.primary_fabric_id)):
        row, info = done.item, done.result
        if isinstance(done.error, DriverError):
            ctx.log(f"{row.vm_id}: {done.error}")
            continue  # that VM's lag grows and shows; the others still sync
        if done.error is not None:
            raise done.error
        ProtectedVm.objects.filter(pk=row.pk).update(sequence=info.sequence,
                                                     last_sync_at=info.last_sync_at)
        synced += 1
    ctx.log(f"synced {synced} VMs")
    return {"synced": synced}


SYNC = register(Runbook(name="dr.sync", description="Replicate the latest changes.",
                        steps=(Step("Sync every protected VM", sync_all),), compensate=False,
                        max_attempts=2))


# --- test failover --------------------------------------------------------------------

def create_drill_container(ctx):
    protection = _protection(ctx)
    container = ctx.driver.create_container(key=ctx.key(),
                                            name=f"drill-{protection.subscription_id}")
    made = {}
    for row in ProtectedNetwork.objects.filter(protection=protection).select_related("network"):
        info = ctx.driver.create_network(key=ctx.key(str(row.network_id)),
                                         container_id=container.id, name=row.network.name,
                                         cidr=row.network.cidr, kind="isolated")
        made[str(row.network_id)] = info.id
    ctx.log(f"isolated drill container {container.id} with {len(made)} networks")
    return {"drill_container": container.id, "drill_networks": made}


def delete_drill_container(ctx):
    ctx.driver.delete_container(key=ctx.key("undo"),
                                container_id=ctx.outputs["drill_container"], force=True)


def start_drill_copies(ctx):
    protection = _protection(ctx)
    driver, container = ctx.driver, ctx.outputs["drill_container"]
    networks = ctx.outputs["drill_networks"]

    def start(row: ProtectedVm):
        vm = row.vm
        return driver.create_vm(
            key=ctx.key(str(vm.pk)), container_id=container,
            name=f"drill-{vm.name}", vcpus=vm.vcpus, memory_mb=vm.memory_mb,
            disk_gb=vm.disk_gb, image=f"replica:{row.recovery_fabric_id}",
            network_id=networks.get(str(vm.network_id)), ip_address=vm.ip_address)

    rows = list(ProtectedVm.objects.filter(protection=protection).select_related("vm"))
    started = {str(row.vm_id): info.id for row, info in _each_vm(ctx, rows, start)}
    ctx.log(f"started {len(started)} recovery copies")
    return {"drill_vms": started}


def check_drill_copies(ctx):
    driver, copies = ctx.driver, ctx.outputs["drill_vms"]
    checked = {vm_id: info.power_state == PowerState.RUNNING for vm_id, info in each_done(
        ctx, list(copies), lambda vm_id: driver.get_vm(copies[vm_id]))}
    failed = [vm for vm, ok in checked.items() if not ok]
    if failed:
        from base.errors import Conflict, ErrorCode

        raise Conflict(f"{len(failed)} recovery copies did not start.", code=ErrorCode.DRILL_CHECK)
    ctx.log(f"all {len(checked)} copies are running on their isolated networks")
    return {"checked": len(checked)}


def clean_up_drill(ctx):
    ctx.driver.delete_container(key=ctx.key(), container_id=ctx.outputs["drill_container"],
                                force=True)
    ctx.log("drill container removed")
    return {}


def _finish_report(job, outcome: str, **details):
    report = DrReport.objects.get(pk=job.inputs["report"])
    report.finished_at = timezone.now()
    report.outcome = outcome
    report.details = {**report.details, **details,
                      "duration_seconds": round((report.finished_at
                                                 - report.started_at).total_seconds(), 2)}
    if job.error:
        report.details["error"] = job.error
    report.save()
    return report


TEST_FAILOVER = register(Runbook(
    name="dr.test-failover", description="Start recovery copies in an isolated network, "
    "check them and remove them; production is untouched.",
    steps=(Step("Create an isolated drill container", create_drill_container,
                delete_drill_container),
           Step("Start recovery copies", start_drill_copies),
           Step("Check the copies", check_drill_copies),
           Step("Clean up", clean_up_drill)),
    on_success=lambda job: _finish_report(job, "passed", vms=job.outputs.get("checked", 0)),
    on_rollback=lambda job: _finish_report(job, "failed")))


# --- failover -------------------------------------------------------------------------

def _unplanned(ctx) -> bool:
    return ctx.inputs.get("mode") == DrillKind.UNPLANNED


def stop_primary_vms(ctx):
    if _unplanned(ctx):
        ctx.log("unplanned: the primary is not asked")
        return {}
    _set_power(ctx, site=ActiveSite.PRIMARY, on=False)
    ctx.log("primary VMs stopped")
    return {}


def final_sync(ctx):
    protection = _protection(ctx)
    if _unplanned(ctx):
        oldest = min((r.last_sync_at for r in ProtectedVm.objects.filter(
            protection=protection) if r.last_sync_at), default=None)
        loss = (timezone.now() - oldest).total_seconds() if oldest else None
        ctx.log(f"unplanned: starting from the last sync; data-loss window {loss} s")
        return {"data_loss_seconds": loss}
    primary, _ = _drivers(protection)
    rows = list(ProtectedVm.objects.filter(protection=protection))
    for row, info in _each_vm(ctx, rows, lambda row: primary.sync_replication(
            key=ctx.key(str(row.vm_id)), vm_id=row.primary_fabric_id)):
        ProtectedVm.objects.filter(pk=row.pk).update(sequence=info.sequence,
                                                     last_sync_at=info.last_sync_at)
    ctx.log("final sync done: nothing is lost")
    return {"data_loss_seconds": 0.0}


def fail_over_replicas(ctx):
    protection = _protection(ctx)
    _, recovery = _drivers(protection)
    networks = dict(ProtectedNetwork.objects.filter(protection=protection).values_list(
        "network_id", "recovery_fabric_id"))

    def fail_over(row: ProtectedVm) -> None:
        recovery.failover_replication(key=ctx.key(str(row.vm_id)),
                                      vm_id=row.recovery_fabric_id,
                                      network_id=networks.get(row.vm.network_id),
                                      ip_address=row.vm.ip_address)

    rows = list(ProtectedVm.objects.filter(protection=protection).select_related("vm"))
    for row, _ in _each_vm(ctx, rows, fail_over):
        with transaction.atomic():
            replica = _locked(ProtectedVm, row.pk)
            replica.fail_over()
            replica.save()
    return {}


@transaction.atomic
def _switch_to(protection: Protection, site: str) -> None:
    """VMs keep their UUIDs; their fabric ids and the active site change sides."""
    recovery = site == ActiveSite.RECOVERY
    for row in ProtectedVm.objects.filter(protection=protection):
        vm = _locked(VirtualMachine, row.vm_id)
        vm.fabric_id = row.recovery_fabric_id if recovery else row.primary_fabric_id
        if can_proceed(vm.switch_site):  # one being deleted stays so: its job settles it
            vm.switch_site()
        vm.save()
    for row in ProtectedNetwork.objects.filter(protection=protection):
        Network.objects.filter(pk=row.network_id).update(
            fabric_id=row.recovery_fabric_id if recovery else row.primary_fabric_id)
    Site.objects.filter(subscription_id=protection.subscription_id).update(is_active=False)
    Site.objects.filter(pk=protection.recovery_site_id if recovery
                        else _primary(protection).pk).update(is_active=True)
    Protection.objects.filter(pk=protection.pk).update(active_site=site)


def switch_to_recovery(ctx):
    _switch_to(_protection(ctx), ActiveSite.RECOVERY)
    ctx.log("the subscription now runs on the recovery site")
    return {}


def _failed_over(job):
    protection = _locked(Protection, job.inputs["protection"])
    protection.mark_failed_over()
    protection.save()
    report = _finish_report(job, "succeeded", mode=job.inputs["mode"])
    DrReport.objects.filter(pk=report.pk).update(
        data_loss_seconds=job.outputs.get("data_loss_seconds"))


FAILOVER = register(Runbook(
    name="dr.failover", description="Run the subscription on its recovery site.",
    steps=(Step("Stop VMs on the primary site", stop_primary_vms),
           Step("Final sync", final_sync),
           Step("Fail over the replicas", fail_over_replicas),
           Step("Start VMs on the recovery site",
                partial(_set_power, site=ActiveSite.RECOVERY, on=True)),
           Step("Switch the active site", switch_to_recovery)),
    on_success=_failed_over, compensate=False))


# --- failback -------------------------------------------------------------------------

def reverse_replication(ctx):
    protection = _protection(ctx)
    primary_site = _primary(protection)
    _, recovery = _drivers(protection)
    target = _target(primary_site)

    def reverse(row: ProtectedVm) -> None:
        status = recovery.replication_status(row.recovery_fabric_id)
        if status is None or status.role != "source":
            recovery.reverse_replication(key=ctx.key(str(row.vm_id)),
                                         vm_id=row.recovery_fabric_id, **target)

    _on_every_vm(ctx, protection, reverse)
    ctx.log("replicating back to the primary site")
    return {}


def sync_back(ctx):
    protection = _protection(ctx)
    _, recovery = _drivers(protection)
    _on_every_vm(ctx, protection, lambda row: recovery.sync_replication(
        key=ctx.key(str(row.vm_id)), vm_id=row.recovery_fabric_id))
    return {}


def fail_over_to_primary(ctx):
    protection = _protection(ctx)
    primary, _ = _drivers(protection)
    networks = dict(ProtectedNetwork.objects.filter(protection=protection).values_list(
        "network_id", "primary_fabric_id"))

    def fail_over(row: ProtectedVm) -> None:
        # An adopted old primary is still on its network with its address.
        attached = primary.get_vm(row.primary_fabric_id).network_id is not None
        primary.failover_replication(
            key=ctx.key(str(row.vm_id)), vm_id=row.primary_fabric_id,
            network_id=None if attached else networks.get(row.vm.network_id),
            ip_address=None if attached else row.vm.ip_address)

    _on_every_vm(ctx, protection, fail_over, "vm")
    return {}


def protect_again(ctx):
    """Replicate forward again: the recovery copies become the replicas."""
    protection = _protection(ctx)
    primary, _ = _drivers(protection)
    site = protection.recovery_site
    target = _target(site)

    def reverse(row: ProtectedVm):
        status = primary.replication_status(row.primary_fabric_id)
        if status is None or status.role != "source":
            return primary.reverse_replication(key=ctx.key(str(row.vm_id)),
                                               vm_id=row.primary_fabric_id, **target)
        return None  # replicating forward already

    for row, info in _each_vm(ctx, list(ProtectedVm.objects.filter(protection=protection)),
                              reverse):
        if info is not None:
            with transaction.atomic():
                replica = _locked(ProtectedVm, row.pk)
                replica.recovery_fabric_id = info.partner_vm_id
                replica.sequence, replica.last_sync_at = info.sequence, info.last_sync_at
                replica.protect_again()
                replica.save()
    return {}


def switch_to_primary(ctx):
    _switch_to(_protection(ctx), ActiveSite.PRIMARY)
    return {}


def _failed_back(job):
    protection = _locked(Protection, job.inputs["protection"])
    protection.mark_failed_back()
    protection.save()
    _finish_report(job, "succeeded")


FAILBACK = register(Runbook(
    name="dr.failback", description="Bring the subscription home and protect it again.",
    # After an unplanned failover the old primaries may have come back running.
    steps=(Step("Stop stale VMs on the primary site",
                partial(_set_power, site=ActiveSite.PRIMARY, on=False)),
           Step("Reverse replication", reverse_replication),
           Step("Stop VMs on the recovery site",
                partial(_set_power, site=ActiveSite.RECOVERY, on=False)),
           Step("Sync back", sync_back),
           Step("Fail over to the primary site", fail_over_to_primary),
           Step("Start VMs on the primary site",
                partial(_set_power, site=ActiveSite.PRIMARY, on=True)),
           Step("Switch the active site", switch_to_primary),
           Step("Protect again", protect_again)),
    on_success=_failed_back, compensate=False))


# --- unprotect ------------------------------------------------------------------------

def disable_all(ctx):
    disable_replication(ctx)
    return {}


def remove_recovery_site(ctx):
    protection = _protection(ctx)
    _, recovery = _drivers(protection)
    site = protection.recovery_site
    if site.container_id:
        recovery.delete_container(key=ctx.key(), container_id=site.container_id, force=True)
    ipam.release_external(site)
    ProtectedNetwork.objects.filter(protection=protection).delete()
    with transaction.atomic():
        site = _locked(Site, site.pk)
        site.container_id = site.gateway_id = site.nat_rule_id = site.network_id = ""
        site.external_ip = None
        if site.state != SiteState.DELETED:  # a resumed step finds it done
            site.mark_deleted()
        site.save()
    return {}


UNPROTECT = register(Runbook(
    name="dr.unprotect", description="Disable replication and clean the recovery side.",
    steps=(Step("Disable replication", disable_all),
           Step("Remove the recovery site", remove_recovery_site)),
    on_success=lambda job: Protection.objects.filter(pk=job.inputs["protection"]).delete(),
    compensate=False))
