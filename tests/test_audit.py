"""Every change audited: each tenant and provider action, driven once through the API (and
the web pages where the API has none), leaves exactly one audit row under its request id,
with the right actor, tenant and object, and a before/after where something changed; no
secret used on the way is in any row, log line or error answer."""

import csv
import io
import json
import logging
import uuid

import pytest
from django.core import mail

from base.models import AuditEvent
from conftest import STAFF_PASSWORD, APIClient, unique, web_login
from plans.models import Subscription
from provisioning import engine
from provisioning.models import Job
from tenants.models import User

PASSWORD = "correct horse battery"
STAMP_TOKEN = "stamp-credential-" + uuid.uuid4().hex
NEW_STAMP_TOKEN = "rotated-stamp-credential-" + uuid.uuid4().hex
INVITEE_PASSWORD = "invited person password 7"
NEW_PASSWORD = "a brand new passphrase 9"


class Audit:
    """Sends each call under a request id of its own and checks its one audit row."""

    def __init__(self):
        self.rows: list[AuditEvent] = []
        self.answers: list[bytes] = []

    def call(self, client, method: str, path: str, body=None, *, expect: int, event: str,
             actor: str | None, tenant=None, object_id=None, before=None, after=None,
             web: bool = False, also: tuple[str, ...] = ()):
        request_id = unique("req-")
        send = getattr(client, method)
        if web:
            response = send(path, body or {}, HTTP_X_REQUEST_ID=request_id)
        elif body is None:
            response = send(path, HTTP_X_REQUEST_ID=request_id)
        else:
            response = send(path, body, format="json", HTTP_X_REQUEST_ID=request_id)
        assert response.status_code == expect, (path, response.content)
        assert response["X-Request-ID"] == request_id
        self.answers.append(getattr(response, "content", b""))
        rows = list(AuditEvent.objects.filter(request_id=request_id).select_related("actor"))
        # ``also``: what the job's own hooks record when the action ends it at once (a
        # cancelled commission fails its subscription), apart from the action's one row.
        assert sorted(r.event for r in rows) == sorted([event, *also]), (
            path, [r.event for r in rows])
        row = next(r for r in rows if r.event == event)
        assert (row.actor.email if row.actor else None) == actor, (path, row.actor)
        if tenant is not None:
            assert str(row.tenant_id) == str(tenant), (path, row.tenant_id)
        if object_id is not None:
            assert row.object_id == str(object_id), (path, row.object_id)
        for field, value in (before or {}).items():
            assert row.before.get(field) == value, (path, row.before)
        for field, value in (after or {}).items():
            assert row.after.get(field) == value, (path, row.after)
        self.rows.append(row)
        return response.json() if response.get("Content-Type", "").endswith("json") and \
            response.content else response


def run_job(job_id) -> None:
    """Run a job here, as a worker would, on the memory driver."""
    engine.run(job_id)
    job = Job.objects.get(pk=job_id)
    assert job.state == "succeeded", job.error


def run_queued() -> None:
    """Run every queued job (and those they lead to), as workers would."""
    for _ in range(50):
        queued = list(Job.objects.filter(state="queued").order_by("created_at")
                      .values_list("pk", flat=True))
        if not queued:
            return
        for job_id in queued:
            engine.run(job_id)
    raise AssertionError("jobs keep coming")


@pytest.fixture
def audit():
    return Audit()


def _sign_up(audit, name: str):
    client = APIClient()
    email = f"{unique('owner')}@example.com"
    body = audit.call(client, "post", "/api/v1/auth/signup/",
                      {"email": email, "password": PASSWORD, "tenant_name": name},
                      expect=201, event="tenant.created", actor=email,
                      after={"name": name})
    token = audit.call(client, "post", "/api/v1/auth/token/",
                       {"email": email, "password": PASSWORD}, expect=200,
                       event="token.created", actor=email, tenant=body["tenant"]["id"])
    client.credentials(HTTP_AUTHORIZATION=f"Token {token['token']}")
    client.email, client.tenant, client.key = email, body["tenant"], token["token"]
    return client


