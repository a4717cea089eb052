"""The web UI, page by page: who may open what, forms that call the services, tenant
isolation, and list pages whose query count does not grow with their rows."""

import re
import uuid

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from conftest import APIClient, unique, web_login
from fabric.models import Health, Stamp
from plans.models import Plan, QuotaLedger, Subscription, SubscriptionState
from plans.tests.factories import SubscriptionFactory
from tenants.models import ApiToken, Membership, Role, Tenant, User
from tenants.tests.factories import MembershipFactory, UserFactory

# --- helpers --------------------------------------------------------------------------


def browser_for(email: str) -> Client:
    return web_login(User.objects.get(email=email))


@pytest.fixture
def owner(signup):
    """A new tenant's owner, logged in to the web UI."""
    api = signup()
    client = browser_for(api.email)
    client.api, client.tenant_id = api, api.tenant["id"]
    return client


@pytest.fixture
def provider(staff):
    return browser_for(staff.email)


@pytest.fixture
def subscription(owner, catalog, commission):
    """An active subscription: its commission job has run."""
    response = owner.api.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"],
                                                         "name": "prod"}, format="json")
    assert response.status_code == 201
    commission(response.json()["id"])
    return owner.api.get(f"/api/v1/subscriptions/{response.json()['id']}/").json()


def member_of(tenant_id, role: Role) -> Client:
    membership = MembershipFactory(tenant=Tenant.objects.get(pk=tenant_id), role=role)
    client = Client()
    client.force_login(membership.user)
    return client


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def field_error(response, field: str) -> str:
    """The error shown next to a field (``<div id="id_<field>_error">``), or ''."""
    match = re.search(rf'id="id_{field}_error">(.*?)</div>', text(response))
    return match.group(1) if match else ""


