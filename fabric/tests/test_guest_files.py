"""A VM's guest files: checkpoints capture them, one file comes back from a checkpoint."""

from __future__ import annotations

import pytest

from fabric.drivers import InvalidRequest, NotFound
from fabric.drivers.memory import MemoryDriver, restart
from stampsim import Fabric


@pytest.fixture
def driver():
    from conftest import unique

    return MemoryDriver("files", f"mem://{unique('files')}")


def _vm(driver):
    container = driver.create_container(key="c", name="tenant")
    return driver.create_vm(key="v", container_id=container.id, name="app", vcpus=1,
                            memory_mb=512, disk_gb=1, image="img", network_id=None)


def test_a_file_comes_back_from_a_checkpoint_with_the_content_it_had(driver):
    # given a file, a checkpoint, then a change
    vm = _vm(driver)
    driver.write_file(key="w1", vm_id=vm.id, path="/etc/app.conf", content="port=80\n")
    checkpoint = driver.create_checkpoint(key="cp", vm_id=vm.id, name="nightly")
    driver.write_file(key="w2", vm_id=vm.id, path="/etc/app.conf", content="broken")
    driver.write_file(key="w3", vm_id=vm.id, path="/srv/other", content="kept")
    # when the file is restored from the checkpoint
    restored = driver.restore_file(key="r", vm_id=vm.id, checkpoint_id=checkpoint.id,
                                   path="/etc/app.conf")
    # then it has its old content, and the rest of the VM is left alone
    assert restored.size == len("port=80\n")
    assert driver.read_file(vm.id, "/etc/app.conf").content == "port=80\n"
    assert driver.read_file(vm.id, "/srv/other").content == "kept"
    assert [f.path for f in driver.list_files(vm.id, checkpoint.id)] == ["/etc/app.conf"]
    # the same key does not restore twice
    again = driver.restore_file(key="r", vm_id=vm.id, checkpoint_id=checkpoint.id,
                                path="/etc/app.conf")
    assert again == restored


def test_files_are_private_to_the_vm_answer(driver):
    vm = _vm(driver)
    driver.write_file(key="w", vm_id=vm.id, path="/etc/secret", content="s3cret")
    assert "s3cret" not in repr(driver.get_vm(vm.id)) and "s3cret" not in repr(driver.inventory())


@pytest.mark.parametrize("path", ["etc/relative", "/etc/../shadow", "/..", ""])
def test_a_path_that_is_not_absolute_or_climbs_is_refused(driver, path):
    vm = _vm(driver)
    with pytest.raises(InvalidRequest):
        driver.write_file(key="w", vm_id=vm.id, path=path, content="x")


def test_a_file_the_checkpoint_does_not_hold_is_not_found(driver):
    vm = _vm(driver)
    checkpoint = driver.create_checkpoint(key="cp", vm_id=vm.id, name="empty")
    driver.write_file(key="w", vm_id=vm.id, path="/new", content="x")
    with pytest.raises(NotFound):
        driver.restore_file(key="r", vm_id=vm.id, checkpoint_id=checkpoint.id, path="/new")
    with pytest.raises(NotFound):
        driver.read_file(vm.id, "/missing")


def test_checkpointed_files_survive_a_restart(driver):
    vm = _vm(driver)
    driver.write_file(key="w1", vm_id=vm.id, path="/a", content="1")
    checkpoint = driver.create_checkpoint(key="cp", vm_id=vm.id, name="x")
    driver.write_file(key="w2", vm_id=vm.id, path="/a", content="2")
    restart(driver.endpoint)
    driver.restore_file(key="r", vm_id=vm.id, checkpoint_id=checkpoint.id, path="/a")
    assert driver.read_file(vm.id, "/a").content == "1"


def test_files_are_kept_on_disk(tmp_path):
    fabric = Fabric("disk", data_dir=tmp_path)
    from stampsim import Api

    api = Api(fabric)
    status, answer = api.handle("POST", "/v1/containers", {"idempotency-key": "c"},
                                b'{"name": "t"}')
    container = answer["operation"]["result"]["id"]
    body = b'{"name": "a", "vcpus": 1, "memory_mb": 512, "disk_gb": 1, "image": "i"}'
    _, answer = api.handle("POST", f"/v1/containers/{container}/vms",
                           {"idempotency-key": "v"}, body)
    vm = answer["operation"]["result"]["id"]
    api.handle("POST", f"/v1/vms/{vm}/files", {"idempotency-key": "w"},
               b'{"path": "/x", "content": "on disk"}')
    fabric.store.close()
    reloaded = Api(Fabric("disk", data_dir=tmp_path))
    status, answer = reloaded.handle("GET", f"/v1/vms/{vm}/files?path=/x", {}, b"")
    assert status == 200 and answer["file"]["content"] == "on disk"
