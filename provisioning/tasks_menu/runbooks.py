"""The runbooks that can run as self-service tasks, and the built-in tasks made of them.

A ``TaskRunbook`` is a registered runbook with the widest input schema it accepts and the
``launch`` that turns validated inputs into its job (through the same services as the API,
so quota and state rules hold). A provider publishes one as a task with a narrower schema.
"""

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.contrib.auth.hashers import make_password
from django.db import transaction

from base.errors import Invalid
from fabric.drivers import Capability, NotFound
from plans.models import Subscription
from provisioning import engine, resources
from provisioning.engine import Runbook, Step, register
from provisioning.models import (
    ConsolePassword,
    Job,
    SnapshotState,
    TaskRun,
    VirtualMachine,
)
from provisioning.runbooks import vm as vm_runbooks
from provisioning.tasks_menu.recording import task_run_of, task_step

__all__ = ["BUILTINS", "TASK_RUNBOOKS", "Builtin", "TaskRunbook", "task_runbook"]

Launch = Callable[..., Job]


@dataclass(frozen=True)
class TaskRunbook:
    runbook: Runbook
    schema: dict[str, Any]
    launch: Launch
    resource: str = "vm"  # the input naming the object a run acts on (one run at a time)


@dataclass(frozen=True)
class Builtin:
    slug: str
    title: str
    description: str
    runbook: str
    requires_approval: bool = False
    roles: list[str] = field(default_factory=lambda: ["owner", "admin", "operator"])


TASK_RUNBOOKS: dict[str, TaskRunbook] = {}


def task_runbook(runbook: Runbook, schema: dict[str, Any], launch: Launch | None = None,
                 **kwargs) -> TaskRunbook:
    entry = TaskRunbook(runbook=runbook, schema=schema, launch=launch or _enqueue(runbook),
                        **kwargs)
    TASK_RUNBOOKS[runbook.name] = entry
    return entry


def _enqueue(runbook: Runbook) -> Launch:
    """Launch for a task runbook: a job on the VM with the run's inputs."""
    def launch(subscription: Subscription, inputs: dict[str, Any], chosen: dict[str, Any], *,
               acting_user) -> Job:
        site = resources.active_site(subscription)
        vm = chosen.get("vm")
        return engine.enqueue(runbook, stamp=site.cloud.stamp, subscription=subscription,
                              resource=vm, acting_user=acting_user,
                              inputs={"site": str(site.pk), **inputs})
    return launch


def _schema(required: list[str], **properties) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": required,
            "properties": properties}


VM_INPUT = {"type": "string", "title": "VM", "x-resource": "vm",
            "description": "One of your VMs."}
# Absolute, without a '..' segment or a NUL: nothing outside the guest's tree.
PATH_PATTERN = r"^(?!.*(?:^|/)\.\.(?:/|$))/[^\x00]*$"


def _vm(ctx) -> VirtualMachine:
    return VirtualMachine.objects.select_related("network", "subscription").get(
        pk=ctx.inputs["vm"])


def _result(message: str, **outputs) -> dict[str, Any]:
    return {"result": {"message": message, "outputs": outputs}}


# --- restore-file ---------------------------------------------------------------------

@task_step
def find_checkpoint(ctx):
    vm, path, day = _vm(ctx), ctx.inputs["path"], date.fromisoformat(ctx.inputs["day"])
    # Checked again now the run starts: the checkpoint may have gone since it was asked.
    snapshot = next((s for s in vm.snapshots.filter(state=SnapshotState.READY)
                     .order_by("-created_at") if s.created_at.date() == day), None)
    if snapshot is None:
        raise Invalid(f"The VM has no checkpoint on {day} any more.")
    if snapshot.fabric_id not in {c.id for c in ctx.driver.list_checkpoints(vm.fabric_id)}:
        raise Invalid(f"The checkpoint of {day} is not on the stamp any more.")
    held = {f.path: f for f in ctx.driver.list_files(vm.fabric_id, snapshot.fabric_id)}
    if path not in held:
        raise Invalid(f"The checkpoint of {day} does not hold {path}.")
    ctx.log(f"checkpoint '{snapshot.name}' of {snapshot.created_at:%Y-%m-%d %H:%M} UTC "
            f"holds {path} ({held[path].size} bytes)")
    return {"checkpoint_id": snapshot.fabric_id, "checkpoint_name": snapshot.name,
            "size": held[path].size}


@task_step
def keep_current_file(ctx):
    vm, path = _vm(ctx), ctx.inputs["path"]
    try:
        current = ctx.driver.read_file(vm.fabric_id, path)
    except NotFound:
        ctx.log(f"{path} is not on the VM now")
        return {"previous": None}
    ctx.log(f"{path} is {current.size} bytes now")
    return {"previous": current.content}


