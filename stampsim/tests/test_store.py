"""The state store: a snapshot plus a journal of changes, and what a crash leaves."""

from __future__ import annotations

from pathlib import Path

import pytest

from stampsim.fabric import Fabric
from stampsim.handlers import OpKind
from stampsim.state import JOURNALED, Store, Table

VM = {"vcpus": 1, "memory_mb": 512, "disk_gb": 10, "image": "debian-12"}


def populate(fabric: Fabric, vms: int) -> list[str]:
    container = fabric.submit(OpKind.CONTAINER_CREATE, {"name": "c"}, "k-c")["result"]
    ids = []
    for i in range(vms):
        op = fabric.submit(
            OpKind.VM_CREATE, {**VM, "container_id": container["id"], "name": f"v{i}"}, f"k-{i}"
        )
        ids.append(op["result"]["id"])
    return ids


def reopened(path: Path) -> Fabric:
    return Fabric("s", data_dir=str(path), durable=False)


def test_every_change_is_a_journal_line_and_a_reload_gives_the_same_state(tmp_path: Path) -> None:
    fabric = Fabric("s", data_dir=str(tmp_path), durable=False)
    vms = populate(fabric, 20)
    fabric.submit(OpKind.VM_STOP, {"vm_id": vms[0]}, "k-stop")
    fabric.submit(OpKind.VM_RESIZE, {"vm_id": vms[0], "vcpus": 2, "memory_mb": 1024}, "k-rs")
    fabric.submit(OpKind.VM_DELETE, {"vm_id": vms[1]}, "k-del")
    before = fabric.inventory()
    fabric.store.close()

    journal = (tmp_path / Store.JOURNAL).read_text().splitlines()
    # the first save writes the snapshot; then every call adds two lines (accepted, finished)
    assert len(journal) == 2 * (1 + 20 + 3) - 1
    again = reopened(tmp_path)
    assert again.inventory() == before
    assert again.get("vms", vms[0], "VM")["vcpus"] == 2
    assert again.get("vms", vms[0], "VM")["power_state"] == "stopped"
    # the keys came back too: the same call with the same key is a replay, not a new VM
    replay = again.submit(OpKind.VM_DELETE, {"vm_id": vms[1]}, "k-del")
    assert replay["state"] == "succeeded"
    assert len(again.state.vms) == 19


def test_a_torn_last_line_is_ignored_and_an_unreadable_middle_line_refused(
    tmp_path: Path,
) -> None:
    fabric = Fabric("s", data_dir=str(tmp_path), durable=False)
    populate(fabric, 3)
    fabric.store.close()
    journal = tmp_path / Store.JOURNAL
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'[["vms","vm-torn",{"id":"vm-tor')  # a crash mid-append
    assert "vm-torn" not in reopened(tmp_path).state.vms

    lines = whole.splitlines(keepends=True)
    journal.write_bytes(b"".join([*lines[:2], b"garbage\n", *lines[2:]]))
    with pytest.raises(ValueError, match="journal.jsonl:3: unreadable journal line"):
        reopened(tmp_path)


def test_the_journal_is_folded_into_the_snapshot_when_it_grows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Store, "COMPACT_BYTES", 8 * 1024)
    fabric = Fabric("s", data_dir=str(tmp_path), durable=False)
    populate(fabric, 60)
    fabric.store.close()
    journal, snapshot = tmp_path / Store.JOURNAL, tmp_path / Store.FILENAME
    assert journal.stat().st_size <= max(8 * 1024, 2 * snapshot.stat().st_size)
    assert snapshot.stat().st_size > 8 * 1024  # the snapshot holds most of it now
    again = reopened(tmp_path)
    assert len(again.state.vms) == 60 and len(again.state.operations) == 61


def test_a_crash_between_snapshot_and_truncation_replays_harmlessly(tmp_path: Path) -> None:
    fabric = Fabric("s", data_dir=str(tmp_path), durable=False)
    vms = populate(fabric, 5)
    fabric.submit(OpKind.VM_DELETE, {"vm_id": vms[0]}, "k-del")
    fabric.store.close()
    journal = (tmp_path / Store.JOURNAL).read_bytes()
    fabric.store.save(fabric.state.data, full=True)  # the new snapshot ...
    (tmp_path / Store.JOURNAL).write_bytes(journal)  # ... but the old journal survived
    again = reopened(tmp_path)
    assert sorted(again.state.vms) == sorted(vms[1:])


def test_a_save_compares_only_the_records_the_call_looked_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given 50 VMs
    fabric = Fabric("s", data_dir=str(tmp_path), durable=False)
    vms = populate(fabric, 50)
    compared: list[set[str]] = []
    drain = Table.drain

    def noted(table: Table) -> set[str]:
        ids = drain(table)
        if table is fabric.state.vms:
            compared.append(ids)
        return ids

    monkeypatch.setattr(Table, "drain", noted)
    # when one of them is stopped
    fabric.submit(OpKind.VM_STOP, {"vm_id": vms[7]}, "k-stop")
    # then each save (accepted, finished) compared that VM only, not the 50
    assert compared == [{vms[7]}, {vms[7]}]
    assert reopened(tmp_path).get("vms", vms[7], "VM")["power_state"] == "stopped"


def test_a_change_the_tables_did_not_note_fails_the_check(tmp_path: Path) -> None:
    # given a VM changed through a walk of its table (not fetched by id: not noted)
    fabric = Fabric("s", data_dir=str(tmp_path), durable=False)
    populate(fabric, 2)
    for vm in fabric.state.vms.values():
        vm["name"] = "renamed behind the journal's back"
    # when the next change is saved, with the check on (as in every test here)
    assert Store.CHECK_TRACKING
    with pytest.raises(AssertionError, match="changed without being noted"):
        fabric.submit(OpKind.CONTAINER_CREATE, {"name": "d"}, "k-d")


def test_a_stamp_without_a_data_directory_forgets_what_its_tables_noted() -> None:
    fabric = Fabric("s", durable=False)
    vms = populate(fabric, 5)
    fabric.submit(OpKind.VM_DELETE, {"vm_id": vms[0]}, "k-del")
    assert all(not fabric.state.table(name).touched for name in JOURNALED)
