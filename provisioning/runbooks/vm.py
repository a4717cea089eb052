"""VM and checkpoint runbooks. Each step's fabric call is keyed, so a resumed step
never acts twice; each job's end hook settles the VM's state and the quota."""

from base import events, prepared
from base.batch import Pending, save_state
from base.events import Event
from fabric.drivers import NotFound
from provisioning import addons, reads, sizing
from provisioning.engine import Runbook, Step, register
from provisioning.holdings import give_back, take_back
from provisioning.models import Snapshot, SnapshotState, VirtualMachine, VmState
from provisioning.sizing import VmSize

__all__ = ["CREATE", "DELETE", "RESIZE", "RESTART", "START", "STOP"]


def _vm(ctx_or_job) -> VirtualMachine:
    """The job's VM with its network, template, subscription and plan."""
    return reads.vm_step_reads(ctx_or_job.inputs["vm"])[0]


def _locked(job) -> VirtualMachine:
    """The job's VM, locked, with its subscription and plan and its template."""
    read = reads.vm_change_reads(job.inputs["vm"])
    if read is None:
        raise VirtualMachine.DoesNotExist(f"No VM {job.inputs['vm']}.")
    return read.vm


def _settle(vm: VirtualMachine, powered_on: bool) -> None:
    if powered_on:
        vm.settle_running()
    else:
        vm.settle_stopped()
    vm.save()


# --- create ---------------------------------------------------------------------------

def create_vm(ctx):
    vm, site = reads.vm_step_reads(ctx.inputs["vm"], site_id=ctx.inputs["site"])
    info = ctx.driver.create_vm(
        key=ctx.key(), container_id=site.container_id, name=vm.name, vcpus=vm.vcpus,
        memory_mb=vm.memory_mb, disk_gb=vm.disk_gb, image=vm.template.image,
        network_id=vm.network.fabric_id, ip_address=vm.ip_address)
    prepared.update(VirtualMachine, vm.pk, fabric_id=info.id)
    ctx.log(f"VM {info.id} on {vm.ip_address}, {info.power_state}")
    return {"fabric_id": info.id}


def delete_created_vm(ctx):
    ctx.driver.delete_vm(key=ctx.key("undo"), vm_id=ctx.outputs["fabric_id"])
    VirtualMachine.objects.filter(pk=ctx.inputs["vm"]).update(fabric_id="")


def _created(job):
    vm = _locked(job)
    previous = vm.state
    vm.mark_provisioned()
    writes = Pending()  # the audit row, in the VM's UPDATE (on PostgreSQL)
    events.record(Event.VM_CREATED, vm, writes=writes)
    save_state(vm, previous, writes)
    addons.vm_created(vm)  # a DR add-on protects it too


def _create_failed(job):
    vm = _locked(job)
    vm.mark_failed()
    vm.save()
    give_back(vm)


def _create_retried(job):
    vm = _locked(job)
    vm.retry_create()
    vm.save()
    take_back(vm)


CREATE = register(Runbook(
    name="vm.create", description="Create a VM from a template and power it on.",
    steps=(Step("Create and start the VM", create_vm, delete_created_vm),),
    on_success=_created, on_rollback=_create_failed, on_retry=_create_retried))


# --- power ----------------------------------------------------------------------------

def _power(name: str, call, powered_on: bool):
    def do(ctx):
        vm = _vm(ctx)
        info = call(ctx.driver)(key=ctx.key(), vm_id=vm.fabric_id)
        ctx.log(f"VM {vm.fabric_id} is {info.power_state}")
        return {}

    def done(job):
        _settle(_locked(job), powered_on)

    def undone(job):
        _settle(_locked(job), job.inputs["previous"] == VmState.RUNNING)

    return register(Runbook(name=name, steps=(Step(name.split(".")[1].title() + " the VM", do),),
                            on_success=done, on_rollback=undone))


START = _power("vm.start", lambda d: d.start_vm, powered_on=True)
STOP = _power("vm.stop", lambda d: d.stop_vm, powered_on=False)
RESTART = _power("vm.restart", lambda d: d.restart_vm, powered_on=True)


# --- resize ---------------------------------------------------------------------------
# The fabric resizes a stopped VM: stop it if it runs, resize, start it again.

