"""Fuzzing the admin API cannot break tenants: hypothesis throws strings (control
characters, surrogates, near-misses of networks and URLs) at every validated field of the
catalog. Every answer is 400 or 2xx, never 500; a 400 changes nothing; whatever is taken
is a valid value; and afterwards every row of the catalog still passes its model's rules
and a tenant still subscribes."""

import ipaddress
import json
from decimal import Decimal, InvalidOperation

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fabric.drivers.simulated import SimulatedDriver
from fabric.models import Cloud, Stamp, Template
from plans.models import AddOn, Plan

# Every code point, with the troublesome categories (controls, format characters,
# separators, surrogates) drawn far more often than their share of Unicode.
ODD = st.characters(categories=["Cc", "Cf", "Cs", "Zl", "Zp", "Zs"])
TEXT = st.text(st.one_of(st.characters(exclude_categories=()), ODD), max_size=24)


def _noisy(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Valid values, and the same with text stuck before or after them."""
    return st.one_of(valid, st.builds(lambda v, t: v + t, valid, TEXT),
                     st.builds(lambda t, v: t + v, TEXT, valid))


def _subnets(parent: str) -> st.SearchStrategy:
    network = ipaddress.ip_network(parent)
    return st.integers(network.prefixlen, 32).flatmap(lambda prefix: st.integers(
        0, 2 ** (prefix - network.prefixlen) - 1).map(
        lambda i: str(list(network.subnets(new_prefix=prefix))[0].network_address
                      + i * 2 ** (32 - prefix)) + f"/{prefix}"))


NETWORKS = _noisy(st.one_of(
    _subnets("10.0.0.0/8"), _subnets("172.16.0.0/12"), _subnets("192.168.0.0/16"),
    _subnets("198.51.100.0/24"), _subnets("203.0.113.0/24"),
    st.builds(lambda address, prefix: f"{address}/{prefix}", st.ip_addresses(),
              st.integers(-1, 130)),
    st.ip_addresses().map(str), TEXT))

HOSTS = st.one_of(st.sampled_from(["stamp-a", "10.0.0.5", "[fd00::5]", "stamp.example.com",
                                   "999.1.1.1", "-bad-", "exa mple", "", "[zz]"]), TEXT)
PORTS = st.one_of(st.just(""), st.integers(-5, 70000).map(lambda p: f":{p}"),
                  TEXT.map(lambda t: f":{t}"))
URLS = _noisy(st.builds(lambda scheme, host, port, path: f"{scheme}{host}{port}{path}",
                        st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "http:/",
                                         "", "user:pw@", "http://user@"]),
                        HOSTS, PORTS, st.one_of(st.just(""), st.just("/api/"),
                                                TEXT.map(lambda t: f"/{t}"), st.just("?q=1"))))
NAMES = st.one_of(st.sampled_from(["Gold", "debian-12", " padded ", ""]), TEXT)
AMOUNTS = st.one_of(st.integers(-(2**40), 2**40),
                    st.sampled_from(["1", "0", "-1", "1e3", "NaN", "Infinity", "", "2**31"]),
                    TEXT)
PRICES = st.one_of(st.decimals(allow_nan=True, allow_infinity=True).map(str),
                   st.sampled_from(["0", "0.00", "-0.01", "9999999999", "1e-3"]), TEXT)


# --- what a valid stored value is, said independently of fabric.validators -------------

def _printable(value) -> bool:
    return isinstance(value, str) and value != "" and value == value.strip() and \
        value.isprintable()


def _network(value) -> ipaddress.IPv4Network | None:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except (TypeError, ValueError):
        return None
    return network if network.version == 4 and str(network) == value else None


def _tenant_network(value) -> bool:
    network = _network(value)
    return bool(network and network.is_private and 16 <= network.prefixlen <= 29
                and not network.is_loopback and not network.is_link_local)


def _pool(value, default) -> bool:
    network = _network(value)
    return bool(network and network.prefixlen <= 31 and not network.overlaps(
        ipaddress.ip_network(default)) and not network.is_multicast
        and not network.is_loopback)


def _http_url(value) -> bool:
    url = httpx.URL(value)
    SimulatedDriver("fuzz", value).close()  # the driver takes it
    return url.scheme in ("http", "https") and bool(url.host) and not url.userinfo \
        and not url.query and value.isascii() and value.isprintable() and " " not in value


def _positive_int(value) -> bool:
    return isinstance(value, int) and 1 <= value <= 2**31 - 1


def _amount(value) -> bool:
    try:
        return Decimal(value) >= 0
    except InvalidOperation:
        return False


# (model, admin path, body of one value, the stored value, is it valid)
FIELDS = {
    "stamp.region": (Stamp, "stamps", NAMES, lambda v: {"region": v},
                     lambda s: _printable(s.region)),
    "stamp.endpoint": (Stamp, "stamps", URLS,
                       lambda v: {"driver": "simulated", "endpoint": v},
                       lambda s: _http_url(s.endpoint)),
    "cloud.default_network_cidr": (Cloud, "clouds", NETWORKS,
                                   lambda v: {"default_network_cidr": v},
                                   lambda c: _tenant_network(c.default_network_cidr)),
    "cloud.external_pool_cidr": (Cloud, "clouds", NETWORKS,
                                 lambda v: {"external_pool_cidr": v},
                                 lambda c: _pool(c.external_pool_cidr, c.default_network_cidr)),
    "cloud.provider_networks": (Cloud, "clouds", st.one_of(st.lists(NAMES, max_size=4), TEXT),
                                lambda v: {"provider_networks": v},
                                lambda c: isinstance(c.provider_networks, list) and all(
                                    _printable(n) for n in c.provider_networks)
                                and len(set(c.provider_networks)) == len(c.provider_networks)),
    "cloud.capacity": (Cloud, "clouds", AMOUNTS, lambda v: {"capacity": {"vcpus": v, "vms": v}},
                       lambda c: _positive_int(c.vcpus) and _positive_int(c.vms)),
    "template.name": (Template, "templates", NAMES, lambda v: {"name": v, "os": v},
                      lambda t: _printable(t.name) and _printable(t.os)),
    "template.minimums": (Template, "templates", AMOUNTS,
                          lambda v: {"min_memory_mb": v, "min_disk_gb": v},
                          lambda t: _positive_int(t.min_memory_mb)
                          and _positive_int(t.min_disk_gb)),
    "plan.name": (Plan, "plans", NAMES, lambda v: {"name": v}, lambda p: _printable(p.name)),
    "plan.price": (Plan, "plans", PRICES, lambda v: {"price_monthly": v},
                   lambda p: p.price_monthly >= 0),
    "plan.quotas": (Plan, "plans", AMOUNTS, lambda v: {"quotas": {"vcpus": v, "networks": v}},
                    lambda p: p.quota_vcpus >= 0 and p.quota_networks >= 0),
    "addon.name": (AddOn, "addons", NAMES, lambda v: {"name": v, "price_monthly": "1"},
                   lambda a: _printable(a.name)),
    "addon.price": (AddOn, "addons", PRICES, lambda v: {"price_monthly": v},
                    lambda a: _amount(a.price_monthly)),
}


def test_fuzzing_the_admin_api_cannot_break_tenants(staff, signup, catalog):
    targets = {Stamp: catalog["stamp_a"]["id"], Cloud: catalog["cloud_a"]["id"],
               Template: catalog["template"]["id"], Plan: catalog["plan"]["id"],
               AddOn: catalog["extra"]["id"]}
    seen = {"taken": 0, "refused": 0}

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(sorted(FIELDS)).flatmap(
        lambda name: st.tuples(st.just(name), FIELDS[name][2])))
    def patch_one_field(case):
        name, value = case
        model, path, _, body_of, valid = FIELDS[name]
        pk = targets[model]
        before = model.objects.values().get(pk=pk)
        # json.dumps escapes surrogates, which the test client's own encoder cannot send
        response = staff.generic("PATCH", f"/api/v1/admin/{path}/{pk}/",
                                 json.dumps(body_of(value)), content_type="application/json")
        assert response.status_code in (200, 400), (name, value, response.content[:300])
        if response.status_code == 400:
            seen["refused"] += 1
            assert response["Content-Type"] == "application/problem+json"
            assert response.json()["errors"], response.content
            assert model.objects.values().get(pk=pk) == before, (name, value)
        else:
            seen["taken"] += 1
            stored = model.objects.get(pk=pk)
            assert valid(stored), (name, value)

    patch_one_field()

    # then both answers were seen, and the catalog the fuzzing left is one tenants can use
    assert seen["taken"] and seen["refused"], seen
    for model in (Stamp, Cloud, Template, Plan, AddOn):
        for obj in model.objects.all():
            obj.full_clean(exclude=["cloud"] if model is Plan else None)
    owner = signup()
    response = owner.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"]},
                          format="json")
    assert response.status_code == 201, response.content