def test_every_tenant_and_provider_action_is_audited_once_and_without_secrets(
        staff, catalog, audit, caplog, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    caplog.set_level(logging.DEBUG)
    a = audit
    admin = staff.email
    secrets = {PASSWORD, STAFF_PASSWORD, STAMP_TOKEN, NEW_STAMP_TOKEN, INVITEE_PASSWORD,
               NEW_PASSWORD}

    # --- the provider's catalog ---------------------------------------------------
    stamp = a.call(staff, "post", "/api/v1/admin/stamps/", {
        "name": unique("audit-"), "region": "west", "driver": "memory",
        "endpoint": f"mem://{unique('audit')}", "credentials": {"token": STAMP_TOKEN}},
        expect=201, event="stamp.registered", actor=admin, after={"region": "west"})
    assert "credentials" not in a.rows[-1].after
    a.call(staff, "patch", f"/api/v1/admin/stamps/{stamp['id']}/",
           {"region": "east", "credentials": {"token": NEW_STAMP_TOKEN}}, expect=200,
           event="stamp.changed", actor=admin, object_id=stamp["id"],
           before={"region": "west"}, after={"region": "east"})
    assert a.rows[-1].detail == {"rotated": "credentials"}
    a.call(staff, "post", f"/api/v1/admin/stamps/{stamp['id']}/check/", {}, expect=200,
           event="stamp.checked", actor=admin, object_id=stamp["id"])
    cloud = a.call(staff, "post", "/api/v1/admin/clouds/", {
        "name": unique("cloud-"), "stamp": stamp["id"],
        "capacity": {"vcpus": 8, "memory_mb": 8192, "storage_gb": 100, "vms": 4}},
        expect=201, event="cloud.created", actor=admin)
    a.call(staff, "patch", f"/api/v1/admin/clouds/{cloud['id']}/",
           {"capacity": {"vcpus": 16, "memory_mb": 8192, "storage_gb": 100, "vms": 4}},
           expect=200, event="cloud.changed", actor=admin, object_id=cloud["id"],
           before={"vcpus": 8}, after={"vcpus": 16})
    template = a.call(staff, "post", "/api/v1/admin/templates/", {
        "name": "alpine", "os": "Alpine", "cloud": cloud["id"], "image": "img-alpine",
        "min_memory_mb": 256, "min_disk_gb": 2}, expect=201, event="template.created",
        actor=admin)
    a.call(staff, "patch", f"/api/v1/admin/templates/{template['id']}/", {"min_disk_gb": 4},
           expect=200, event="template.changed", actor=admin, before={"min_disk_gb": 2},
           after={"min_disk_gb": 4})
    addon = a.call(staff, "post", "/api/v1/admin/addons/", {
        "name": unique("More "), "kind": "quota", "quotas": {"vcpus": 2},
        "price_monthly": "3.00"}, expect=201, event="addon.created", actor=admin)
    a.call(staff, "patch", f"/api/v1/admin/addons/{addon['id']}/", {"price_monthly": "4.00"},
           expect=200, event="addon.changed", actor=admin, before={"price_monthly": "3.00"},
           after={"price_monthly": "4.00"})
    plan = a.call(staff, "post", "/api/v1/admin/plans/", {
        "name": unique("Tiny "), "state": "private", "cloud": cloud["id"],
        "quotas": catalog["quotas"], "templates": [template["id"]], "addons": [addon["id"]],
        "price_monthly": "1.00"}, expect=201, event="plan.created", actor=admin)
    a.call(staff, "patch", f"/api/v1/admin/plans/{plan['id']}/", {"state": "public"},
           expect=200, event="plan.changed", actor=admin, before={"state": "private"},
           after={"state": "public"})
    mapping = a.call(staff, "post", "/api/v1/admin/network-mappings/", {
        "addon": catalog["dr"]["id"], "primary_network": "internal",
        "recovery_network": "external"}, expect=201, event="network_mapping.created",
        actor=admin)
    a.call(staff, "patch", f"/api/v1/admin/network-mappings/{mapping['id']}/",
           {"primary_network": "backup"}, expect=200, event="network_mapping.changed",
           actor=admin, before={"primary_network": "internal"},
           after={"primary_network": "backup"})
    a.call(staff, "delete", f"/api/v1/admin/network-mappings/{mapping['id']}/", expect=204,
           event="network_mapping.deleted", actor=admin, before={"primary_network": "backup"})
    spare = staff.post("/api/v1/admin/stamps/", {
        "name": unique("spare-"), "region": "x", "driver": "memory",
        "endpoint": f"mem://{unique('spare')}"}, format="json").json()
    a.call(staff, "delete", f"/api/v1/admin/stamps/{spare['id']}/", expect=204,
           event="stamp.deleted", actor=admin, object_id=spare["id"])

    # --- a tenant: sign-up, subscription, add-ons -----------------------------------
    owner = _sign_up(a, unique("Acme "))
    tid = owner.tenant["id"]
    sub = a.call(owner, "post", "/api/v1/subscriptions/",
                 {"plan": catalog["plan"]["id"], "name": "prod"}, expect=201,
                 event="subscription.created", actor=owner.email, tenant=tid,
                 after={"name": "prod", "state": "provisioning"})
    sid = sub["id"]
    run_job(sub["job"])
    link = a.call(owner, "post", f"/api/v1/subscriptions/{sid}/addons/",
                  {"addon": catalog["extra"]["id"]}, expect=201, event="addon.attached",
                  actor=owner.email, tenant=tid)
    a.call(owner, "delete", f"/api/v1/subscriptions/{sid}/addons/{catalog['extra']['id']}/",
           expect=204, event="addon.detached", actor=owner.email, tenant=tid)
    assert link
    dr = a.call(owner, "post", f"/api/v1/subscriptions/{sid}/addons/",
                {"addon": catalog["dr"]["id"]}, expect=201, event="addon.attached",
                actor=owner.email, tenant=tid)
    run_job(dr["job"])
    run_queued()

    # --- networks, VMs, checkpoints --------------------------------------------------
    network = a.call(owner, "post", "/api/v1/networks/",
                     {"subscription": sid, "name": "app", "cidr": "10.9.0.0/24"},
                     expect=202, event="network.requested", actor=owner.email, tenant=tid,
                     after={"cidr": "10.9.0.0/24"})
    run_job(network["job"])
    vm = a.call(owner, "post", "/api/v1/vms/", {
        "subscription": sid, "name": "web-1", "template": catalog["template"]["id"],
        "vcpus": 1, "memory_mb": 1024, "disk_gb": 20}, expect=202, event="vm.requested",
        actor=owner.email, tenant=tid, after={"vcpus": 1, "name": "web-1"})
    run_job(vm["job"])
    url = f"/api/v1/vms/{vm['id']}/"
    for verb, event, before, after in (("stop", "vm.stopping", "running", "stopping"),
                                       ("start", "vm.starting", "stopped", "starting"),
                                       ("restart", "vm.restarting", "running", "starting")):
        job = a.call(owner, "post", f"{url}{verb}/", {}, expect=202, event=event,
                     actor=owner.email, tenant=tid, object_id=vm["id"],
                     before={"state": before}, after={"state": after})
        run_job(job["job"])
    job = a.call(owner, "post", f"{url}resize/", {"vcpus": 2, "memory_mb": 2048},
                 expect=202, event="vm.resizing", actor=owner.email, tenant=tid,
                 before={"vcpus": 1, "memory_mb": 1024}, after={"vcpus": 2, "memory_mb": 2048})
    run_job(job["job"])
    snap = a.call(owner, "post", f"{url}snapshots/", {"name": "before-upgrade"}, expect=202,
                  event="snapshot.requested", actor=owner.email, tenant=tid,
                  after={"name": "before-upgrade"})
    run_job(snap["job"])
    job = a.call(owner, "post", f"{url}snapshots/{snap['id']}/restore/", {}, expect=202,
                 event="snapshot.restoring", actor=owner.email, tenant=tid,
                 object_id=snap["id"])
    run_job(job["job"])
    job = a.call(owner, "delete", f"{url}snapshots/{snap['id']}/", expect=202,
                 event="snapshot.deleting", actor=owner.email, tenant=tid,
                 before={"state": "ready"}, after={"state": "deleting"})
    run_job(job["job"])

    # --- DR ----------------------------------------------------------------------------
    run_queued()
    from dr_addon.models import Protection
    assert Protection.objects.get(subscription_id=sid).state == "protected", list(
        Job.objects.filter(subscription_id=sid).values_list("runbook", "state", "error"))
    drill = a.call(owner, "post", f"/api/v1/subscriptions/{sid}/dr/test-failover/", {},
                   expect=202, event="dr.test_failover", actor=owner.email, tenant=tid)
    run_job(drill["job"])
    job = a.call(staff, "post", f"/api/v1/admin/subscriptions/{sid}/dr/failover/",
                 {"mode": "planned"}, expect=202, event="dr.planned", actor=admin,
                 tenant=tid, after={"state": "failing_over"})
    run_job(job["job"])
    job = a.call(staff, "post", f"/api/v1/admin/subscriptions/{sid}/dr/failback/", {},
                 expect=202, event="dr.failback", actor=admin, tenant=tid)
    run_job(job["job"])
    a.call(owner, "delete", f"/api/v1/subscriptions/{sid}/addons/{catalog['dr']['id']}/",
           expect=204, event="addon.detached", actor=owner.email, tenant=tid)
    run_queued()

    job = a.call(owner, "delete", url, expect=202, event="vm.deleting", actor=owner.email,
                 tenant=tid, before={"state": "running"}, after={"state": "deleting"})
    run_job(job["job"])
    job = a.call(owner, "delete", f"/api/v1/networks/{network['id']}/", expect=202,
                 event="network.deleting", actor=owner.email, tenant=tid)
    run_job(job["job"])

    # --- members, invitations, tokens ---------------------------------------------------
    colleague = _sign_up(a, unique("Solo "))
    invite = a.call(owner, "post", "/api/v1/tenant/members/",
                    {"email": f"{unique('new')}@example.com", "role": "operator"},
                    expect=201, event="invitation.created", actor=owner.email, tenant=tid,
                    after={"role": "operator"})
    invitation_token = invite["invitation"]["token"]
    secrets.add(invitation_token)
    a.call(owner, "patch", f"/api/v1/tenant/members/{invite['id']}/", {"role": "reader"},
           expect=200, event="member.role_changed", actor=owner.email, tenant=tid,
           before={"role": "operator"}, after={"role": "reader"})
    a.call(APIClient(), "post", "/api/v1/auth/invitations/accept/",
           {"token": invitation_token, "password": INVITEE_PASSWORD}, expect=200,
           event="invitation.accepted", actor=invite["email"], tenant=tid)
    a.call(owner, "delete", f"/api/v1/tenant/members/{invite['id']}/", expect=204,
           event="member.removed", actor=owner.email, tenant=tid,
           before={"role": "reader", "email": invite["email"]})
    own = owner.get("/api/v1/auth/tokens/").json()["results"][0]
    second = APIClient()
    second.credentials(HTTP_AUTHORIZATION=f"Token {owner.key}")
    key = second.post("/api/v1/auth/token/", {"email": owner.email, "password": PASSWORD},
                      format="json").json()["token"]
    secrets.update({owner.key, key, colleague.key})
    a.call(owner, "delete", f"/api/v1/auth/tokens/{own['id']}/", expect=204,
           event="token.revoked", actor=owner.email, tenant=tid, object_id=own["id"],
           before={"revoked_at": None})

    # --- the provider acts on the tenant ------------------------------------------------
    second.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    other = a.call(second, "post", "/api/v1/subscriptions/",
                   {"plan": plan["id"], "name": "spare"}, expect=201,
                   event="subscription.created", actor=owner.email, tenant=tid)
    run_job(other["job"])
    a.call(staff, "post", f"/api/v1/admin/subscriptions/{other['id']}/suspend/", {},
           expect=200, event="subscription.suspended", actor=admin, tenant=tid,
           before={"state": "active"}, after={"state": "suspended"})
    a.call(staff, "post", f"/api/v1/admin/subscriptions/{other['id']}/resume/", {},
           expect=200, event="subscription.resumed", actor=admin, tenant=tid,
           before={"state": "suspended"}, after={"state": "active"})
    # a commission that failed, retried by the tenant; then a job the provider retries
    # and cancels
    failed = second.post("/api/v1/subscriptions/", {"plan": plan["id"], "name": "retry"},
                         format="json").json()
    Job.objects.filter(pk=failed["job"]).update(state="failed", error="boom")
    Subscription.objects.filter(pk=failed["id"]).update(state="failed")
    a.call(second, "post", f"/api/v1/subscriptions/{failed['id']}/retry/", {}, expect=202,
           event="job.retried", actor=owner.email, tenant=tid, object_id=failed["job"],
           before={"state": "failed"}, after={"state": "queued"})
    a.call(staff, "post", f"/api/v1/admin/jobs/{failed['job']}/cancel/", {}, expect=202,
           event="job.cancelled", actor=admin, tenant=tid, before={"state": "queued"},
           also=("subscription.failed",))
    Job.objects.filter(pk=failed["job"]).update(state="failed")
    a.call(staff, "post", f"/api/v1/admin/jobs/{failed['job']}/retry/", {}, expect=202,
           event="job.retried", actor=admin, tenant=tid)
    run_job(failed["job"])
    a.call(staff, "delete", f"/api/v1/admin/subscriptions/{other['id']}/", expect=202,
           event="subscription.deleting", actor=admin, tenant=tid,
           after={"state": "deleting"})

    # --- logins, lockouts, two-factor, sessions: the web pages ---------------------------
    browser = web_login_as(a, owner.email, tid)
    a.call(APIClient(), "post", "/api/v1/auth/token/",
           {"email": owner.email, "password": "wrong " + PASSWORD}, expect=401,
           event="login.failed", actor=None, tenant=tid)
    session = owner_session_id(owner.email)
    a.call(browser, "post", f"/account/sessions/{session}/end/", expect=302, web=True,
           event="session.ended", actor=owner.email, tenant=tid)
    browser = web_login_as(a, owner.email, tid)
    a.call(browser, "post", "/account/sessions/end-all/", expect=302, web=True,
           event="sessions.ended", actor=owner.email, tenant=tid)
    user = User.objects.get(email=owner.email)
    browser = web_login_as(a, owner.email, tid)
    browser.get("/account/two-factor/")
    from tenants import services
    device = services.pending_device(user)
    a.call(browser, "post", "/account/two-factor/", {"code": totp_code_of(device)},
           expect=302, web=True, event="two_factor.added", actor=owner.email, tenant=tid)
    a.call(browser, "post", "/account/two-factor/remove/", expect=302, web=True,
           event="two_factor.removed", actor=owner.email, tenant=tid)
    a.call(browser, "post", "/password/", {
        "old_password": PASSWORD, "new_password1": NEW_PASSWORD,
        "new_password2": NEW_PASSWORD}, expect=302, web=True, event="password.changed",
        actor=owner.email, tenant=tid)
    locked = f"{unique('victim')}@example.com"
    for _ in range(settings.BUFFET_LOGIN_FAILURE_LIMIT - 1):
        APIClient().post("/api/v1/auth/token/", {"email": locked, "password": "nope"},
                         format="json")
    request_id = unique("req-")
    APIClient().post("/api/v1/auth/token/", {"email": locked, "password": "nope"},
                     format="json", HTTP_X_REQUEST_ID=request_id)
    assert sorted(AuditEvent.objects.filter(request_id=request_id)
                  .values_list("event", flat=True)) == ["login.failed", "login.locked_out"]
    provider_web = web_login(staff.user)
    a.call(provider_web, "post", "/admin/lockouts/unlock/", {"account": locked},
           expect=302, web=True, event="login.unlocked", actor=admin)

    # then: no secret in any audit row, log line, answer or (but the invitation) email
    rows = json.dumps(list(AuditEvent.objects.values()), default=str)
    logs = caplog.text
    answers = b"".join(a.answers).decode(errors="replace")
    for secret in secrets - {owner.key, key, colleague.key, invitation_token}:
        assert secret not in rows and secret not in logs and secret not in answers, secret
    for secret in (owner.key, key, colleague.key, invitation_token):
        assert secret not in rows and secret not in logs, secret
    assert all(STAMP_TOKEN not in m.body for m in mail.outbox)


def totp_code_of(device) -> str:
    from django_otp.oath import totp

    return f"{totp(device.bin_key):06d}"


def owner_session_id(email: str) -> str:
    from tenants.models import UserSession

    return str(UserSession.objects.filter(user__email=email, ended_at__isnull=True)
               .latest("created_at").pk)


def web_login_as(audit, email: str, tenant_id):
    from django.test import Client

    browser = Client()
    audit.call(browser, "post", "/login/", {"username": email, "password": PASSWORD},
               expect=302, web=True, event="login.succeeded", actor=email, tenant=tenant_id)
    return browser



# --- Activity: each tenant sees its own ------------------------------------------------

def test_a_tenant_sees_only_its_own_activity_and_404_for_another_ones(signup, staff, catalog):
    # given two tenants that each subscribed, and the provider suspending one of them
    alice, bob = signup(), signup()
    for tenant in (alice, bob):
        response = tenant.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"],
                                                         "name": "prod"}, format="json")
        assert response.status_code == 201
        run_job(response.json()["job"])
    bobs = bob.get("/api/v1/subscriptions/").json()["results"][0]["id"]
    assert staff.post(f"/api/v1/admin/subscriptions/{bobs}/suspend/").status_code == 200
    # when each lists its activity
    mine = alice.get("/api/v1/activity/", {"page_size": 500}).json()["results"]
    theirs = bob.get("/api/v1/activity/", {"page_size": 500}).json()["results"]
    # then each sees only its own rows
    alice_rows = set(AuditEvent.objects.filter(tenant_id=alice.tenant["id"])
                     .values_list("uid", flat=True))
    assert {row["id"] for row in mine} == {str(u) for u in alice_rows}
    assert {"tenant.created", "subscription.created"} <= {row["event"] for row in mine}
    assert not {row["id"] for row in mine} & {row["id"] for row in theirs}
    # and the provider's action shows as the provider's, not as one of its staff
    suspended = next(row for row in theirs if row["event"] == "subscription.suspended")
    assert suspended["actor"] == "provider" and staff.email not in json.dumps(theirs)
    assert (suspended["before"], suspended["after"]) == ({"state": "active"},
                                                         {"state": "suspended"})
    # and another tenant's row is not found, as if it did not exist
    assert alice.get(f"/api/v1/activity/{suspended['id']}/").status_code == 404
    assert bob.get(f"/api/v1/activity/{suspended['id']}/").json()["event"] == (
        "subscription.suspended")
    # and the web page too shows only the tenant's own rows, with what changed
    page = web_login(User.objects.get(email=bob.email)).get("/activity/").content.decode()
    assert "Subscription suspended" in page and "suspended" in page
    page = web_login(User.objects.get(email=alice.email)).get("/activity/").content.decode()
    assert "Subscription suspended" not in page