@task_step
def restore_file(ctx):
    vm, path = _vm(ctx), ctx.inputs["path"]
    restored = ctx.driver.restore_file(key=ctx.key(), vm_id=vm.fabric_id,
                                       checkpoint_id=ctx.outputs["checkpoint_id"], path=path)
    ctx.log(f"restored {path} ({restored.size} bytes)")
    return {}


@task_step
def undo_restore_file(ctx):
    previous = ctx.outputs.get("previous")
    if previous is not None:
        ctx.driver.write_file(key=ctx.key("undo"), vm_id=_vm(ctx).fabric_id,
                              path=ctx.inputs["path"], content=previous)


@task_step
def check_file(ctx):
    vm, path = _vm(ctx), ctx.inputs["path"]
    now = ctx.driver.read_file(vm.fabric_id, path)
    if now.size != ctx.outputs["size"]:
        raise Invalid(f"{path} is {now.size} bytes after the restore, not "
                      f"{ctx.outputs['size']}.")
    ctx.log("the file is as the checkpoint has it")
    return _result(f"{path} is back as it was in the checkpoint "
                   f"'{ctx.outputs['checkpoint_name']}' of {ctx.inputs['day']}.",
                   path=path, checkpoint=ctx.outputs["checkpoint_name"], size=now.size)


GUEST_FILES = frozenset({Capability.GUEST_FILES})  # it reads and writes inside the guest
RESTORE_FILE = register(Runbook(
    name="task.restore-file", description="Restore one file of a VM from a checkpoint.",
    steps=(Step("Find the checkpoint of the day", find_checkpoint, needs=GUEST_FILES),
           Step("Keep the file as it is now", keep_current_file, needs=GUEST_FILES),
           Step("Restore the file", restore_file, undo_restore_file, needs=GUEST_FILES),
           Step("Check the file", check_file, needs=GUEST_FILES))))

task_runbook(RESTORE_FILE, _schema(
    ["vm", "day", "path"],
    vm=VM_INPUT,
    day={"type": "string", "format": "date", "title": "Day of the checkpoint",
         "x-choices": "checkpoint-days",
         "description": "A day (UTC) on which the VM has a checkpoint."},
    path={"type": "string", "title": "File", "minLength": 2, "maxLength": 1024,
          "pattern": PATH_PATTERN, "description": "Its absolute path, e.g. /etc/app.conf."}))


# --- reset-network --------------------------------------------------------------------

@task_step
def check_network(ctx):
    vm = _vm(ctx)
    info = ctx.driver.get_vm(vm.fabric_id)
    if info.network_id != vm.network.fabric_id:
        raise Invalid("The VM is not on its network on the stamp: ask the provider.")
    ctx.log(f"on {vm.network.name} as {info.ip_address}, {info.power_state}")
    return {"power_state": str(info.power_state), "ip_address": info.ip_address}


@task_step
def restart_network(ctx):
    vm = _vm(ctx)
    if ctx.outputs["power_state"] != "running":
        ctx.log("the VM is stopped: its network starts afresh with it")
        return _result("The VM is stopped: its network is set up afresh when it starts.")
    ctx.driver.restart_vm(key=ctx.key(), vm_id=vm.fabric_id)
    ctx.log("restarted the VM's network interface")
    return _result(f"The network of {vm.name} was reset; it answers on "
                   f"{ctx.outputs['ip_address']}.", ip_address=ctx.outputs["ip_address"])


RESET_NETWORK = register(Runbook(
    name="task.reset-network", description="Reset a VM's network connection.",
    steps=(Step("Check the VM's network", check_network),
           Step("Reset the network", restart_network))))
task_runbook(RESET_NETWORK, _schema(["vm"], vm=VM_INPUT))


# --- collect-diagnostics --------------------------------------------------------------

@task_step
def read_vm(ctx):
    info = ctx.driver.get_vm(_vm(ctx).fabric_id)
    ctx.log(f"{info.power_state}, {info.vcpus} vCPU, {info.memory_mb} MB")
    return {"power_state": str(info.power_state), "vcpus": info.vcpus,
            "memory_mb": info.memory_mb, "ip_address": info.ip_address}


@task_step
def read_checkpoints(ctx):
    checkpoints = ctx.driver.list_checkpoints(_vm(ctx).fabric_id)
    ctx.log(f"{len(checkpoints)} checkpoint(s)")
    return {"checkpoints": len(checkpoints)}


