"""The rules of the provider's input on their own, and the models that declare them."""

import pytest
from django.core.exceptions import ValidationError

from fabric import services
from fabric.models import Cloud, Stamp
from fabric.tests.factories import CloudFactory, StampFactory, TemplateFactory
from fabric.validators import (
    validate_endpoint,
    validate_external_pool,
    validate_network_names,
    validate_printable,
    validate_tenant_network,
)


def refusal(validator, *args) -> str:
    with pytest.raises(ValidationError) as caught:
        validator(*args)
    return " ".join(caught.value.messages)


@pytest.mark.parametrize("value", ["west", "Europe West 2", "région-µ", "a.b (c)"])
def test_printable_text_is_taken(value):
    validate_printable(value)


@pytest.mark.parametrize("value, says", [
    ("west\x07", "U+0007"),
    ("two\nlines", "U+000A"),
    ("tab\there", "U+0009"),
    ("\u200bzero-width", "U+200B"),
    ("\ud800", "U+D800"),
    (" west", "spaces at the start and the end"),
    ("west ", "spaces at the start and the end"),
    (7, "Enter text"),
])
def test_unprintable_or_untrimmed_text_is_refused(value, says):
    assert says in refusal(validate_printable, value)


@pytest.mark.parametrize("value", ["10.0.0.0/24", "172.16.0.0/16", "192.168.10.0/29"])
def test_private_ipv4_networks_of_tenant_size_are_tenant_networks(value):
    validate_tenant_network(value)


@pytest.mark.parametrize("value, says", [
    ("µ", "Add the prefix length"),
    ("10.0.0.0", "Add the prefix length"),
    ("10.0.0.1/24", "Host bits are set: the network is 10.0.0.0/24"),
    ("10.0.0.0/33", "Not a network"),
    ("10.0.0.0/024", "Write it as 10.0.0.0/24"),
    ("10.0.0.0/255.255.255.0", "Write it as 10.0.0.0/24"),
    ("fd00::/64", "IPv4"),
    ("8.8.8.0/24", "private"),
    ("127.0.0.0/24", "127.0.0.0/8"),
    ("10.0.0.0/8", "between /16 and /29"),
    ("10.0.0.0/30", "between /16 and /29"),
    ("", "Add the prefix length"),
    (None, "CIDR notation"),
])
def test_anything_else_is_not_a_tenant_network(value, says):
    assert says in refusal(validate_tenant_network, value)


@pytest.mark.parametrize("value", ["203.0.113.0/24", "198.51.100.0/30", "192.0.2.0/31",
                                   "100.64.0.0/10"])
def test_ipv4_networks_with_a_router_and_one_address_are_pools(value):
    validate_external_pool(value)


@pytest.mark.parametrize("value, says", [
    ("192.0.2.7/32", "at least one more"),
    ("203.0.113.5/24", "Host bits"),
    ("2001:db8::/64", "IPv4"),
    ("224.0.0.0/24", "224.0.0.0/4"),
    ("0.0.0.0/0", "0.0.0.0/8"),
])
def test_a_pool_is_an_ipv4_network_of_usable_addresses(value, says):
    assert says in refusal(validate_external_pool, value)


@pytest.mark.parametrize("value", [[], ["external"], ["external", "backup net"]])
def test_provider_networks_are_a_list_of_distinct_names(value):
    validate_network_names(value)


@pytest.mark.parametrize("value, says", [
    ("external", "list of network names"),
    ([""], "non-empty"),
    ([3], "non-empty"),
    (["a\x00"], "U+0000"),
    (["a", "a"], "listed twice"),
    (["x" * 64], "longer than 63"),
])
def test_anything_else_is_not_a_list_of_provider_networks(value, says):
    assert says in refusal(validate_network_names, value)