def test_the_provider_filters_the_trail_and_exports_it_as_csv(signup, staff, catalog):
    # given a tenant's rows and the provider's own
    owner = signup()
    response = owner.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"],
                                                     "name": "prod"}, format="json")
    sid = response.json()["id"]
    tid = owner.tenant["id"]
    # when the provider filters by tenant, by a kind of event, by actor and by object
    def listed(**filters):
        response = staff.get("/api/v1/admin/audit/", filters)
        assert response.status_code == 200, response.content
        return response.json()["results"]

    rows = listed(tenant=tid)
    assert {r["event"] for r in rows} == {"tenant.created", "token.created",
                                          "subscription.created"}
    assert all(r["tenant"] == tid and r["tenant_name"] for r in rows)
    assert {r["event"] for r in listed(event="stamp.")} == {"stamp.registered"}
    assert [r["event"] for r in listed(actor=owner.email.upper(), event="subscription.created")
            ] == ["subscription.created"]
    assert [r["object_id"] for r in listed(object_type="plans.subscription",
                                           object_id=sid)] == [sid]
    assert listed(**{"from": "2999-01-01T00:00:00Z"}) == []
    assert len(listed(to="2999-01-01T00:00:00Z", tenant=tid)) == 3
    assert staff.get("/api/v1/admin/audit/", {"from": "yesterday"}).status_code == 400
    # and exports the filtered rows as CSV, by Accept or by ?format=
    for response in (staff.get("/api/v1/admin/audit/", {"tenant": tid},
                               HTTP_ACCEPT="text/csv"),
                     staff.get("/api/v1/admin/audit/", {"tenant": tid, "format": "csv"})):
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        assert "attachment" in response["Content-Disposition"]
        body = b"".join(response.streaming_content).decode()
        lines = list(csv.DictReader(io.StringIO(body)))
        assert {line["event"] for line in lines} == {r["event"] for r in rows}
        assert {line["tenant"] for line in lines} == {tid}
        created = next(line for line in lines if line["event"] == "subscription.created")
        assert json.loads(created["after"])["name"] == "prod"
        assert created["actor"] == owner.email
    # and a tenant may neither list nor export it: a problem, in JSON
    for params in ({}, {"format": "csv"}):
        refused = owner.get("/api/v1/admin/audit/", params)
        assert refused.status_code == 403
        assert refused["Content-Type"] == "application/problem+json"
        assert refused.json()["status"] == 403