@task_step
def read_replication(ctx):
    replication = ctx.driver.replication_status(_vm(ctx).fabric_id)
    state = str(replication.state) if replication else "none"
    ctx.log(f"replication: {state}")
    o = ctx.outputs
    return _result(f"{_vm(ctx).name} is {o['power_state']} with {o['vcpus']} vCPU and "
                   f"{o['memory_mb']} MB, {o['checkpoints']} checkpoint(s), replication "
                   f"{state}.", power_state=o["power_state"], vcpus=o["vcpus"],
                   memory_mb=o["memory_mb"], ip_address=o["ip_address"],
                   checkpoints=o["checkpoints"], replication=state)


COLLECT_DIAGNOSTICS = register(Runbook(
    name="task.collect-diagnostics", description="Collect what the stamp knows of a VM.",
    steps=(Step("Read the VM", read_vm), Step("Read its checkpoints", read_checkpoints),
           Step("Read its replication", read_replication))))
task_runbook(COLLECT_DIAGNOSTICS, _schema(["vm"], vm=VM_INPUT))


# --- rotate-console-password ----------------------------------------------------------

@task_step
def rotate_password(ctx):
    vm = _vm(ctx)
    ctx.driver.get_vm(vm.fabric_id)  # the VM is there
    password = secrets.token_urlsafe(15)
    # Stored hashed; the clear password goes to the run sealed (encrypted) and is shown
    # once to whoever asked, then forgotten.
    with transaction.atomic():
        ConsolePassword.objects.update_or_create(
            vm=vm, defaults={"password_hash": make_password(password)})
        run = TaskRun.objects.select_for_update().get(pk=task_run_of(ctx).pk)
        run.sealed = {"password": password}
        run.save(update_fields=["sealed"])
    ctx.log("a new console password is set (stored hashed)")
    return _result("A new console password is set. It is shown once: keep it now.")


ROTATE_CONSOLE_PASSWORD = register(Runbook(
    name="task.rotate-console-password", description="Set a new console password.",
    steps=(Step("Set a new console password", rotate_password),)))
task_runbook(ROTATE_CONSOLE_PASSWORD, _schema(["vm"], vm=VM_INPUT))


# --- runbooks of the API's own actions ------------------------------------------------

def _revert(subscription, inputs, chosen, *, acting_user) -> Job:
    return resources.restore_snapshot(chosen["snapshot"], acting_user=acting_user)


task_runbook(vm_runbooks.RESTORE_SNAPSHOT, _schema(
    ["vm", "snapshot"], vm=VM_INPUT,
    snapshot={"type": "string", "title": "Checkpoint", "x-resource": "snapshot",
              "description": "A checkpoint of that VM."}), launch=_revert)


def _resize(subscription, inputs, chosen, *, acting_user) -> Job:
    size = chosen["size"]
    return resources.resize_vm(chosen["vm"], vcpus=size.vcpus, memory_mb=size.memory_mb,
                               acting_user=acting_user)


task_runbook(vm_runbooks.RESIZE, _schema(
    ["vm", "size"], vm=VM_INPUT,
    size={"type": "string", "title": "Size", "x-choices": "plan-sizes",
          "description": "One of the plan's sizes."}), launch=_resize)


def _power(action: str) -> Launch:
    def launch(subscription, inputs, chosen, *, acting_user) -> Job:
        return resources.vm_power(chosen["vm"], action, acting_user=acting_user)
    return launch


for _runbook, _action in ((vm_runbooks.START, "start"), (vm_runbooks.STOP, "stop"),
                          (vm_runbooks.RESTART, "restart")):
    task_runbook(_runbook, _schema(["vm"], vm=VM_INPUT), launch=_power(_action))


BUILTINS = (
    Builtin("restore-file", "Restore a file",
            "Bring one file of a VM back as it was in the checkpoint of a day you choose. "
            "The rest of the VM is left alone.", RESTORE_FILE.name),
    Builtin("revert-to-checkpoint", "Revert a VM to a checkpoint",
            "Put the whole VM back as it was in one of its checkpoints. Everything written "
            "since is lost, so an owner or admin approves it first.",
            vm_runbooks.RESTORE_SNAPSHOT.name, requires_approval=True),
    Builtin("reset-network", "Reset a VM's network",
            "When a VM stops answering on the network: its connection is set up afresh.",
            RESET_NETWORK.name),
    Builtin("resize-vm", "Resize a VM",
            "Give a VM one of the plan's sizes; it restarts if it runs.", vm_runbooks.RESIZE.name),
    Builtin("collect-diagnostics", "Collect diagnostics",
            "Gather what the platform knows of a VM, for you and for support.",
            COLLECT_DIAGNOSTICS.name),
    Builtin("rotate-console-password", "Rotate the console password",
            "Set a new console password for a VM. It is shown to you once.",
            ROTATE_CONSOLE_PASSWORD.name),
)
