"""Choices computed on the server from the tenant's own objects.

``x-resource`` inputs offer the subscription's VMs, networks or checkpoints;
``x-choices`` inputs offer what depends on them: ``checkpoint-days`` (the days, UTC, on
which the chosen VM has a ready checkpoint) and ``plan-sizes`` (the sizes of the plan).
The menu fills them in as ``enum`` (with ``x-labels``, and ``x-enum-by`` for choices that
depend on the chosen VM); a run checks them again. When they cannot be computed the run
is refused: it fails closed, never open.
"""

import copy
from dataclasses import dataclass
from typing import Any

from plans.models import Subscription
from provisioning.models import (
    Network,
    NetworkState,
    Snapshot,
    SnapshotState,
    VirtualMachine,
    VmState,
)

__all__ = ["SIZES", "ChoicesUnavailable", "Size", "fill", "plan_sizes", "resolve"]


class ChoicesUnavailable(Exception):
    """The choices of an input could not be computed: the run is refused."""


@dataclass(frozen=True)
class Size:
    name: str
    vcpus: int
    memory_mb: int


# The ladder of sizes a plan offers, up to its largest VM.
SIZES = (Size("small", 1, 1024), Size("medium", 2, 4096), Size("large", 4, 8192),
         Size("xlarge", 8, 16384), Size("2xlarge", 16, 32768))

_USABLE_VMS = (VmState.RUNNING, VmState.STOPPED)


def plan_sizes(plan) -> list[Size]:
    return [s for s in SIZES
            if s.vcpus <= plan.max_vm_vcpus and s.memory_mb <= plan.max_vm_memory_mb]


def _objects(subscription: Subscription, kind: str):
    if kind == "vm":
        return subscription.vms.filter(state__in=_USABLE_VMS).order_by("name")
    if kind == "network":
        return subscription.networks.filter(state=NetworkState.READY).order_by("name")
    return (Snapshot.objects.filter(vm__subscription=subscription, state=SnapshotState.READY,
                                    vm__state__in=_USABLE_VMS)
            .select_related("vm").order_by("-created_at"))


def checkpoint_days(subscription: Subscription) -> dict[str, list[str]]:
    """VM id -> the days (UTC, ISO) on which it has a ready checkpoint, newest first."""
    days: dict[str, set[str]] = {}
    for snapshot in _objects(subscription, "snapshot"):
        days.setdefault(str(snapshot.vm_id), set()).add(snapshot.created_at.date().isoformat())
    return {vm: sorted(found, reverse=True) for vm, found in days.items()}


def fill(schema: dict, subscription: Subscription) -> dict:
    """The schema with its choices for this subscription filled in as ``enum``."""
    filled = copy.deepcopy(schema)
    for prop in filled["properties"].values():
        try:
            _fill_one(prop, subscription)
        except Exception as exc:  # noqa: BLE001 - fail closed: nothing can be chosen
            prop["enum"] = []
            prop["x-unavailable"] = f"The choices could not be computed ({type(exc).__name__})."
    return filled


def _narrowed(prop: dict, values: list) -> list:
    """The computed values, within what the published schema allows."""
    allowed = prop.get("enum")
    return [v for v in values if allowed is None or v in allowed]


def _fill_one(prop: dict, subscription: Subscription) -> None:
    kind = prop.get("x-resource")
    if kind:
        objects = list(_objects(subscription, kind))
        prop["enum"] = _narrowed(prop, [str(o.pk) for o in objects])
        prop["x-labels"] = {str(o.pk): _label(o) for o in objects}
        if kind == "snapshot":
            by_vm: dict[str, list[str]] = {}
            for o in objects:
                by_vm.setdefault(str(o.vm_id), []).append(str(o.pk))
            prop["x-enum-by"] = {"vm": by_vm}
    match prop.get("x-choices"):
        case "checkpoint-days":
            by_vm = checkpoint_days(subscription)
            prop["enum"] = _narrowed(prop, sorted({d for days in by_vm.values() for d in days},
                                                  reverse=True))
            prop["x-enum-by"] = {"vm": by_vm}
        case "plan-sizes":
            sizes = plan_sizes(subscription.plan)
            prop["enum"] = _narrowed(prop, [s.name for s in sizes])
            prop["x-labels"] = {s.name: f"{s.name}: {s.vcpus} vCPU, {s.memory_mb} MB"
                                for s in sizes}


def _label(obj) -> str:
    if isinstance(obj, Snapshot):
        return f"{obj.vm.name}: {obj.name} ({obj.created_at:%Y-%m-%d %H:%M} UTC)"
    return obj.name


def resolve(schema: dict, inputs: dict[str, Any], subscription: Subscription
            ) -> tuple[dict[str, list[str]], dict[str, Any], list[str]]:
    """Check the inputs against the tenant's objects: (errors by ``inputs.<key>``, the
    objects chosen by key, the keys naming an object that is not the caller's (404)).
    Raises ``ChoicesUnavailable`` when a choice cannot be computed."""
    errors: dict[str, list[str]] = {}
    chosen: dict[str, Any] = {}
    missing: list[str] = []
    properties = schema["properties"]
    for name, prop in properties.items():
        kind = prop.get("x-resource")
        if not kind or name not in inputs:
            continue
        obj = _objects(subscription, kind).filter(pk=_uuid(inputs[name])).first() \
            if _uuid(inputs[name]) else None
        if obj is None:
            if _uuid(inputs[name]) is None:
                errors[f"inputs.{name}"] = ["Must be the id (a UUID) of one of yours."]
            elif _exists_elsewhere(kind, inputs[name], subscription):
                errors[f"inputs.{name}"] = [f"This {kind} cannot be used now (its state)."]
            else:
                missing.append(name)
            continue
        chosen[name] = obj
    vm = next((o for o in chosen.values() if isinstance(o, VirtualMachine)), None)
    for name, prop in properties.items():
        if name not in inputs or f"inputs.{name}" in errors:
            continue
        obj = chosen.get(name)
        if isinstance(obj, Snapshot) and vm is not None and obj.vm_id != vm.pk:
            errors[f"inputs.{name}"] = ["Not a checkpoint of the chosen VM."]
        try:
            match prop.get("x-choices"):
                case "checkpoint-days":
                    if vm is None:
                        raise ChoicesUnavailable("the days depend on a VM input")
                    days = checkpoint_days(subscription).get(str(vm.pk), [])
                    if inputs[name] not in days:
                        errors[f"inputs.{name}"] = ["The VM has no checkpoint on this day."]
                case "plan-sizes":
                    sizes = {s.name: s for s in plan_sizes(subscription.plan)}
                    if inputs[name] not in sizes:
                        errors[f"inputs.{name}"] = ["Not one of the plan's sizes."]
                    else:
                        chosen[name] = sizes[inputs[name]]
        except ChoicesUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - fail closed
            raise ChoicesUnavailable(f"{name}: {type(exc).__name__}") from exc
    return errors, chosen, missing


def _uuid(value: Any) -> str | None:
    import uuid

    try:
        return str(uuid.UUID(str(value))) if isinstance(value, str) else None
    except ValueError:
        return None


def _exists_elsewhere(kind: str, value: str, subscription: Subscription) -> bool:
    """The object is the subscription's but not in a usable state (a 400, not a 404)."""
    model = {"vm": VirtualMachine, "network": Network, "snapshot": Snapshot}[kind]
    path = {"vm": "subscription", "network": "subscription", "snapshot": "vm__subscription"}
    return model.objects.filter(pk=value, **{path[kind]: subscription}).exists()