def test_the_csv_export_is_bounded_and_quotes_formulas(staff, settings):
    from base.events import Event, record

    settings.BUFFET_AUDIT_CSV_MAX_ROWS = 2
    for name in ("=HYPERLINK(1)", "b", "c"):
        record(Event.STAMP_CHECKED, staff.user, acting_user=staff.user, health=name)
    body = b"".join(staff.get("/api/v1/admin/audit/", {"format": "csv",
                                                        "event": "stamp.checked"})
                    .streaming_content).decode()
    lines = list(csv.DictReader(io.StringIO(body)))
    assert len(lines) == 2
    assert all(not line["detail"].startswith("=") for line in lines)


# --- Request ids ---------------------------------------------------------------------

def test_a_request_id_goes_back_into_the_answer_the_logs_and_the_audit_row(
        signup, catalog, caplog):
    caplog.set_level(logging.INFO)
    owner = signup()
    # given a sane request id from a proxy
    response = owner.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"],
                                                     "name": "prod"}, format="json",
                          HTTP_X_REQUEST_ID="edge-42:abc")
    # then the answer, the audit row and the log lines of the request carry it
    assert response["X-Request-ID"] == "edge-42:abc"
    row = AuditEvent.objects.get(request_id="edge-42:abc")
    assert row.event == "subscription.created" and row.address == "127.0.0.1"
    assert row.face == "shared"
    logging.getLogger("buffet.test").info("inside")  # outside the request: no id
    assert caplog.records[-1].request_id == "-"
    # and what the job records carries the job's id
    job = response.json()["job"]
    run_job(job)
    assert AuditEvent.objects.get(event="subscription.active",
                                  object_id=response.json()["id"]).request_id == f"job:{job}"
    # when the id sent is not sane, one is made instead
    for bad in ("x" * 65, "two words", "a\u00e9b", "=cmd()"):
        response = owner.get("/api/v1/tenant/", HTTP_X_REQUEST_ID=bad)
        assert response["X-Request-ID"] != bad
        assert len(response["X-Request-ID"]) == 32
    # and every answer has one, web pages too
    assert len(owner.get("/healthz")["X-Request-ID"]) == 32


