"""The DR pages of both portals: a subscription's protection, lag chart and reports for
its tenant; every protection, failover, failback and network mappings for the provider.
Protections, replicas and reports are rows made by factories: no fabric is needed to draw
them, and the buttons are shown to call their service by the job each one records."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import get_resolver, include, path, reverse
from django.utils import timezone

from conftest import unique
from dr_addon.models import (
    ActiveSite,
    DrillKind,
    DrReport,
    NetworkMapping,
    ProtectedVm,
    Protection,
    ProtectionState,
)
from dr_addon.tests.factories import (
    DrReportFactory,
    NetworkMappingFactory,
    ProtectedVmFactory,
    ProtectionFactory,
)
from fabric.models import Cloud
from plans.models import AddOn, Plan, Subscription
from plans.tests.factories import SubscriptionFactory
from portal.urls import handler404, handler500  # noqa: F401 - this module is a urlconf too
from provisioning.models import Job, Network
from provisioning.tests.factories import NetworkFactory
from tenants.models import Role, Tenant
from tests.test_ui_pages import browser_for, field_error, member_of, query_count, text

# --- urls: the project's, with the DR pages until the project includes them itself -----


def _dr_urls() -> list:
    wired = get_resolver("portal.urls").namespace_dict
    urls = []
    if "dr" not in wired:
        urls.append(path("subscriptions/<uuid:pk>/dr/", include("dr_addon.urls")))
    if "provider-dr" not in wired:
        urls.append(path("admin/dr/", include("dr_addon.provider_urls")))
    return urls


urlpatterns = [*_dr_urls(), path("", include("portal.urls"))]
pytestmark = pytest.mark.urls(__name__)

HTMX = {"HTTP_HX_REQUEST": "true"}


# --- a DR world, from factories -------------------------------------------------------


def seconds_ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def protect(subscription: Subscription, addon: AddOn, *, state=ProtectionState.PROTECTED,
            lags=(), active_site=ActiveSite.PRIMARY) -> Protection:
    """``subscription`` protected by ``addon``, with one running VM per lag on its default
    network (seconds; None: the VM never synced)."""
    protection = ProtectionFactory(subscription=subscription, addon=addon, state=state,
                                   active_site=active_site)
    network = NetworkFactory(subscription=subscription, default=True, cidr="10.1.0.0/24")
    template = subscription.plan.templates.first()
    for index, lag in enumerate(lags):
        ProtectedVmFactory(protection=protection, vm__network=network, vm__template=template,
                           vm__name=f"vm-{index}", sequence=index + 7,
                           last_sync_at=None if lag is None else seconds_ago(lag))
    return protection


def report(protection: Protection, kind=DrillKind.TEST, **fields) -> DrReport:
    """A report of ``protection``, started an hour ago unless ``started_at`` says when."""
    return DrReportFactory(protection=protection, kind=kind,
                           **{"started_at": seconds_ago(3600), **fields})


@pytest.fixture
def owner(signup):
    api = signup()
    client = browser_for(api.email)
    client.tenant = Tenant.objects.get(pk=api.tenant["id"])
    return client


@pytest.fixture
def provider(staff):
    return browser_for(staff.email)


@pytest.fixture
def dr_addon(catalog) -> AddOn:
    return AddOn.objects.select_related("recovery_cloud").get(pk=catalog["dr"]["id"])


@pytest.fixture
def plan(catalog) -> Plan:
    return Plan.objects.get(pk=catalog["plan"]["id"])


@pytest.fixture
def subscription(owner, plan) -> Subscription:
    return SubscriptionFactory(tenant=owner.tenant, plan=plan, name="prod")


@pytest.fixture
def protection(subscription, dr_addon) -> Protection:
    """prod, protected with a 300 s RPO target: vm-0 30 s behind, vm-1 12 min behind,
    vm-2 90 s behind; a passed drill, an unplanned failover and a failed drill."""
    protection = protect(subscription, dr_addon, lags=(30, 720, 90))
    now = timezone.now()
    report(protection, outcome="passed", finished_at=now - timedelta(seconds=3540),
           details={"vms": 3, "duration_seconds": 60.2})
    report(protection, DrillKind.UNPLANNED, outcome="succeeded", data_loss_seconds=42.4,
           finished_at=now - timedelta(seconds=1700), started_at=seconds_ago(1800),
           details={"mode": "unplanned", "duration_seconds": 100})
    report(protection, outcome="failed", finished_at=now - timedelta(seconds=590),
           started_at=seconds_ago(600),
           details={"error": "Step 'Check the copies' failed: 1 recovery copies did not start."})
    return protection


def dr_url(subscription, name="status", *args) -> str:
    return reverse(f"dr:{name}", args=[subscription.pk, *args])


def provider_url(name, *args) -> str:
    return reverse(f"provider-dr:{name}", args=args)


def chart(page: str) -> str:
    return re.search(r'<svg class="lag-chart".*?</svg>', page).group(0)


# --- tenant ---------------------------------------------------------------------------

def test_a_subscription_without_dr_says_what_it_is_and_where_to_add_it(owner, subscription,
                                                                      dr_addon):
    # when
    response = owner.get(dr_url(subscription))
    # then
    page = text(response)
    assert response.status_code == 200
    assert "This subscription is not protected" in page and "test failover" in page
    assert dr_addon.name in page and "RPO target 5 min" in page
    assert f'href="/subscriptions/{subscription.pk}/"' in page
    assert "lag-chart" not in page


def test_the_tenant_sees_the_protection_its_lag_chart_and_its_reports(owner, subscription,
                                                                     protection):
    # when
    response = owner.get(dr_url(subscription))
    # then the state, the site it runs on and where it recovers
    page = text(response)
    assert response.status_code == 200
    assert "Protected" in page and "Primary" in page
    assert protection.recovery_site.cloud.name in page and "5 min" in page
    # a bar per VM, the one past its RPO target in red, and the target line
    svg = chart(page)
    assert svg.count("<rect ") == 3 and svg.count('fill="#d92d20"') == 1
    assert "RPO target 5 min" in svg and "stroke-dasharray" in svg
    assert "1 past the target" in svg and "vm-1: 12 min" in svg
    # the VMs, flagged when past the target
    assert page.count("Past RPO") == 1 and "1 past the target" in page
    assert f'href="/vms/{ProtectedVm.objects.get(vm__name="vm-0").vm_id}/"' in page
    # drills and reports, newest first, with their outcome, data loss and duration
    kinds = re.findall(r'href="/subscriptions/[^"]+/dr/reports/[^"]+/">([^<]+)</a>', page)
    assert kinds == ["Test failover", "Unplanned failover", "Test failover"]
    assert "Failed" in page and "Passed" in page and "42 s" in page and "1 min 40 s" in page
    # nothing is running: the page does not poll
    assert "hx-trigger" not in page.split('id="dr-live"')[1].split(">")[0]


def test_a_test_failover_asks_first_then_starts_its_job_and_the_page_follows_it(
        owner, subscription, protection):
    url = dr_url(subscription, "test_failover")
    # the button opens a confirmation that says what happens
    page = text(owner.get(dr_url(subscription)))
    assert f'href="{url}?next=' in page and "Run test failover" in page
    confirm = text(owner.get(url))
    assert "isolated network" in confirm and "Production keeps running" in confirm
    # when confirmed
    response = owner.post(url)
    # then the service recorded the drill and its job, and the page follows the job
    assert response.status_code == 302 and response["Location"] == dr_url(subscription)
    job = Job.objects.get(runbook="dr.test-failover", subscription=subscription)
    assert DrReport.objects.get(job=job).kind == DrillKind.TEST
    page = text(owner.get(dr_url(subscription)))
    assert "The test failover has started" in page
    assert 'hx-trigger="every 3s"' in page and f'href="/jobs/{job.pk}/"' in page
    assert "A test failover is running" in page and "Running" in page
    assert "Run test failover" not in page
    # the poll gets the live part
    assert 'id="dr-live"' in text(owner.get(dr_url(subscription), **HTMX))
    # and the drill's report shows the steps of its job
    drill = text(owner.get(dr_url(subscription, "report", DrReport.objects.get(job=job).pk)))
    assert "Create an isolated drill container" in drill and "Still running" in drill


def test_the_services_refusal_is_shown_and_nothing_starts(owner, subscription, protection):
    # given a subscription failing over
    Protection.objects.filter(pk=protection.pk).update(state=ProtectionState.FAILING_OVER)
    # when
    response = owner.post(dr_url(subscription, "test_failover"), follow=True)
    # then
    assert "DR is failing over; a drill needs a protected subscription." in text(response)
    assert not Job.objects.filter(runbook="dr.test-failover").exists()
    assert "no job is running" in text(response)


def test_a_reader_sees_the_page_but_cannot_run_a_drill(owner, subscription, protection):
    reader = member_of(owner.tenant.pk, Role.READER)
    page = text(reader.get(dr_url(subscription)))
    assert "Replication lag" in page and "Run test failover" not in page
    assert reader.get(dr_url(subscription, "test_failover")).status_code == 403
    assert reader.post(dr_url(subscription, "test_failover")).status_code == 403
    assert not Job.objects.filter(runbook="dr.test-failover").exists()


def test_a_report_shows_its_details(owner, subscription, protection):
    failed, unplanned, passed = protection.reports.all()
    # a passed drill: what it checked
    page = text(owner.get(dr_url(subscription, "report", passed.pk)))
    assert "VMs checked" in page and "Passed" in page and "1 min 0 s" in page
    # an unplanned failover: the data-loss window
    page = text(owner.get(dr_url(subscription, "report", unplanned.pk)))
    assert "Unplanned failover" in page and "42 s" in page and "Data-loss window" in page
    # a failed drill: what went wrong
    page = text(owner.get(dr_url(subscription, "report", failed.pk)))
    assert "1 recovery copies did not start" in page and "Failed" in page


def test_another_tenants_dr_pages_do_not_exist_for_it(signup, subscription, protection):
    # given another tenant
    other = browser_for(signup().email)
    report_id = protection.reports.first().pk
    # then its DR pages and actions are 404, and nothing starts
    for url in [dr_url(subscription), dr_url(subscription, "report", report_id),
                dr_url(subscription, "test_failover")]:
        assert other.get(url).status_code == 404, url
    assert other.post(dr_url(subscription, "test_failover")).status_code == 404
    assert not Job.objects.filter(runbook="dr.test-failover").exists()


def test_a_report_of_another_subscription_is_404(owner, protection, plan):
    mine = SubscriptionFactory(tenant=owner.tenant, plan=plan, name="second")
    elsewhere = report(protection)
    assert owner.get(dr_url(mine, "report", elsewhere.pk)).status_code == 404


# --- provider: access -----------------------------------------------------------------

def provider_pages(subscription, protection, mapping) -> list[str]:
    report_id = protection.reports.first().pk
    return [provider_url("protection_list"), provider_url("mapping_list"),
            provider_url("mapping_delete", mapping.pk),
            provider_url("status", subscription.pk),
            provider_url("report", subscription.pk, report_id)] + [
        provider_url(name, subscription.pk) for name in (
            "test_failover", "planned_failover", "unplanned_failover", "failback")]


def test_provider_dr_pages_are_403_for_tenants_and_ask_visitors_to_log_in(
        owner, subscription, protection, dr_addon):
    mapping = NetworkMapping.objects.get(addon=dr_addon)
    for url in provider_pages(subscription, protection, mapping):
        assert owner.get(url).status_code == 403, url
        assert owner.post(url).status_code == 403, url
        anonymous = Client().get(url)
        # the provider's own login page
        assert anonymous.status_code == 302
        assert anonymous["Location"].startswith("/admin/login/")
    assert not Job.objects.filter(runbook__startswith="dr.").exists()
    assert NetworkMapping.objects.filter(pk=mapping.pk).exists()


def test_provider_dr_pages_render_for_staff(provider, subscription, protection, dr_addon):
    mapping = NetworkMapping.objects.get(addon=dr_addon)
    for url in provider_pages(subscription, protection, mapping):
        response = provider.get(url)
        assert response.status_code == 200, url
        assert 'aria-label="Provider admin"' in text(response)


# --- provider: every protection -------------------------------------------------------

def test_the_provider_sees_every_protection_lagging_ones_first(provider, signup, plan, dr_addon,
                                                               subscription, protection):
    # given another tenant's subscription, well within its target
    other = Tenant.objects.get(pk=signup(tenant_name=unique("Umbrella ")).tenant["id"])
    calm = protect(SubscriptionFactory(tenant=other, plan=plan, name="calm"), dr_addon,
                   lags=(10, 20))
    # when
    page = text(provider.get(provider_url("protection_list")))
    # then both, the one past its target first and flagged, with its worst lag
    names = re.findall(r'href="/admin/dr/subscriptions/[^"]+/">([^<]+)</a>', page)
    assert names == ["prod", "calm"]
    assert page.count("Past RPO") == 1 and "12 min" in page
    assert "Showing 1–2 of 2" in page
    # filters and search
    assert "Showing 1–1 of 1" in text(provider.get(provider_url("protection_list") + "?lag=past"))
    within = text(provider.get(provider_url("protection_list") + "?lag=within"))
    assert "Showing 1–1 of 1" in within and "calm" in within
    found = text(provider.get(provider_url("protection_list") + f"?q={other.name}"))
    assert "Showing 1–1 of 1" in found and "calm" in found
    Protection.objects.filter(pk=calm.pk).update(active_site=ActiveSite.RECOVERY,
                                                 state=ProtectionState.FAILED_OVER)
    on_recovery = text(provider.get(provider_url("protection_list") + "?active_site=recovery"))
    assert "Showing 1–1 of 1" in on_recovery and "calm" in on_recovery
    assert "Nothing matches these filters" in text(
        provider.get(provider_url("protection_list") + "?state=error"))


def test_the_provider_page_of_a_subscription_offers_what_its_state_allows(
        provider, subscription, protection):
    page = text(provider.get(provider_url("status", subscription.pk)))
    assert '<svg class="lag-chart"' in page and subscription.tenant.name in page
    for name in ("test_failover", "planned_failover", "unplanned_failover"):
        assert f'href="{provider_url(name, subscription.pk)}?next=' in page
    assert provider_url("failback", subscription.pk) not in page
    Protection.objects.filter(pk=protection.pk).update(state=ProtectionState.FAILED_OVER,
                                                       active_site=ActiveSite.RECOVERY)
    page = text(provider.get(provider_url("status", subscription.pk)))
    assert f'href="{provider_url("failback", subscription.pk)}?next=' in page
    assert provider_url("planned_failover", subscription.pk) not in page
    assert "runs on its recovery site" in page


@pytest.mark.parametrize(("name", "says", "mode"), [
    ("planned_failover", "a final sync copies their last writes", "planned"),
    ("unplanned_failover", "whatever they wrote since is lost", "unplanned"),
])
def test_a_failover_says_what_will_happen_then_starts_its_job(provider, subscription,
                                                              protection, name, says, mode):
    url = provider_url(name, subscription.pk)
    # the confirmation says what happens
    confirm = text(provider.get(url, **HTMX))
    assert says in confirm and "Are you sure?" in confirm
    assert protection.recovery_site.cloud.name in confirm
    # when confirmed
    response = provider.post(url, follow=True)
    # then the job runs, and the page follows it
    job = Job.objects.get(runbook="dr.failover", subscription=subscription)
    assert job.inputs["mode"] == mode
    protection.refresh_from_db()
    assert protection.state == ProtectionState.FAILING_OVER
    page = text(response)
    assert "is failing over" in page and f'href="/admin/jobs/{job.pk}/"' in page
    assert 'hx-trigger="every 3s"' in page


def test_failback_after_a_failover(provider, subscription, protection):
    # given a subscription running on its recovery site
    Protection.objects.filter(pk=protection.pk).update(state=ProtectionState.FAILED_OVER,
                                                       active_site=ActiveSite.RECOVERY)
    url = provider_url("failback", subscription.pk)
    assert "Replication is reversed" in text(provider.get(url))
    # when
    assert provider.post(url).status_code == 302
    # then
    assert Job.objects.filter(runbook="dr.failback", subscription=subscription).exists()
    protection.refresh_from_db()
    assert protection.state == ProtectionState.FAILING_BACK
    # and failing back twice is refused by the service
    again = text(provider.post(url, follow=True))
    assert "Failback needs a subscription running on its recovery site." in again
    assert Job.objects.filter(runbook="dr.failback").count() == 1


def test_the_provider_runs_a_drill_too(provider, subscription, protection):
    assert provider.post(provider_url("test_failover", subscription.pk)).status_code == 302
    assert Job.objects.filter(runbook="dr.test-failover", subscription=subscription).exists()


def test_a_subscription_without_protection_has_no_provider_dr_page(provider, subscription):
    assert provider.get(provider_url("status", subscription.pk)).status_code == 404
    assert provider.post(provider_url("planned_failover", subscription.pk)).status_code == 404


# --- provider: network mappings -------------------------------------------------------

def test_map_a_network_with_the_services_rules_then_delete_it(provider, dr_addon):
    url = provider_url("mapping_list")
    Cloud.objects.filter(pk=dr_addon.recovery_cloud_id).update(
        provider_networks=["external", "backup"])
    # the form lists what the add-on's recovery cloud can map to
    page = text(provider.get(url))
    assert f"{dr_addon.name}: external, backup" in page
    # a recovery network the recovery cloud does not have is refused, next to the field
    response = provider.post(url, {"addon": dr_addon.pk, "primary_network": "backup",
                                   "recovery_network": "nowhere"})
    assert response.status_code == 200
    assert "Choose one of: external, backup." in field_error(response, "recovery_network")
    # a valid one is saved by the service
    response = provider.post(url, {"addon": dr_addon.pk, "primary_network": "backup",
                                   "recovery_network": "backup"})
    assert response.status_code == 302
    mapping = NetworkMapping.objects.get(addon=dr_addon, primary_network="backup")
    # the same primary network again is refused by the model's constraint
    again = text(provider.post(url, {"addon": dr_addon.pk, "primary_network": "backup",
                                     "recovery_network": "external"}))
    assert "already mapped" in again
    # listed, searched, deleted after confirming
    assert "Showing 1–1 of 1" in text(provider.get(url + "?q=backup"))
    delete = provider_url("mapping_delete", mapping.pk)
    assert "cannot be saved with the add-on" in text(provider.get(delete))
    assert "was deleted" in text(provider.post(delete, follow=True))
    assert not NetworkMapping.objects.filter(pk=mapping.pk).exists()


def test_a_mapping_needs_a_dr_addon(provider, catalog):
    response = provider.post(provider_url("mapping_list"), {
        "addon": catalog["extra"]["id"], "primary_network": "external",
        "recovery_network": "external"})
    assert response.status_code == 200 and field_error(response, "addon")
    assert not NetworkMapping.objects.filter(addon_id=catalog["extra"]["id"]).exists()


# --- query counts ---------------------------------------------------------------------

def _many_protections(plan: Plan, addon: AddOn, count: int, vms: int = 3) -> None:
    """``count`` more tenants, each with a protected subscription of ``vms`` VMs."""
    for i in range(count):
        subscription = SubscriptionFactory(plan=plan, name=f"s{i}")
        _more_vms_and_reports(protect(subscription, addon, lags=()), vms)


def _more_vms_and_reports(protection: Protection, count: int) -> None:
    """``count`` more protected VMs (one in seven never synced) and reports."""
    subscription = protection.subscription
    network = Network.objects.get(subscription=subscription, is_default=True)
    template = subscription.plan.templates.first()
    prefix = unique("bulk-")
    for i in range(count):
        ProtectedVmFactory(protection=protection, vm__network=network, vm__template=template,
                           vm__name=f"{prefix}{i}", primary_fabric_id=f"p{i}",
                           last_sync_at=None if i % 7 == 3 else seconds_ago(10 + i * 40))
        DrReportFactory(protection=protection, kind=[DrillKind.TEST, DrillKind.UNPLANNED][i % 2],
                        outcome="passed", finished_at=timezone.now(), data_loss_seconds=i)


def test_the_provider_list_does_not_grow_queries_with_rows(provider, plan, dr_addon,
                                                           django_assert_max_num_queries):
    url = provider_url("protection_list")
    _many_protections(plan, dr_addon, 2)
    few = query_count(provider, url)
    _many_protections(plan, dr_addon, 40, vms=6)
    with django_assert_max_num_queries(few):
        page = text(provider.get(url))
    assert "Showing 1–25 of 42" in page


def test_the_dr_pages_of_a_subscription_do_not_grow_queries_with_vms_and_reports(
        owner, provider, subscription, protection, django_assert_max_num_queries):
    urls = [(owner, dr_url(subscription)), (provider, provider_url("status", subscription.pk))]
    few = {url: query_count(client, url) for client, url in urls}
    _more_vms_and_reports(protection, 40)
    for client, url in urls:
        with django_assert_max_num_queries(few[url]):
            assert client.get(url).status_code == 200


def test_the_mapping_list_does_not_grow_queries_with_rows(provider, catalog, dr_addon,
                                                          django_assert_max_num_queries):
    url = provider_url("mapping_list")
    few = query_count(provider, url)
    for i in range(40):
        NetworkMappingFactory(addon=dr_addon, primary_network=f"net-{i}")
    with django_assert_max_num_queries(few):
        assert provider.get(url).status_code == 200