def query_count(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


# --- access ---------------------------------------------------------------------------

TENANT_PAGES = ["/", "/plans/", "/subscriptions/", "/members/", "/tokens/", "/activity/",
                "/password/"]
PROVIDER_PAGES = ["/admin/", "/admin/stamps/", "/admin/stamps/new/", "/admin/clouds/",
                  "/admin/clouds/new/", "/admin/templates/", "/admin/templates/new/",
                  "/admin/plans/", "/admin/plans/new/", "/admin/addons/", "/admin/addons/new/",
                  "/admin/tenants/", "/admin/subscriptions/", "/admin/audit/"]


@pytest.mark.parametrize("url", [p for p in TENANT_PAGES + PROVIDER_PAGES])
def test_anonymous_visitors_are_sent_to_log_in(db, url):
    response = Client().get(url)
    assert response.status_code == 302
    # The provider portal has a login page of its own, on its own face.
    login = "/admin/login/" if url.startswith("/admin/") else "/login/"
    assert response["Location"].startswith(f"{login}?next={url}")


@pytest.mark.parametrize("url", TENANT_PAGES)
def test_tenant_pages_render_for_a_member(owner, url):
    response = owner.get(url)
    assert response.status_code == 200
    page = text(response)
    assert '<main id="main"' in page and 'href="#main"' in page
    assert 'aria-current="page"' in page


def test_the_subscription_pages_render(owner, subscription, catalog):
    assert owner.get(f"/subscriptions/{subscription['id']}/").status_code == 200
    assert owner.get(f"/plans/{catalog['plan']['id']}/subscribe/").status_code == 200


@pytest.mark.parametrize("url", PROVIDER_PAGES)
def test_provider_pages_render_for_staff(provider, catalog, url):
    response = provider.get(url)
    assert response.status_code == 200
    assert 'aria-label="Provider admin"' in text(response)


def test_provider_edit_pages_render(provider, catalog, subscription):
    for url in [f"/admin/stamps/{catalog['stamp_a']['id']}/",
                f"/admin/clouds/{catalog['cloud_a']['id']}/",
                f"/admin/templates/{catalog['template']['id']}/",
                f"/admin/plans/{catalog['plan']['id']}/",
                f"/admin/addons/{catalog['dr']['id']}/"]:
        response = provider.get(url)
        assert response.status_code == 200, url
        assert "Save changes" in text(response)
    tenant = Subscription.objects.get(pk=subscription["id"]).tenant
    response = provider.get(f"/admin/tenants/{tenant.pk}/")
    assert response.status_code == 200 and "prod" in text(response)


@pytest.mark.parametrize("url", ["/admin/", "/admin/plans/", "/admin/tenants/"])
def test_tenants_get_403_in_the_provider_portal(owner, url):
    assert owner.get(url).status_code == 403


def test_staff_at_the_root_land_in_the_provider_portal(provider):
    response = provider.get("/")
    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_a_user_without_organisation_gets_403(db):
    client = Client()
    client.force_login(UserFactory())
    assert client.get("/").status_code == 403


def test_another_tenants_subscription_is_404(signup, subscription, catalog):
    # given another tenant
    other = browser_for(signup().email)
    sid, addon = subscription["id"], catalog["extra"]["id"]
    # then its pages and actions do not exist for it
    assert other.get(f"/subscriptions/{sid}/").status_code == 404
    assert other.post(f"/subscriptions/{sid}/addons/", {"addon": addon}).status_code == 404
    assert other.get(f"/subscriptions/{sid}/addons/{addon}/detach/").status_code == 404
    assert sid not in text(other.get("/subscriptions/"))
    assert not Subscription.objects.get(pk=sid).addons.exists()


def test_another_tenants_member_and_token_are_404(owner, signup):
    other_api = signup()
    other = User.objects.get(email=other_api.email)
    token = ApiToken.objects.filter(user=other).first()
    assert owner.post(f"/members/{other.tenant_membership.pk}/remove/").status_code == 404
    assert owner.post(f"/tokens/{token.pk}/revoke/").status_code == 404
    assert Membership.objects.filter(pk=other.tenant_membership.pk).exists()


def test_a_reader_sees_but_cannot_change(owner, catalog, subscription):
    reader = member_of(owner.tenant_id, Role.READER)
    members = reader.get("/members/")
    assert members.status_code == 200 and "Add a member" not in text(members)
    assert reader.post("/members/", {"email": "x@example.com", "role": "reader"}).status_code == 403
    assert reader.get(f"/plans/{catalog['plan']['id']}/subscribe/").status_code == 403
    assert "Ask an owner or admin" in text(reader.get("/plans/"))
    response = reader.post(f"/subscriptions/{subscription['id']}/addons/",
                           {"addon": catalog["extra"]["id"]})
    assert response.status_code == 403


# --- accounts -------------------------------------------------------------------------

def test_sign_up_creates_the_organisation_and_logs_in(db):
    client = Client()
    response = client.post("/signup/", {"email": "new@example.com", "tenant_name": "Initech",
                                        "password": "a fine long password", "full_name": "Ann"})
    assert response.status_code == 302 and response["Location"] == "/plans/"
    membership = Membership.objects.get(user__email="new@example.com")
    assert membership.tenant.name == "Initech" and membership.role == Role.OWNER
    assert "Initech" in text(client.get("/"))


def test_sign_up_shows_the_services_errors_next_to_the_fields(signup):
    taken = signup(tenant_name="Taken Inc")
    response = Client().post("/signup/", {"email": taken.email, "tenant_name": "taken inc",
                                          "password": "short"})
    assert response.status_code == 200
    assert "already registered" in field_error(response, "email")
    assert "too short" in field_error(response, "password")
    assert 'aria-invalid="true"' in text(response)
    assert not Tenant.objects.filter(name__iexact="taken inc").exclude(name="Taken Inc").exists()


def test_sign_up_never_tells_whether_an_organisation_name_is_taken(signup):
    # given an organisation named Taken Inc
    taken = signup(tenant_name="Taken Inc")
    # when someone else signs up in the browser under the same name
    client = Client()
    response = client.post("/signup/", {"email": "other@example.com", "tenant_name": "taken inc",
                                        "password": "a fine long password"})
    # then the name is not refused: a new organisation of that name is created
    assert response.status_code == 302 and response["Location"] == "/plans/"
    mine = Membership.objects.get(user__email="other@example.com").tenant
    assert str(mine.pk) != taken.tenant["id"]
    assert Tenant.objects.filter(name__iexact="taken inc").count() == 2
    # and its members page shows its own owner only
    members = text(client.get("/members/"))
    assert "other@example.com" in members and taken.email not in members


def test_log_in_and_out(db):
    UserFactory(email="someone@example.com", password="a long password 1")
    client = Client()
    assert client.get("/login/").status_code == 200
    wrong = client.post("/login/", {"username": "someone@example.com", "password": "nope"})
    assert wrong.status_code == 200 and "correct email" in text(wrong)
    right = client.post("/login/", {"username": "someone@example.com",
                                    "password": "a long password 1"})
    assert right.status_code == 302
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_password_change(owner):
    response = owner.post("/password/", {"old_password": "correct horse battery",
                                         "new_password1": "another good password",
                                         "new_password2": "another good password"})
    assert response.status_code == 302
    assert User.objects.get(email=owner.api.email).check_password("another good password")


# --- subscriptions and add-ons --------------------------------------------------------

def test_subscribe_from_the_catalogue(owner, catalog):
    response = owner.post(f"/plans/{catalog['plan']['id']}/subscribe/", {"name": "web"})
    subscription = Subscription.objects.get(tenant_id=owner.tenant_id)
    assert response.status_code == 302
    assert response["Location"] == f"/subscriptions/{subscription.pk}/"
    page = text(owner.get(response["Location"]))
    assert "web" in page and 'aria-valuetext="0 of 8"' in page  # vCPUs: used of limit


def test_subscribing_to_a_decommissioned_plan_shows_why(owner, staff, catalog):
    plan_id = catalog["plan"]["id"]
    page = owner.get(f"/plans/{plan_id}/subscribe/")
    assert page.status_code == 200
    staff.patch(f"/api/v1/admin/plans/{plan_id}/", {"state": "decommissioned"}, format="json")
    # the page vanishes from the catalogue; a form still open answers with the reason
    response = owner.post(f"/plans/{plan_id}/subscribe/", {"name": "late"})
    assert response.status_code == 404 or "decommissioned" in text(response)
    assert not Subscription.objects.filter(tenant_id=owner.tenant_id).exists()


def test_attach_and_detach_an_addon(owner, subscription, catalog):
    sid, extra = subscription["id"], catalog["extra"]["id"]
    # when the quota add-on (+4 vCPUs) is attached
    response = owner.post(f"/subscriptions/{sid}/addons/", {"addon": extra})
    assert response.status_code == 302
    page = text(owner.get(f"/subscriptions/{sid}/"))
    assert 'aria-valuetext="0 of 12"' in page
    # then detaching asks first, and does it on confirmation
    confirm = owner.get(f"/subscriptions/{sid}/addons/{extra}/detach/")
    assert confirm.status_code == 200 and "Are you sure?" in text(confirm)
    assert owner.post(f"/subscriptions/{sid}/addons/{extra}/detach/").status_code == 302
    assert QuotaLedger.objects.get(subscription_id=sid, dimension="vcpus").limit == 8


def test_change_a_subscriptions_plan(owner, subscription, catalog):
    sid, quotas = subscription["id"], catalog["quotas"]
    larger = catalog["post"]("plans", {
        "name": unique("Large "), "state": "public", "cloud": catalog["cloud_a"]["id"],
        "quotas": {**quotas, "vcpus": 32}, "price_monthly": "30.00"})
    tiny = catalog["post"]("plans", {
        "name": unique("Tiny "), "state": "public", "cloud": catalog["cloud_a"]["id"],
        "quotas": {**quotas, "vcpus": 2}, "price_monthly": "1.00"})
    elsewhere = catalog["post"]("plans", {
        "name": unique("Other cloud "), "state": "public", "cloud": catalog["cloud_b"]["id"]})
    # the page offers the other plans of the same cloud only
    page = text(owner.get(f"/subscriptions/{sid}/"))
    assert larger["name"] in page and tiny["name"] in page
    assert elsewhere["name"] not in page
    # a plan whose quota would not hold what runs (6 vCPUs reserved) is refused, with why
    QuotaLedger.objects.filter(subscription_id=sid, dimension="vcpus").update(used=6)
    response = owner.post(f"/subscriptions/{sid}/plan/", {"plan": tiny["id"]}, follow=True)
    assert "would not hold what the subscription uses: vcpus" in text(response)
    assert Subscription.objects.get(pk=sid).plan_id == uuid.UUID(catalog["plan"]["id"])
    # the larger one is taken at once, with its quota
    response = owner.post(f"/subscriptions/{sid}/plan/", {"plan": larger["id"]}, follow=True)
    assert f"is on {larger['name']} from now on" in text(response)
    assert QuotaLedger.objects.get(subscription_id=sid, dimension="vcpus").limit == 32
    # and a reader may not change it
    reader = member_of(owner.tenant_id, Role.READER)
    assert reader.post(f"/subscriptions/{sid}/plan/", {"plan": tiny["id"]}).status_code == 403


def test_attaching_twice_shows_the_services_message(owner, subscription, catalog):
    url = f"/subscriptions/{subscription['id']}/addons/"
    owner.post(url, {"addon": catalog["extra"]["id"]})
    response = owner.post(url, {"addon": catalog["extra"]["id"]}, follow=True)
    assert "already attached" in text(response)
    assert owner.post(url, {"addon": "not-a-uuid"}, follow=True).status_code == 200


# --- members and tokens ---------------------------------------------------------------

def test_add_change_and_remove_a_member(owner):
    UserFactory(email="colleague@example.com")  # a person with an account is added at once
    response = owner.post("/members/", {"email": "colleague@example.com", "role": "operator"})
    assert response.status_code == 302
    membership = Membership.objects.get(user__email="colleague@example.com")
    assert membership.role == Role.OPERATOR and str(membership.tenant_id) == owner.tenant_id
    # the same person again: the service's reason next to the email field
    again = owner.post("/members/", {"email": "colleague@example.com", "role": "reader"})
    assert again.status_code == 200 and "already a member" in field_error(again, "email")
    # role change, then removal after confirmation
    owner.post(f"/members/{membership.pk}/role/", {"role": "admin"})
    membership.refresh_from_db()
    assert membership.role == Role.ADMIN
    assert "Are you sure?" in text(owner.get(f"/members/{membership.pk}/remove/"))
    owner.post(f"/members/{membership.pk}/remove/")
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_the_last_owner_cannot_be_removed(owner):
    me = Membership.objects.get(tenant_id=owner.tenant_id)
    response = owner.post(f"/members/{me.pk}/remove/", follow=True)
    assert "at least one owner" in text(response)
    assert Membership.objects.filter(pk=me.pk).exists()


def test_add_member_form_errors(owner):
    response = owner.post("/members/", {"email": "not an email", "role": "emperor"})
    assert response.status_code == 200
    assert field_error(response, "email") and field_error(response, "role")


def test_issue_a_token_see_it_once_and_revoke_it(owner):
    # when
    response = owner.post("/tokens/", {"name": "ci"})
    # then the key is shown on this answer and works on the API
    assert response.status_code == 200
    key = re.search(r'value="(bft_[^"]+)"', text(response)).group(1)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/tenant/").status_code == 200
    assert key not in text(owner.get("/tokens/"))  # shown once
    # when revoked, it stops working
    token = ApiToken.objects.get(name="ci")
    assert owner.post(f"/tokens/{token.pk}/revoke/").status_code == 302
    assert api.get("/api/v1/tenant/").status_code == 401


# --- provider ---------------------------------------------------------------------------

def test_register_and_check_a_stamp(provider):
    response = provider.post("/admin/stamps/new/", {
        "name": "stamp-ui", "region": "east", "driver": "memory", "endpoint": "mem://ui",
        "credentials": '{"token": "secret"}'})
    assert response.status_code == 302
    stamp = Stamp.objects.get(name="stamp-ui")
    assert stamp.credentials == {"token": "secret"}
    assert "secret" not in text(provider.get(f"/admin/stamps/{stamp.pk}/"))
    provider.post(f"/admin/stamps/{stamp.pk}/check/")
    stamp.refresh_from_db()
    assert stamp.health == Health.HEALTHY and stamp.last_checked_at is not None


def test_stamp_form_errors_come_from_the_model(provider, catalog):
    response = provider.post("/admin/stamps/new/", {
        "name": catalog["stamp_a"]["name"], "region": "east", "driver": "memory",
        "endpoint": "mem://x", "credentials": "{not json"})
    assert response.status_code == 200
    assert field_error(response, "credentials")
    response = provider.post("/admin/stamps/new/", {
        "name": catalog["stamp_a"]["name"], "region": "east", "driver": "memory",
        "endpoint": "mem://x"})
    assert "already exists" in field_error(response, "name")


def test_create_publish_and_decommission_a_plan(provider, catalog):
    form = {"name": "Gold", "description": "", "state": "private",
            "cloud": catalog["cloud_a"]["id"], "price_monthly": "20", "max_subscriptions": "",
            "quota_vcpus": 4, "quota_memory_mb": 4096, "quota_storage_gb": 50, "quota_vms": 2,
            "quota_networks": 1, "quota_snapshots": 1, "max_vm_vcpus": 2,
            "max_vm_memory_mb": 2048, "max_vm_disk_gb": 20,
            "templates": [catalog["template"]["id"]], "addons": [catalog["extra"]["id"]]}
    assert provider.post("/admin/plans/new/", form).status_code == 302
    plan = Plan.objects.get(name="Gold")
    assert plan.state == "private" and list(plan.addons.values_list("name", flat=True)) == [
        catalog["extra"]["name"]]
    provider.post(f"/admin/plans/{plan.pk}/publish/")
    plan.refresh_from_db()
    assert plan.state == "public" and plan.templates.count() == 1
    provider.post(f"/admin/plans/{plan.pk}/decommission/")
    plan.refresh_from_db()
    assert plan.state == "decommissioned"


def test_plan_form_shows_the_services_rule_next_to_the_field(provider, catalog):
    # a DR add-on that recovers to the plan's own stamp is refused by save_plan
    form = {"name": "Bad DR", "state": "private", "cloud": catalog["cloud_b"]["id"],
            "price_monthly": "1", "quota_vcpus": 1, "quota_memory_mb": 1, "quota_storage_gb": 1,
            "quota_vms": 1, "quota_networks": 1, "quota_snapshots": 1, "max_vm_vcpus": 1,
            "max_vm_memory_mb": 1, "max_vm_disk_gb": 1, "addons": [catalog["dr"]["id"]]}
    response = provider.post("/admin/plans/new/", form)
    assert response.status_code == 200
    assert "recovers to the stamp" in field_error(response, "addons")
    assert not Plan.objects.filter(name="Bad DR").exists()


def test_create_a_cloud_a_template_and_an_addon(provider, catalog):
    response = provider.post("/admin/clouds/new/", {
        "name": "cloud-ui", "stamp": catalog["stamp_a"]["id"], "vcpus": 8, "memory_mb": 8192,
        "storage_gb": 100, "vms": 10, "overcommit_cpu": "2", "overcommit_memory": "1",
        "default_network_cidr": "10.1.0.0/24", "external_pool_cidr": "203.0.113.0/28"})
    assert response.status_code == 302
    cloud_id = provider.get("/admin/clouds/?q=cloud-ui").context["rows"][0][0].pk
    response = provider.post("/admin/templates/new/", {
        "name": "alpine", "os": "Alpine", "cloud": cloud_id, "image": "img-alpine",
        "min_vcpus": 1, "min_memory_mb": 256, "min_disk_gb": 1})
    assert response.status_code == 302
    response = provider.post("/admin/addons/new/", {
        "name": "Bad DR add-on", "kind": "dr", "price_monthly": "1", "rpo_seconds": 60,
        "quota_vcpus": 0, "quota_memory_mb": 0, "quota_storage_gb": 0, "quota_vms": 0,
        "quota_networks": 0, "quota_snapshots": 0})
    assert response.status_code == 200
    assert "Required for a DR add-on" in field_error(response, "recovery_cloud")


def test_suspend_and_resume_a_subscription(provider, subscription):
    sid = subscription["id"]
    confirm = provider.get(f"/admin/subscriptions/{sid}/suspend/")
    assert "Are you sure?" in text(confirm)
    provider.post(f"/admin/subscriptions/{sid}/suspend/")
    assert Subscription.objects.get(pk=sid).state == SubscriptionState.SUSPENDED
    again = provider.post(f"/admin/subscriptions/{sid}/suspend/", follow=True)
    assert "cannot be suspended" in text(again)
    provider.post(f"/admin/subscriptions/{sid}/resume/")
    assert Subscription.objects.get(pk=sid).state == SubscriptionState.ACTIVE


def test_provider_lists_search_and_filter(provider, subscription, signup):
    signup(tenant_name="Umbrella Corp")
    tenants = text(provider.get("/admin/tenants/?q=umbrella"))
    assert "Umbrella Corp" in tenants and "Showing 1–1 of 1" in tenants
    assert "Showing 1–1 of 1" in text(provider.get("/admin/subscriptions/?state=active&q=prod"))
    assert "Nothing to show" in text(provider.get("/admin/subscriptions/?state=suspended"))


# --- query counts ---------------------------------------------------------------------

def _many_tenants(plan: Plan, count: int) -> None:
    """``count`` more tenants, each with its owner and a subscription to ``plan``."""
    for i, membership in enumerate(MembershipFactory.create_batch(count, role=Role.OWNER)):
        SubscriptionFactory(tenant=membership.tenant, plan=plan, name=f"s{i}")


def _many_subscriptions(tenant_id, plan: Plan, count: int) -> None:
    """``count`` more subscriptions of the tenant, named "bulk <i>", with their ledger."""
    tenant = Tenant.objects.get(pk=tenant_id)
    for i in range(count):
        SubscriptionFactory(tenant=tenant, plan=plan, name=f"bulk {i}")


@pytest.mark.parametrize("url", ["/admin/tenants/", "/admin/subscriptions/", "/admin/plans/",
                                 "/admin/", "/admin/clouds/", "/admin/stamps/"])
def test_provider_lists_do_not_grow_queries_with_rows(provider, catalog, url,
                                                      django_assert_max_num_queries):
    plan = Plan.objects.get(pk=catalog["plan"]["id"])
    _many_tenants(plan, 2)
    few = query_count(provider, url)
    _many_tenants(plan, 60)
    with django_assert_max_num_queries(few):
        assert provider.get(url).status_code == 200


@pytest.mark.parametrize("url", ["/", "/subscriptions/", "/members/", "/plans/", "/activity/",
                                 "/vms/", "/networks/", "/jobs/"])
def test_tenant_pages_do_not_grow_queries_with_rows(owner, catalog, url,
                                                    django_assert_max_num_queries):
    plan = Plan.objects.get(pk=catalog["plan"]["id"])
    _many_subscriptions(owner.tenant_id, plan, 2)
    for i in range(2):
        owner.post("/members/", {"email": f"{unique('m')}{i}@example.com", "role": "reader"})
    few = query_count(owner, url)
    _many_subscriptions(owner.tenant_id, plan, 60)
    for _ in range(30):
        owner.post("/members/", {"email": f"{unique('m')}@example.com", "role": "reader"})
    with django_assert_max_num_queries(few):
        assert owner.get(url).status_code == 200


def test_lists_paginate(owner, catalog):
    plan = Plan.objects.get(pk=catalog["plan"]["id"])
    _many_subscriptions(owner.tenant_id, plan, 30)
    first = text(owner.get("/subscriptions/"))
    assert "Showing 1–25 of 30" in first and "Next" in first
    assert "Showing 26–30 of 30" in text(owner.get("/subscriptions/?page=2"))
    assert "Showing 1–1 of 1" in text(owner.get("/subscriptions/?q=bulk 17"))


def test_a_failed_subscription_shows_why_and_its_owner_retries_it(owner, catalog, commission):
    from fabric.drivers import memory
    from provisioning import engine
    from provisioning.models import Job

    # given a subscription whose commission failed at the gateway
    response = owner.api.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"],
                                                         "name": "prod"}, format="json")
    sid = response.json()["id"]
    page = text(owner.get(f"/subscriptions/{sid}/"))
    assert "being set up on its stamp" in page and "New VM" in page
    memory.admin_request(catalog["stamp_a"]["endpoint"], "POST", "/v1/admin/faults",
                         {"fail_op_next": {"gateway.create": 1}})
    engine.run(Job.objects.get(subscription_id=sid, runbook="subscription.commission").pk)
    assert Subscription.objects.get(pk=sid).state == SubscriptionState.FAILED
    # then its page says so, with the error, and offers a retry instead of new work
    page = text(owner.get(f"/subscriptions/{sid}/"))
    assert "did not succeed" in page and "gateway" in page.lower()
    assert "Retry setup" in page and "New VM" not in page
    # when the owner retries it, it is set up again
    assert owner.post(f"/subscriptions/{sid}/retry/").status_code == 302
    assert Subscription.objects.get(pk=sid).state == SubscriptionState.PROVISIONING
    commission(sid)
    page = text(owner.get(f"/subscriptions/{sid}/"))
    assert "Retry setup" not in page and "did not succeed" not in page