def test_request_ids_reach_the_log_lines(client, caplog):
    from django.test import override_settings

    with override_settings(DEBUG=False):
        caplog.set_level(logging.WARNING, logger="django.request")
        response = client.get("/api/v1/no-such-thing/", HTTP_X_REQUEST_ID="trace-7")
    assert response.status_code == 404
    assert [r.request_id for r in caplog.records if r.name == "django.request"] == ["trace-7"]


# --- Redaction -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["password", "console_password", "credentials", "token",
                                  "api_key", "bin_key", "digest", "secret", "otp", "hint",
                                  "privateKey", "Authorization"])
def test_secret_field_names_are_redacted_however_deep(name):
    from base.events import REDACTED, changes, redact

    value = {"name": "ok", "nested": [{name: "s3cr3t", "keep": 1}], name: {"a": "s3cr3t"}}
    assert redact(value) == {"name": "ok", "nested": [{name: REDACTED, "keep": 1}],
                             name: REDACTED}
    before, after = changes({name: "old", "size": 1}, {name: "new", "size": 2})
    assert "s3cr3t" not in json.dumps([before, after])
    assert (before["size"], after["size"]) == (1, 2)


def test_changes_keep_only_what_differs():
    from base.events import changes

    assert changes({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 5, "d": 4}) == (
        {"b": 2, "c": 3}, {"b": 5, "d": 4})
    assert changes(None, {"a": 1}) == ({}, {"a": 1})


