"""dev.py installs the libvirt extra where libvirt-python builds, and CI requires it."""

import pytest

import dev


@pytest.mark.parametrize("buildable, extras", [(True, "test,libvirt"), (False, "test")])
def test_the_libvirt_extra_follows_the_machine(monkeypatch, buildable, extras):
    monkeypatch.delenv("BUFFET_REQUIRE_LIBVIRT", raising=False)
    monkeypatch.setattr(dev, "_libvirt_buildable", lambda: buildable)
    assert dev._extras("test") == extras


def test_run_installs_the_extra_alone_where_it_builds(monkeypatch):
    monkeypatch.setattr(dev, "_libvirt_buildable", lambda: True)
    assert dev._extras() == "libvirt"


def test_required_but_not_buildable_stops_before_any_test(monkeypatch):
    # given CI, which requires the libvirt tests to run, on a machine without libvirt-dev
    monkeypatch.setenv("BUFFET_REQUIRE_LIBVIRT", "1")
    monkeypatch.setattr(dev, "_libvirt_buildable", lambda: False)
    # then dev.py stops and says what to install
    with pytest.raises(SystemExit, match="apt-get install libvirt-dev pkg-config"):
        dev._extras("test")


def test_this_machine_is_read_with_pkg_config(monkeypatch):
    # no pkg-config on the PATH: libvirt-python cannot find libvirt to build against
    monkeypatch.setattr(dev.shutil, "which", lambda name: None)
    assert dev._libvirt_buildable() is False