def test_pages_that_choose_a_tenant_list_only_the_chosen_and_search_the_rest(provider,
                                                                                catalog):
    plan = Plan.objects.get(pk=catalog["plan"]["id"])
    _many_tenants(plan, 30)
    chosen, other = Tenant.objects.order_by("name")[:2]
    other.name = "Zanzibar Freight"
    other.save()
    plan.offered_to.set([chosen])
    # the plan form and the job filter render the chosen tenant only, whatever the rows
    for url in (f"/admin/plans/{plan.pk}/", f"/admin/jobs/?tenant={chosen.pk}"):
        page = text(provider.get(url))
        assert f'value="{chosen.pk}"' in page and chosen.name in page
        assert f'value="{other.pk}"' not in page, url
        assert 'placeholder="Find a tenant…"' in page
    # the search answers the first matches as options of the field, for staff only
    url = "/admin/tenants/pick/?name=offered_to&type=checkbox&id=id_offered_to"
    found = text(provider.get(f"{url}&offered_to_q=zanzibar"))
    assert f'name="offered_to" value="{other.pk}"' in found
    assert found.count('type="checkbox"') == 1
    everyone = text(provider.get(url))
    assert everyone.count('type="checkbox"') == 20 and "type more of the name" in everyone
    assert "No a tenant matches" not in everyone
    assert provider.get("/admin/tenants/pick/?name=x%22&type=checkbox").status_code == 400
    assert Client().get(url).status_code in (302, 403)
    # and what is ticked among the answers is saved
    form = provider.get(f"/admin/plans/{plan.pk}/").context["form"]
    data = {**{k: v for k, v in form.initial.items() if v is not None and k not in (
        "templates", "addons", "offered_to")}, "offered_to": [str(chosen.pk), str(other.pk)],
        "templates": [str(t.pk) for t in plan.templates.all()],
        "addons": [str(a.pk) for a in plan.addons.all()]}
    data["cloud"] = str(plan.cloud_id)
    response = provider.post(f"/admin/plans/{plan.pk}/", data)
    assert response.status_code == 302, field_error(response, "offered_to") or response
    assert set(plan.offered_to.all()) == {chosen, other}