# --- The provider's audit page -------------------------------------------------------

def test_the_provider_audit_page_filters_and_exports_what_it_shows(signup, staff, catalog):
    # given two tenants' rows
    alice, bob = signup(), signup()
    for tenant in (alice, bob):
        tenant.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"], "name": "p"},
                    format="json")
    browser = web_login(staff.user)
    alice_tenant = alice.tenant["id"]
    # when the provider filters its page by one tenant and one event
    query = {"tenant": alice_tenant, "event": "subscription.created"}
    page = browser.get("/admin/audit/", query)
    # then it shows that row with its change, and none of the other tenant's
    assert page.status_code == 200
    html = page.content.decode().split('id="results"', 1)[1]
    assert "Subscription created" in html and alice.tenant["name"] in html
    assert bob.tenant["name"] not in html and "provisioning" in html
    # and the export holds the same rows
    export = browser.get("/admin/audit/export.csv", query)
    lines = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert [(line["event"], line["tenant"]) for line in lines] == [
        ("subscription.created", alice_tenant)]
    # and a tenant cannot reach it
    tenant_browser = web_login(User.objects.get(email=alice.email))
    assert tenant_browser.get("/admin/audit/").status_code in (302, 403, 404)
    assert tenant_browser.get("/admin/audit/export.csv").status_code in (302, 403, 404)


