"""Fixtures shared by every test: API clients for each kind of caller, a provider catalog."""

import itertools
import os

import pytest

_counter = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def _embedded_broker(request, tmp_path_factory):
    """In embedded mode the jobs tests publish, and the workers they start, need the
    embedded broker: each test process runs one of its own for the session."""
    if not request.config.pluginmanager.hasplugin("django"):
        yield
        return
    from django.conf import settings

    if not settings.BUFFET_EMBEDDED_BROKER:
        yield
        return
    from portal.broker import EmbeddedBroker
    from tests.processes import publishing_to

    with EmbeddedBroker(tmp_path_factory.mktemp("broker")) as broker, \
            publishing_to(broker.url):
        yield


@pytest.fixture(autouse=True)
def _fresh_throttles(request, monkeypatch):
    """Each test counts its own throttled requests, apart from parallel test workers that
    share the Redis cache."""
    if not request.config.pluginmanager.hasplugin("django"):
        return  # stampsim and driver tests also run without Django
    from django.core.cache.backends.locmem import LocMemCache
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "cache", LocMemCache(unique("throttle"), {}))


@pytest.fixture(autouse=True)
def _fast_password_hashing(request):
    if not request.config.pluginmanager.hasplugin("django"):
        return
    settings = request.getfixturevalue("settings")
    # PBKDF2 at full strength costs ~0.3 s a login; tests log in hundreds of times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def on_postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


def require_services() -> bool:
    return os.environ.get("BUFFET_REQUIRE_SERVICES") == "1"


@pytest.fixture
def postgres():
    """Tests of concurrency invariants need PostgreSQL's row locks."""
    if not on_postgres():
        if require_services():
            pytest.fail("BUFFET_REQUIRE_SERVICES=1 but DATABASE_URL is not PostgreSQL")
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://...")


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid()}x{next(_counter)}"


class Api:
    """A logged-in API client that remembers who it is."""

    def __init__(self, client, email: str = "", tenant: dict | None = None):
        self.client = client
        self.email = email
        self.tenant = tenant or {}

    def __getattr__(self, name):
        return getattr(self.client, name)


def APIClient():  # noqa: N802 - reads like the class it builds
    from rest_framework.test import APIClient as Client

    return Client()


@pytest.fixture
def anon():
    return APIClient()


@pytest.fixture
def signup(db):
    """``signup()`` creates a tenant through the API and returns its owner's client."""

    def make(tenant_name: str | None = None, email: str | None = None) -> Api:
        client = APIClient()
        email = email or f"{unique('owner')}@example.com"
        password = "correct horse battery"
        response = client.post("/api/v1/auth/signup/", {
            "email": email, "password": password,
            "tenant_name": tenant_name or unique("Tenant ")}, format="json")
        assert response.status_code == 201, response.content
        token = client.post("/api/v1/auth/token/", {"email": email, "password": password},
                            format="json").json()["token"]
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        return Api(client, email, response.json()["tenant"])

    return make


STAFF_PASSWORD = "provider password 1"


@pytest.fixture
def staff(db) -> Api:
    """A provider administrator with an authenticator app, its API token got with a code;
    ``staff.code()`` is the code of its app now, ``staff.user`` the account."""
    from tenants.models import User
    from tenants.tests.factories import enrol_totp, totp_code

    email = f"{unique('admin')}@provider.example"
    user = User.objects.create_superuser(email, STAFF_PASSWORD)
    enrol_totp(user)
    client = APIClient()
    response = client.post("/api/v1/auth/token/", {"email": email, "password": STAFF_PASSWORD,
                                                   "otp": totp_code(user)}, format="json")
    assert response.status_code == 200, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    api = Api(client, email)
    api.user, api.password = user, STAFF_PASSWORD
    api.code = lambda: totp_code(user)
    return api


def web_login(user):
    """A Django test client logged in as ``user``, as after its login page: with the code
    of its authenticator app too, when it has one."""
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY

    from tenants import services

    client = Client()
    client.force_login(user)
    device = services.confirmed_device(user)
    if device is not None:
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
    return client