def _was_running(ctx) -> bool:
    return ctx.inputs["previous"] == VmState.RUNNING


def stop_for_change(ctx):
    if _was_running(ctx):
        ctx.driver.stop_vm(key=ctx.key(), vm_id=_vm(ctx).fabric_id)
        ctx.log("stopped")
    return {}


def start_after_undo(ctx):
    if _was_running(ctx):
        ctx.driver.start_vm(key=ctx.key("undo"), vm_id=_vm(ctx).fabric_id)


def resize(ctx):
    info = ctx.driver.resize_vm(key=ctx.key(), vm_id=_vm(ctx).fabric_id,
                                vcpus=ctx.inputs["vcpus"], memory_mb=ctx.inputs["memory_mb"])
    ctx.log(f"now {info.vcpus} vCPUs, {info.memory_mb} MB")
    return {}


def resize_back(ctx):
    ctx.driver.resize_vm(key=ctx.key("undo"), vm_id=_vm(ctx).fabric_id,
                         vcpus=ctx.inputs["old_vcpus"], memory_mb=ctx.inputs["old_memory_mb"])


def start_after_change(ctx):
    if _was_running(ctx):
        ctx.driver.start_vm(key=ctx.key(), vm_id=_vm(ctx).fabric_id)
        ctx.log("started")
    return {}


def _resize_delta(vm, job) -> dict[str, int]:
    """What the job's resize changes in the quota. The service reserved its growth up
    front: a resize that happened gives back its shrink, one rolled back its growth."""
    old = VmSize.of(vm)
    return sizing.resize_delta(old, old.resized(vcpus=job.inputs["vcpus"],
                                                memory_mb=job.inputs["memory_mb"]))


def _resized(job):
    from plans import quota

    vm = _locked(job)
    quota.release(vm.subscription, sizing.shrink(_resize_delta(vm, job)),
                  cloud_id=vm.subscription.plan.cloud_id)
    vm.vcpus, vm.memory_mb = job.inputs["vcpus"], job.inputs["memory_mb"]
    _settle(vm, _was_running(job))


def _resize_failed(job):
    from plans import quota

    vm = _locked(job)
    quota.release(vm.subscription, sizing.growth(_resize_delta(vm, job)),
                  cloud_id=vm.subscription.plan.cloud_id)
    _settle(vm, _was_running(job))


RESIZE = register(Runbook(
    name="vm.resize", description="Change a VM's vCPUs and memory.",
    steps=(Step("Stop the VM if it runs", stop_for_change, start_after_undo),
           Step("Resize", resize, resize_back),
           Step("Start the VM again if it ran", start_after_change)),
    on_success=_resized, on_rollback=_resize_failed))


# --- delete ---------------------------------------------------------------------------

def delete_vm(ctx):
    vm = _vm(ctx)
    if vm.fabric_id:
        try:
            replication = ctx.driver.replication_status(vm.fabric_id)
        except NotFound:
            # Gone already: an earlier delivery of this step deleted it, and its worker
            # died before the step was recorded (a resumed step must not fail on it).
            ctx.log(f"{vm.fabric_id} already gone")
            return {}
        # The fabric keeps a replicating VM: stop replicating it first (DR add-on).
        if replication is not None:
            ctx.driver.disable_replication(key=ctx.key("replication"), vm_id=vm.fabric_id)
            ctx.log("replication disabled")
        ctx.driver.delete_vm(key=ctx.key(), vm_id=vm.fabric_id)
        ctx.log(f"deleted {vm.fabric_id}")
    return {}


def _deleted(job):
    vm = _locked(job)
    previous = vm.state
    vm.mark_deleted()
    give_back(vm, locked=True)
    for snapshot in vm.snapshots.select_for_update().exclude(state=SnapshotState.DELETED):
        give_back(snapshot)
        snapshot.forget()
        snapshot.save()
    writes = Pending()  # the audit row, in the VM's UPDATE (on PostgreSQL)
    events.record(Event.VM_DELETED, vm, writes=writes)
    save_state(vm, previous, writes)
    addons.vm_deleted(vm)