@pytest.mark.parametrize("driver, endpoint", [
    ("simulated", "http://10.0.0.5:8101"),
    ("simulated", "https://stamp-a.example.com/api/"),
    ("simulated", "http://stampsim-a:8101"),
    ("simulated", "http://[fd00::5]:8101"),
    ("libvirt", "qemu+ssh://root@10.0.0.5/system"),
    ("libvirt", "test:///default"),
    ("memory", "mem://stamp-a"),
])
def test_endpoints_each_driver_takes(driver, endpoint):
    validate_endpoint(driver, endpoint)


@pytest.mark.parametrize("driver, endpoint, says", [
    ("simulated", "µ", "non-ASCII"),
    ("simulated", "ftp://10.0.0.5", "http:// or https://"),
    ("simulated", "10.0.0.5:8101", "http:// or https://"),
    ("simulated", "http://", "http:// or https://"),
    ("simulated", "http://10.0.0.5:99999", "port is malformed"),
    ("simulated", "http://10.0.0.5:0", "from 1 to 65535"),
    ("simulated", "http://10.0.0.5:", "from 1 to 65535"),
    ("simulated", "http://admin:secret@10.0.0.5", "credentials field"),
    ("simulated", "http://10.0.0.5/?debug=1", "no query"),
    ("simulated", "http://bad_host!/", "not a host name"),
    ("simulated", "http://999.1.1.1/", "not a host name"),
    ("simulated", "http://[fd00::zz]/", "host or the port is malformed"),
    ("simulated", "http://exa mple", "no spaces"),
    ("libvirt", "qemu", "libvirt URI"),
    ("memory", "mem://a\x07", "control characters"),
])
def test_endpoints_a_driver_cannot_call_are_refused(driver, endpoint, says):
    assert says in refusal(validate_endpoint, driver, endpoint)


# --- the models declare them: every save (API, forms, factories) is checked -------------

@pytest.mark.django_db
def test_a_cloud_pool_may_not_overlap_its_default_network():
    with pytest.raises(ValidationError) as caught:
        CloudFactory(default_network_cidr="10.0.0.0/24", external_pool_cidr="10.0.0.0/28")
    assert "Overlaps the default network 10.0.0.0/24" in caught.value.message_dict[
        "external_pool_cidr"][0]
    assert not Cloud.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("field, value", [
    ("vcpus", 0), ("memory_mb", 0), ("storage_gb", 0), ("vms", 0),
    ("default_network_cidr", "µ"), ("external_pool_cidr", "192.0.2.1/32"),
    ("provider_networks", ["ok", "ok"]),
])
def test_a_bad_cloud_change_is_refused_and_changes_nothing(field, value):
    # given
    cloud = CloudFactory()
    before = Cloud.objects.values().get(pk=cloud.pk)
    # when
    with pytest.raises(ValidationError) as caught:
        services.save_cloud(cloud, fields={field: value}, acting_user=None)
    # then the error names the field and the row is as it was
    assert list(caught.value.message_dict) == [field]
    assert Cloud.objects.values().get(pk=cloud.pk) == before


@pytest.mark.django_db
def test_a_stamp_endpoint_is_checked_against_its_driver():
    stamp = StampFactory()  # memory driver, mem://…
    with pytest.raises(ValidationError) as caught:
        services.save_stamp(stamp, fields={"driver": "simulated"}, acting_user=None)
    assert "http://" in caught.value.message_dict["endpoint"][0]
    assert Stamp.objects.get(pk=stamp.pk).driver == "memory"


@pytest.mark.django_db
@pytest.mark.parametrize("field, value", [("min_vcpus", 0), ("min_memory_mb", 0),
                                          ("min_disk_gb", 0), ("name", "a\tb"),
                                          ("os", " Debian"), ("image", "img\x00")])
def test_template_minimums_are_positive_and_its_texts_printable(field, value):
    with pytest.raises(ValidationError) as caught:
        TemplateFactory(**{field: value})
    assert field in caught.value.message_dict


@pytest.mark.django_db
def test_the_database_refuses_a_cloud_without_capacity_too():
    from django.db import IntegrityError

    cloud = CloudFactory()
    with pytest.raises(IntegrityError, match="cloud_capacity_positive"):
        Cloud.objects.filter(pk=cloud.pk).update(vms=0)