@pytest.fixture
def catalog(staff):
    """A provider catalog built through the admin API: two stamps, two clouds, plans."""
    def post(path, body):
        response = staff.post(f"/api/v1/admin/{path}/", body, format="json")
        assert response.status_code == 201, (path, response.content)
        return response.json()

    stamp_a = post("stamps", {"name": unique("stamp-a-"), "region": "west", "driver": "memory",
                              "endpoint": f"mem://{unique('a')}", "credentials": {"token": "s"}})
    stamp_b = post("stamps", {"name": unique("stamp-b-"), "region": "north", "driver": "memory",
                              "endpoint": f"mem://{unique('b')}"})
    capacity = {"vcpus": 64, "memory_mb": 262144, "storage_gb": 4000, "vms": 100}
    cloud_a = post("clouds", {"name": unique("cloud-a-"), "stamp": stamp_a["id"],
                              "capacity": capacity, "overcommit": {"cpu": "2", "memory": "1"}})
    cloud_b = post("clouds", {"name": unique("cloud-b-"), "stamp": stamp_b["id"],
                              "capacity": capacity})
    template = post("templates", {"name": "debian-12", "os": "Debian 12", "cloud": cloud_a["id"],
                                  "image": "img-debian", "min_memory_mb": 512,
                                  "min_disk_gb": 10})
    extra = post("addons", {"name": unique("Extra "), "kind": "quota",
                            "quotas": {"vcpus": 4, "vms": 2}, "price_monthly": "5.00"})
    dr = post("addons", {"name": unique("DR "), "kind": "dr", "recovery_cloud": cloud_b["id"],
                         "price_monthly": "10.00"})
    post("network-mappings", {"addon": dr["id"], "primary_network": "external",
                              "recovery_network": "external"})
    quotas = {"vcpus": 8, "memory_mb": 16384, "storage_gb": 200, "vms": 4, "networks": 2,
              "snapshots": 4}
    plan = post("plans", {"name": unique("Small "), "state": "public", "cloud": cloud_a["id"],
                          "quotas": quotas, "templates": [template["id"]],
                          "addons": [extra["id"], dr["id"]], "price_monthly": "9.00"})
    return {"stamp_a": stamp_a, "stamp_b": stamp_b, "cloud_a": cloud_a, "cloud_b": cloud_b,
            "template": template, "extra": extra, "dr": dr, "plan": plan, "quotas": quotas,
            "post": post}


@pytest.fixture
def commission(db):
    """``commission(subscription_id)`` runs the subscription's commission job here, as a
    worker would, on the catalog's memory-driver stamps; the subscription is then active."""
    def run(subscription_id) -> None:
        from provisioning import engine
        from provisioning.models import Job

        job = Job.objects.get(subscription_id=subscription_id,
                              runbook="subscription.commission")
        engine.run(job.pk)
        job.refresh_from_db()
        assert job.state == "succeeded", job.error

    return run


# --- A run that executes fewer tests than it collected is a failed run -----------------

_OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "error")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """Fail the run when some collected tests never ran (a plugin that swallows items
    under ``pytest -n``, a crashed worker): green must mean every test was executed."""
    if hasattr(session.config, "workerinput") or session.config.option.collectonly:
        return  # a pytest-xdist worker reports to the controller, which counts
    if session.shouldfail or session.shouldstop or exitstatus not in (0, 1):
        return  # -x, interrupted, or nothing collected: already not green
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    # Reports, not node ids: schemathesis runs its generated cases as sub-tests of one id.
    executed = sum(len(reporter.stats.get(outcome, [])) for outcome in _OUTCOMES)
    collected = session.testscollected
    if executed < collected:
        reporter.ensure_newline()
        reporter.write_line(f"ERROR: {collected} tests were collected but only "
                            f"{executed} ran.", red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