DELETE = register(Runbook(
    name="vm.delete", description="Delete a VM and its checkpoints.",
    steps=(Step("Delete the VM", delete_vm),), on_success=_deleted, compensate=False))


# --- checkpoints ----------------------------------------------------------------------

def _snapshot(ctx_or_job) -> Snapshot:
    return Snapshot.objects.select_related("vm__subscription").get(
        pk=ctx_or_job.inputs["snapshot"])


def _locked_snapshot(job) -> Snapshot:
    return (Snapshot.objects.select_for_update(of=("self",)).select_related("vm__subscription")
            .get(pk=job.inputs["snapshot"]))


def create_checkpoint(ctx):
    snapshot = _snapshot(ctx)
    info = ctx.driver.create_checkpoint(key=ctx.key(), vm_id=snapshot.vm.fabric_id,
                                        name=snapshot.name)
    Snapshot.objects.filter(pk=snapshot.pk).update(fabric_id=info.id)
    ctx.log(f"checkpoint {info.id}")
    return {"checkpoint_id": info.id}


def delete_created_checkpoint(ctx):
    snapshot = _snapshot(ctx)
    ctx.driver.delete_checkpoint(key=ctx.key("undo"), vm_id=snapshot.vm.fabric_id,
                                 checkpoint_id=ctx.outputs["checkpoint_id"])


def _snapshot_ready(job):
    snapshot = _locked_snapshot(job)
    snapshot.mark_ready()
    snapshot.save()


def _snapshot_failed(job):
    snapshot = _locked_snapshot(job)
    snapshot.mark_failed()
    snapshot.save()
    give_back(snapshot)


CREATE_SNAPSHOT = register(Runbook(
    name="snapshot.create", description="Take a checkpoint of a VM.",
    steps=(Step("Create the checkpoint", create_checkpoint, delete_created_checkpoint),),
    on_success=_snapshot_ready, on_rollback=_snapshot_failed))


def stop_for_restore(ctx):
    if _was_running(ctx):
        ctx.driver.stop_vm(key=ctx.key(), vm_id=_snapshot(ctx).vm.fabric_id)
        ctx.log("stopped")
    return {}


def start_after_failed_restore(ctx):
    if _was_running(ctx):
        ctx.driver.start_vm(key=ctx.key("undo"), vm_id=_snapshot(ctx).vm.fabric_id)


def restore_checkpoint(ctx):
    snapshot = _snapshot(ctx)
    ctx.driver.restore_checkpoint(key=ctx.key(), vm_id=snapshot.vm.fabric_id,
                                  checkpoint_id=snapshot.fabric_id)
    ctx.log(f"restored {snapshot.fabric_id}")
    return {}


def start_after_restore(ctx):
    if _was_running(ctx):
        ctx.driver.start_vm(key=ctx.key(), vm_id=_snapshot(ctx).vm.fabric_id)
        ctx.log("started")
    return {}


def _restore_ended(job):
    snapshot = _locked_snapshot(job)
    snapshot.finish_restoring()
    snapshot.save()
    vm = VirtualMachine.objects.select_for_update().get(pk=snapshot.vm_id)
    _settle(vm, _was_running(job))


RESTORE_SNAPSHOT = register(Runbook(
    name="snapshot.restore", description="Restore a VM to a checkpoint.",
    steps=(Step("Stop the VM if it runs", stop_for_restore, start_after_failed_restore),
           Step("Restore the checkpoint", restore_checkpoint),
           Step("Start the VM again if it ran", start_after_restore)),
    on_success=_restore_ended, on_rollback=_restore_ended))


def delete_checkpoint(ctx):
    snapshot = _snapshot(ctx)
    if snapshot.fabric_id:
        ctx.driver.delete_checkpoint(key=ctx.key(), vm_id=snapshot.vm.fabric_id,
                                     checkpoint_id=snapshot.fabric_id)
    return {}


def _snapshot_deleted(job):
    snapshot = _locked_snapshot(job)
    snapshot.mark_deleted()
    snapshot.save()
    give_back(snapshot)


DELETE_SNAPSHOT = register(Runbook(
    name="snapshot.delete", description="Delete a checkpoint.",
    steps=(Step("Delete the checkpoint", delete_checkpoint),),
    on_success=_snapshot_deleted, compensate=False))
