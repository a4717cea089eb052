"""The operation history is kept for a retention window, then forgotten with its keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stampsim.cli import build_parser
from stampsim.errors import ApiError
from stampsim.fabric import DEFAULT_OPERATION_RETENTION, Fabric
from stampsim.handlers import OpKind
from stampsim.state import State, Store
from stampsim.testing import StampProcess

T0 = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)
VM = {"vcpus": 1, "memory_mb": 512, "disk_gb": 10, "image": "debian-12"}


def at(fabric: Fabric, moment: datetime) -> None:
    """Freeze the stamp's clock there (what the admin API does)."""
    fabric.set_clock({"now": moment.isoformat()})


def opened(path: Path, **options) -> Fabric:
    return Fabric("s", data_dir=str(path), durable=False, **options)


def container(fabric: Fabric, key: str, name: str = "c") -> dict:
    return fabric.submit(OpKind.CONTAINER_CREATE, {"name": name}, key)


def test_an_operation_older_than_the_window_is_forgotten_with_its_key(tmp_path: Path) -> None:
    # given a stamp keeping operations 24 h, an operation at 10:00 and one 23 h later
    fabric = opened(tmp_path)
    at(fabric, T0)
    old = container(fabric, "old")
    at(fabric, T0 + timedelta(hours=23))
    young = container(fabric, "young", name="d")
    # when a call comes 24 h and a minute after the first
    at(fabric, T0 + timedelta(hours=24, minutes=1))
    container(fabric, "now", name="e")
    # then the first operation is gone, and its key is a new call (another container)
    with pytest.raises(ApiError) as gone:
        fabric.operation(old["id"])
    assert gone.value.status == 404
    again = container(fabric, "old")
    assert again["id"] != old["id"] and again["result"]["id"] != old["result"]["id"]
    # and the younger one still answers, and its key still replays it
    assert fabric.operation(young["id"])["state"] == "succeeded"
    assert container(fabric, "young", name="d")["id"] == young["id"]
    assert [op["key"] for op in fabric.operations()] == ["young", "now", "old"]


def test_pruning_shrinks_the_snapshot_and_a_restart_loads_what_is_left(tmp_path: Path) -> None:
    # given 200 operations on VMs at 10:00
    fabric = opened(tmp_path)
    at(fabric, T0)
    ctr = container(fabric, "c")["result"]["id"]
    vm = fabric.submit(OpKind.VM_CREATE, {**VM, "container_id": ctr, "name": "v"}, "v")
    for i in range(100):
        fabric.submit(OpKind.VM_STOP, {"vm_id": vm["result"]["id"]}, f"stop-{i}")
        fabric.submit(OpKind.VM_START, {"vm_id": vm["result"]["id"]}, f"start-{i}")
    fabric.store.save(fabric.state.data, full=True)
    before = (tmp_path / Store.FILENAME).stat().st_size
    # when one more call comes two days later
    at(fabric, T0 + timedelta(days=2))
    last = fabric.submit(OpKind.VM_STOP, {"vm_id": vm["result"]["id"]}, "later")
    # then only it is left, and the snapshot it folds into is a fraction of the old one
    assert [op["key"] for op in fabric.operations()] == ["later"]
    assert list(fabric.state.keys) == ["later"]
    fabric.store.save(fabric.state.data, full=True)
    after = (tmp_path / Store.FILENAME).stat().st_size
    assert after < before / 4, (before, after)
    fabric.store.close()
    # and a restart loads it: the old keys are new calls, the last one replays
    again = opened(tmp_path)
    assert [op["key"] for op in again.operations()] == ["later"]
    assert again.submit(OpKind.VM_STOP, {"vm_id": vm["result"]["id"]}, "later")["id"] == last["id"]
    assert len(again.state.vms) == 1 and len(again.state.containers) == 1


def test_what_was_pruned_since_the_last_snapshot_stays_pruned_after_a_restart(
    tmp_path: Path,
) -> None:
    # given operations at 10:00, pruned by a call two days later (journalled, not folded)
    fabric = opened(tmp_path)
    at(fabric, T0)
    for i in range(5):
        container(fabric, f"c-{i}", name=f"c{i}")
    at(fabric, T0 + timedelta(days=2))
    container(fabric, "later", name="later")
    fabric.store.close()
    assert (tmp_path / Store.JOURNAL).stat().st_size > 0
    # when the stamp restarts on its snapshot and journal
    again = opened(tmp_path)
    # then the pruned operations and keys stay gone; the objects they made stay
    assert [op["key"] for op in again.operations()] == ["later"]
    assert set(again.state.keys) == {"later"}
    assert len(again.state.containers) == 6