@pytest.mark.parametrize("fmt", [None, "csv"])
def test_a_time_with_an_offset_the_database_refuses_is_read_in_utc(staff, fmt):
    # -23:23 is a valid ISO 8601 offset that PostgreSQL refuses in a query: sent as UTC
    query = {"to": "0603-01-01T17:30:59.789126-23:23", **({"format": fmt} if fmt else {})}
    answer = staff.get("/api/v1/admin/audit/", query)
    assert answer.status_code == 200, answer.content
    body = b"".join(answer.streaming_content) if answer.streaming else answer.content
    assert body  # the query ran: a page of nothing, or a CSV of its header


def test_a_time_out_of_range_once_in_utc_is_a_400(staff):
    answer = staff.get("/api/v1/admin/audit/", {"from": "0001-01-01T00:30:00+01:00"})
    assert answer.status_code == 400, answer.content
    assert "from" in json.dumps(answer.json())


def test_a_time_filter_with_an_offset_is_read_in_utc(staff):
    later = staff.get("/api/v1/admin/audit/", {"from": "2999-01-01T00:00:00+05:00"})
    assert later.status_code == 200 and later.json()["count"] == 0
    earlier = staff.get("/api/v1/admin/audit/", {"to": "2999-01-01T00:00:00-05:00"})
    assert earlier.status_code == 200