def test_provider_lists_count_for_the_rows_on_the_page(provider, catalog):
    from provisioning.models import VmState
    from provisioning.tests.factories import VirtualMachineFactory

    plan = Plan.objects.get(pk=catalog["plan"]["id"])
    membership = MembershipFactory(role=Role.OWNER)
    MembershipFactory(tenant=membership.tenant, role=Role.READER)
    tenant = membership.tenant
    tenant.name = "Counted Ltd"
    tenant.save()
    kept, gone = (SubscriptionFactory(tenant=tenant, plan=plan, name=n) for n in ("kept", "gone"))
    Subscription.objects.filter(pk=gone.pk).update(state=SubscriptionState.DELETED)
    VirtualMachineFactory.create_batch(3, subscription=kept)
    VirtualMachineFactory(subscription=kept, state=VmState.DELETED)
    # the tenant's row: 2 members, 1 subscription that is not deleted
    row = re.search(r"Counted Ltd</a></td>(.*?)</tr>", text(provider.get("/admin/tenants/")))
    assert re.findall(r'text-end">(\d+)<', row.group(1)) == ["2", "1"]
    # the subscriptions' rows, newest first: none in "gone", 3 VMs not deleted in "kept"
    page = text(provider.get("/admin/subscriptions/?q=Counted"))
    assert re.findall(r'text-end">(\d+)<', page) == ["0", "3"]
