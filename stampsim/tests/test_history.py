"""stampsim's metering reads: the usage snapshot and each VM's history, kept compact."""

from datetime import UTC, datetime, timedelta

import pytest

from stampsim import Fabric
from stampsim.handlers import OpKind
from stampsim.state import HISTORY_EVENTS

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> str:
        return self.now.isoformat(timespec="milliseconds")


@pytest.fixture
def clock():
    return Clock()


def make(tmp_path, clock):
    fabric = Fabric("s", data_dir=str(tmp_path), durable=False, clock=clock)
    container = fabric.submit(OpKind.CONTAINER_CREATE, {"name": "c"}, "c")["result"]
    return fabric, container["id"]


def vm(fabric, container_id, key="v"):
    return fabric.submit(OpKind.VM_CREATE, {"container_id": container_id, "name": "v",
                                            "vcpus": 2, "memory_mb": 512, "disk_gb": 10,
                                            "image": "i"}, key)["result"]["id"]


def test_history_tells_each_vm_as_it_was_and_survives_a_restart(tmp_path, clock):
    # given a VM created at 10:00, stopped and resized at 10:05, deleted at 10:10
    fabric, container = make(tmp_path, clock)
    vm_id = vm(fabric, container)
    clock.now = T0 + timedelta(minutes=5)
    fabric.submit(OpKind.VM_STOP, {"vm_id": vm_id}, "stop")
    fabric.submit(OpKind.VM_RESIZE, {"vm_id": vm_id, "vcpus": 4, "memory_mb": 512}, "resize")
    clock.now = T0 + timedelta(minutes=10)
    fabric.submit(OpKind.VM_DELETE, {"vm_id": vm_id}, "delete")
    # when the stamp restarts and is asked for 10:02-10:20
    fabric.store.close()
    again = Fabric("s", data_dir=str(tmp_path), durable=False, clock=clock)
    found = again.history((T0 + timedelta(minutes=2)).isoformat(),
                          (T0 + timedelta(minutes=20)).isoformat())["vms"]
    # then the deleted VM is there, from the state it had at 10:02
    assert [(e["event"], e["vcpus"], e["power_state"]) for e in found[0]["events"]] == [
        ("created", 2, "running"), ("stopped", 2, "stopped"), ("resized", 4, "stopped"),
        ("deleted", 4, "stopped")]
    # and a window after its deletion does not show it
    assert again.history((T0 + timedelta(minutes=11)).isoformat(),
                         (T0 + timedelta(minutes=20)).isoformat())["vms"] == []


def test_a_vm_keeps_a_bounded_history_and_the_snapshot_skips_replicas(tmp_path, clock):
    fabric, container = make(tmp_path, clock)
    vm_id = vm(fabric, container)
    for i in range(HISTORY_EVENTS + 10):
        clock.now += timedelta(seconds=1)
        kind = OpKind.VM_STOP if i % 2 == 0 else OpKind.VM_START
        fabric.submit(kind, {"vm_id": vm_id}, f"power-{i}")
    assert len(fabric.state.history[vm_id]["events"]) == HISTORY_EVENTS
    assert fabric.usage()["vms"] == [[vm_id, 2, 512, 10, 0, False, True]]  # started last


def test_a_window_must_be_iso_times_in_order(tmp_path, clock):
    from stampsim.errors import ApiError

    fabric, _ = make(tmp_path, clock)
    with pytest.raises(ApiError):
        fabric.history("yesterday", None)
    with pytest.raises(ApiError):
        fabric.history(T0.isoformat(), (T0 - timedelta(minutes=1)).isoformat())



def test_a_deleted_vm_is_forgotten_35_days_later_looked_for_at_most_hourly(tmp_path, clock):
    # given VMs deleted at 10:00 and at 10:10
    fabric, container = make(tmp_path, clock)

    def deleted_at(moment, key):
        clock.now = moment
        vm_id = vm(fabric, container, key)
        fabric.submit(OpKind.VM_DELETE, {"vm_id": vm_id}, f"del-{key}")
        return vm_id

    early, later = deleted_at(T0, "a"), deleted_at(T0 + timedelta(minutes=10), "b")
    # when another VM is deleted 35 days and a minute later
    deleted_at(T0 + timedelta(days=35, minutes=1), "c")
    # then the one deleted at 10:00 is forgotten, the one of 10:10 not yet
    assert early not in fabric.state.history and later in fabric.state.history
    # and a deletion within the hour does not look again; one after the hour does
    deleted_at(T0 + timedelta(days=35, minutes=30), "d")
    assert later in fabric.state.history
    deleted_at(T0 + timedelta(days=35, hours=1, minutes=2), "e")
    assert later not in fabric.state.history
    # and what is forgotten stays forgotten after a restart
    fabric.store.close()
    again = Fabric("s", data_dir=str(tmp_path), durable=False, clock=clock)
    assert early not in again.state.history and later not in again.state.history
    assert len(again.state.history) == 3