def test_a_refused_call_still_prunes_and_the_next_save_writes_it(tmp_path: Path) -> None:
    # given an old operation, and a call two days later that is refused (nothing recorded)
    fabric = opened(tmp_path)
    at(fabric, T0)
    container(fabric, "old")
    at(fabric, T0 + timedelta(days=2))
    with pytest.raises(ApiError):
        fabric.submit(OpKind.VM_START, {"vm_id": "vm-missing"}, "refused")
    assert fabric.operations() == []
    # when the next call is saved and the stamp restarts
    container(fabric, "next", name="n")
    fabric.store.close()
    # then the old operation is not back
    assert [op["key"] for op in opened(tmp_path).operations()] == ["next"]


def test_a_running_or_late_finished_operation_is_kept_and_the_walk_stops_at_young_ones() -> None:
    # given operations in the order they were accepted
    def op(op_id: str, created: datetime, finished: datetime | None) -> dict:
        return {"id": op_id, "key": f"k-{op_id}", "created_at": created.isoformat(),
                "state": "running" if finished is None else "succeeded",
                "finished_at": finished and finished.isoformat()}

    state = State()
    for record in (
        op("done", T0, T0 + timedelta(seconds=1)),
        op("running", T0, None),
        op("late", T0, T0 + timedelta(hours=30)),
        op("young", T0 + timedelta(hours=40), T0 + timedelta(hours=40)),
        # accepted after a young one (the clock was set back): kept until that one goes
        op("behind", T0, T0),
    ):
        state.operations[record["id"]] = record
        state.keys[record["key"]] = {"operation": record["id"]}
    # when pruning at 48 h with a 24 h window (horizon 24 h)
    removed = state.prune_operations(T0 + timedelta(hours=24))
    # then only the one finished before the horizon went, with its key
    assert removed == [("operations", "done"), ("keys", "k-done")]
    assert list(state.operations) == ["running", "late", "young", "behind"]
    assert set(state.keys) == {"k-running", "k-late", "k-young", "k-behind"}


def test_a_window_of_none_keeps_every_operation(tmp_path: Path) -> None:
    fabric = opened(tmp_path, operation_retention=None)
    at(fabric, T0)
    first = container(fabric, "first")
    at(fabric, T0 + timedelta(days=400))
    container(fabric, "second", name="d")
    assert container(fabric, "first")["id"] == first["id"]
    assert len(fabric.operations()) == 2


def test_the_command_line_sets_the_window_in_hours_and_zero_keeps_everything() -> None:
    parser = build_parser()
    default = parser.parse_args([]).operation_retention_hours
    assert timedelta(hours=default) == DEFAULT_OPERATION_RETENTION == timedelta(hours=24)
    assert parser.parse_args(["--operation-retention-hours", "0.5"]).operation_retention_hours \
        == 0.5
    with pytest.raises(SystemExit):
        parser.parse_args(["--operation-retention-hours", "-1"])


def test_a_real_stamp_forgets_keys_after_the_window_set_on_its_command_line(
    tmp_path: Path,
) -> None:
    # given a stampsim process keeping operations one hour, its clock frozen at 10:00
    stamp = StampProcess("s", tmp_path / "s", args=["--operation-retention-hours", "1"])
    stamp.start()
    try:
        assert stamp.request("POST", "/v1/admin/clock", {"now": T0.isoformat()})[0] == 200
        status, old = stamp.request("POST", "/v1/containers", {"name": "a"}, key="old")
        assert status == 202
        # when a call comes at 10:59 and another at 11:01
        stamp.request("POST", "/v1/admin/clock", {"now": (T0 + timedelta(minutes=59)).isoformat()})
        status, young = stamp.request("POST", "/v1/containers", {"name": "b"}, key="young")
        assert status == 202
        assert stamp.request("GET", f"/v1/operations/{old['operation']['id']}")[0] == 200
        stamp.request("POST", "/v1/admin/clock", {"now": (T0 + timedelta(minutes=61)).isoformat()})
        assert stamp.request("POST", "/v1/containers", {"name": "c"}, key="now")[0] == 202
        # then the 10:00 operation is gone, the 10:59 one answers, also after a restart
        for _ in range(2):
            assert stamp.request("GET", f"/v1/operations/{old['operation']['id']}")[0] == 404
            status, listed = stamp.request("GET", "/v1/admin/operations")
            assert [op["key"] for op in listed["operations"]] == ["young", "now"]
            status, replay = stamp.request("POST", "/v1/containers", {"name": "b"}, key="young")
            assert replay["operation"]["id"] == young["operation"]["id"]
            stamp.restart()
            stamp.request("POST", "/v1/admin/clock",
                          {"now": (T0 + timedelta(minutes=61)).isoformat()})
    finally:
        stamp.kill()
