"""Accounts, tokens, members, roles and invitations, black-box against API.md."""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from base.models import AuditEvent, IdempotencyRecord
from tenants.models import Invitation, InvitationState, Membership, User
from tenants.tests.factories import PASSWORD as FACTORY_PASSWORD
from tenants.tests.factories import UserFactory
from tests.processes import race

PROBLEM = "application/problem+json"
PASSWORD = "a member's long password"
NINE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_signup_creates_an_owner_of_a_new_tenant(anon, db):
    # when
    response = anon.post("/api/v1/auth/signup/", {
        "email": "Ada@Example.com", "password": "correct horse battery",
        "tenant_name": "Analytical Engines"}, format="json")
    # then
    assert response.status_code == 201
    body = response.json()
    assert body["user"]["email"] == "ada@example.com"
    assert body["tenant"]["name"] == "Analytical Engines"
    token = anon.post("/api/v1/auth/token/", {"email": "ada@example.com",
                                              "password": "correct horse battery"}).json()["token"]
    anon.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert anon.get("/api/v1/tenant/").json()["id"] == body["tenant"]["id"]
    members = anon.get("/api/v1/tenant/members/").json()["results"]
    assert [(m["email"], m["role"]) for m in members] == [("ada@example.com", "owner")]


@pytest.mark.parametrize("body, field", [
    ({"email": "not-an-email", "password": "correct horse battery", "tenant_name": "X"},
     "email"),
    ({"email": "a@example.com", "password": "short", "tenant_name": "X"}, "password"),
    ({"email": "a@example.com", "password": "12345678901", "tenant_name": "X"}, "password"),
    ({"email": "a@example.com", "password": "correct horse battery"}, "tenant_name"),
])
def test_signup_rejects_bad_input_with_the_field_named(anon, db, body, field):
    response = anon.post("/api/v1/auth/signup/", body, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == 400 and problem["type"].endswith("/invalid")
    assert field in problem["errors"]


def test_signup_with_a_registered_email_is_refused_naming_only_the_email(anon, signup):
    # given an organisation and its owner
    owner = signup("Umbrella")
    # when someone signs up again with the owner's email and the same organisation name
    response = anon.post("/api/v1/auth/signup/", {
        "email": owner.email.upper(), "password": "correct horse battery",
        "tenant_name": "umbrella"}, format="json")
    # then only the email is refused: the answer says nothing of the name
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"email"}
    assert "tenant" not in response.json()["detail"].lower()


def test_two_organisations_of_the_same_name_sign_up_separate_and_isolated(signup, catalog):
    # given an organisation named Umbrella with a subscription
    first = signup("Umbrella")
    subscription = first.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"],
                                                         "name": "prod"}, format="json").json()
    # when another organisation signs up with the same name (in another case)
    second = signup("UMBRELLA")
    # then it is a tenant of its own, with its own owner
    assert second.tenant["id"] != first.tenant["id"]
    assert second.get("/api/v1/tenant/").json()["name"] == "UMBRELLA"
    members = second.get("/api/v1/tenant/members/").json()["results"]
    assert [m["email"] for m in members] == [second.email]
    # and it sees nothing of the first one's
    assert second.get("/api/v1/subscriptions/").json()["count"] == 0
    assert second.get(f"/api/v1/subscriptions/{subscription['id']}/").status_code == 404
    firsts_owner = first.get("/api/v1/tenant/members/").json()["results"][0]["id"]
    assert second.get(f"/api/v1/tenant/members/{firsts_owner}/").status_code == 404
    assert first.get("/api/v1/subscriptions/").json()["count"] == 1


def test_token_with_a_wrong_password_is_401(anon, signup):
    owner = signup()
    response = anon.post("/api/v1/auth/token/", {"email": owner.email, "password": "wrong one!"})
    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM


def test_requests_without_or_with_a_bad_token_are_401(anon, db):
    assert anon.get("/api/v1/tenant/").status_code == 401
    anon.credentials(HTTP_AUTHORIZATION="Token bft_nonsense")
    response = anon.get("/api/v1/subscriptions/")
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid or revoked token."


def test_tokens_are_stored_hashed(signup):
    from tenants.models import ApiToken

    owner = signup()
    key = owner.client._credentials["HTTP_AUTHORIZATION"].split()[1]
    stored = ApiToken.objects.get(user__email=owner.email)
    assert key not in (stored.digest, stored.hint) and len(stored.digest) == 64


def test_signup_is_throttled(anon, db, settings):
    from rest_framework.settings import api_settings
    from rest_framework.throttling import ScopedRateThrottle

    rates = {**api_settings.DEFAULT_THROTTLE_RATES, "signup": "2/hour"}
    original = ScopedRateThrottle.THROTTLE_RATES
    ScopedRateThrottle.THROTTLE_RATES = rates
    try:
        codes = [anon.post("/api/v1/auth/signup/", {"email": "bad"}, format="json").status_code
                 for _ in range(3)]
    finally:
        ScopedRateThrottle.THROTTLE_RATES = original
    assert codes == [400, 400, 429]


def test_owner_adds_members_with_roles(signup):
    owner = signup()
    response = owner.post("/api/v1/tenant/members/", {"email": "op@example.com",
                                                      "role": "operator"}, format="json")
    assert response.status_code == 201
    assert response.json()["role"] == "operator"
    emails = {m["email"] for m in owner.get("/api/v1/tenant/members/").json()["results"]}
    assert emails == {owner.email, "op@example.com"}


def test_a_person_cannot_join_a_second_tenant(signup):
    first, second = signup(), signup()
    response = second.post("/api/v1/tenant/members/", {"email": first.email, "role": "reader"},
                           format="json")
    assert response.status_code == 409
    assert "another organisation" in response.json()["detail"]


def _member_client(owner, role):
    """A client of a new member with ``role``, who accepted the invitation and got a token."""
    email = f"{role}-{owner.tenant['id'][:8]}@example.com"
    invited = owner.post("/api/v1/tenant/members/", {"email": email, "role": role},
                         format="json").json()
    client = APIClient()
    accepted = client.post("/api/v1/auth/invitations/accept/", {
        "token": invited["invitation"]["token"], "password": PASSWORD}, format="json")
    assert accepted.status_code == 200, accepted.content
    token = client.post("/api/v1/auth/token/", {"email": email, "password": PASSWORD},
                        format="json").json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.mark.parametrize("role, can_manage_members", [
    ("owner", True), ("admin", True), ("operator", False), ("reader", False)])
def test_only_owners_and_admins_manage_members(signup, role, can_manage_members):
    # given
    owner = signup()
    client = owner.client if role == "owner" else _member_client(owner, role)
    # when
    response = client.post("/api/v1/tenant/members/", {"email": f"new-{role}@example.com",
                                                       "role": "reader"}, format="json")
    # then
    assert response.status_code == (201 if can_manage_members else 403)
    assert client.get("/api/v1/tenant/members/").status_code == 200


def test_an_admin_cannot_make_an_owner(signup):
    owner = signup()
    admin = _member_client(owner, "admin")
    response = admin.post("/api/v1/tenant/members/", {"email": "boss@example.com",
                                                      "role": "owner"}, format="json")
    assert response.status_code == 403


def test_the_last_owner_cannot_be_removed(signup):
    owner = signup()
    me = owner.get("/api/v1/tenant/members/").json()["results"][0]
    response = owner.delete(f"/api/v1/tenant/members/{me['id']}/")
    assert response.status_code == 409
    assert owner.get("/api/v1/tenant/members/").json()["count"] == 1


def test_members_of_another_tenant_are_404(signup):
    alice, bob = signup(), signup()
    bobs_member = bob.get("/api/v1/tenant/members/").json()["results"][0]["id"]
    assert alice.get(f"/api/v1/tenant/members/{bobs_member}/").status_code == 404
    assert alice.delete(f"/api/v1/tenant/members/{bobs_member}/").status_code == 404
    assert alice.patch(f"/api/v1/tenant/members/{bobs_member}/", {"role": "reader"},
                       format="json").status_code == 404


# --- invitations ------------------------------------------------------------------------

ACCEPT = "/api/v1/auth/invitations/accept/"


def _invite(owner, email: str, role: str = "operator", **headers):
    response = owner.post("/api/v1/tenant/members/", {"email": email, "role": role},
                          format="json", **headers)
    assert response.status_code == 201, response.content
    return response.json()


def test_a_person_without_an_account_is_invited_with_a_link_sent_by_email(
        signup, mailoutbox, django_capture_on_commit_callbacks, time_machine):
    # given an owner, at nine
    time_machine.move_to(NINE, tick=False)
    owner = signup()
    # when the owner adds someone who has no account
    with django_capture_on_commit_callbacks(execute=True):
        body = _invite(owner, "Op@Example.com")
    # then the answer holds the invitation: a token, its accept page and when it expires
    invitation = body["invitation"]
    assert (body["email"], body["role"]) == ("op@example.com", "operator")
    assert invitation["token"].startswith("bfi_")
    assert invitation["url"] == f"http://testserver/invitations/{invitation['token']}/"
    assert invitation["expires_at"] == "2026-03-09T09:00:00Z"  # seven days
    # and one email went to the person, with the link
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["op@example.com"]
    assert invitation["url"] in mailoutbox[0].body
    # and the list shows the member as invited; the person cannot log in yet
    listed = {m["email"]: m for m in owner.get("/api/v1/tenant/members/").json()["results"]}
    assert listed["op@example.com"]["invitation_expires_at"] == "2026-03-09T09:00:00Z"
    assert listed[owner.email]["invitation_expires_at"] is None
    assert APIClient().post("/api/v1/auth/token/", {"email": "op@example.com",
                                                    "password": "any guess at all"},
                            format="json").status_code == 401


def test_the_expiry_of_an_invitation_is_a_setting(signup, settings, time_machine):
    time_machine.move_to(NINE, tick=False)
    settings.BUFFET_INVITATION_TTL_HOURS = 2
    invitation = _invite(signup(), "later@example.com")["invitation"]
    assert invitation["expires_at"] == "2026-03-02T11:00:00Z"


def test_an_existing_account_is_added_without_an_invitation(signup, mailoutbox,
                                                            django_capture_on_commit_callbacks):
    # given a person with an account and no organisation
    person = UserFactory()
    owner = signup()
    # when the owner adds them
    with django_capture_on_commit_callbacks(execute=True):
        body = _invite(owner, person.email, "reader")
    # then they are a member at once, and no invitation was sent
    assert body["invitation"] is None and body["invitation_expires_at"] is None
    assert mailoutbox == []
    assert not Invitation.objects.filter(membership__user=person).exists()
    token = APIClient().post("/api/v1/auth/token/", {"email": person.email,
                                                     "password": FACTORY_PASSWORD})
    assert token.status_code == 200


def test_accepting_sets_the_password_and_the_person_gets_a_token(signup):
    # given an invitation
    owner = signup()
    token = _invite(owner, "new@example.com", "admin")["invitation"]["token"]
    # when the person accepts it with a password
    anon = APIClient()
    response = anon.post(ACCEPT, {"token": token, "password": PASSWORD, "full_name": "Nia"},
                         format="json")
    # then the account is active, in the inviter's tenant
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["email"] == "new@example.com" and body["user"]["full_name"] == "Nia"
    assert body["tenant"]["id"] == owner.tenant["id"]
    # and the person gets a token with the password and sees the organisation
    key = anon.post("/api/v1/auth/token/", {"email": "new@example.com", "password": PASSWORD},
                    format="json").json()["token"]
    anon.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert anon.get("/api/v1/tenant/").json()["id"] == owner.tenant["id"]
    members = {m["email"]: m for m in anon.get("/api/v1/tenant/members/").json()["results"]}
    assert members["new@example.com"]["role"] == "admin"
    assert members["new@example.com"]["invitation_expires_at"] is None
    # and both steps are in the audit trail of the tenant
    events = AuditEvent.objects.filter(tenant_id=owner.tenant["id"],
                                       event__startswith="invitation.")
    assert sorted((e.event, e.actor.email) for e in events) == [
        ("invitation.accepted", "new@example.com"), ("invitation.created", owner.email)]


def test_an_invited_reader_lists_but_cannot_create_a_vm_or_a_network(signup, catalog):
    # given a tenant with a subscription, and a reader who accepted an invitation
    owner = signup()
    subscription = owner.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"],
                                                         "name": "prod"}, format="json").json()
    reader = _member_client(owner, "reader")
    # then the reader lists what the tenant has
    assert reader.get("/api/v1/subscriptions/").json()["count"] == 1
    assert reader.get("/api/v1/vms/").status_code == 200
    assert reader.get("/api/v1/networks/").status_code == 200
    # but creating a VM or a network is refused, and nothing is created
    vm = reader.post("/api/v1/vms/", {
        "subscription": subscription["id"], "name": "web", "template": catalog["template"]["id"],
        "vcpus": 1, "memory_mb": 1024, "disk_gb": 20}, format="json")
    network = reader.post("/api/v1/networks/", {"subscription": subscription["id"],
                                                "name": "back", "cidr": "10.9.0.0/24"},
                          format="json")
    assert (vm.status_code, network.status_code) == (403, 403)
    assert vm["Content-Type"] == network["Content-Type"] == PROBLEM
    assert owner.get("/api/v1/vms/").json()["count"] == 0
    assert "back" not in [n["name"] for n in owner.get("/api/v1/networks/").json()["results"]]


def test_a_used_invitation_is_400(signup):
    token = _invite(signup(), "once@example.com")["invitation"]["token"]
    assert APIClient().post(ACCEPT, {"token": token, "password": PASSWORD},
                            format="json").status_code == 200
    # when the link is used a second time, even with another password
    response = APIClient().post(ACCEPT, {"token": token, "password": "another long one 2"},
                                format="json")
    # then it is refused, and the first password stays
    assert response.status_code == 400 and response["Content-Type"] == PROBLEM
    problem = response.json()
    assert problem["type"].endswith("/invitation-used")
    assert "already used" in problem["detail"] and "token" in problem["errors"]
    assert User.objects.get(email="once@example.com").check_password(PASSWORD)


def test_an_expired_invitation_is_400_and_leaves_the_account_inactive(signup, time_machine):
    # given an invitation sent at nine
    time_machine.move_to(NINE, tick=False)
    token = _invite(signup(), "late@example.com")["invitation"]["token"]
    # when it is accepted seven days later
    time_machine.move_to(NINE + timedelta(days=7), tick=False)
    response = APIClient().post(ACCEPT, {"token": token, "password": PASSWORD}, format="json")
    # then it is refused as expired, and the account is still inactive
    assert response.status_code == 400
    assert response.json()["type"].endswith("/invitation-expired")
    assert "expired on 09 Mar 2026, 09:00 UTC" in response.json()["detail"]
    person = User.objects.get(email="late@example.com")
    assert not person.is_active and not person.has_usable_password()


def test_an_invitation_accepted_a_minute_before_it_expires_works(signup, time_machine):
    time_machine.move_to(NINE, tick=False)
    token = _invite(signup(), "just@example.com")["invitation"]["token"]
    time_machine.move_to(NINE + timedelta(days=7, minutes=-1), tick=False)
    assert APIClient().post(ACCEPT, {"token": token, "password": PASSWORD},
                            format="json").status_code == 200


def test_an_unknown_token_is_400(anon, db):
    response = anon.post(ACCEPT, {"token": "bfi_made-up", "password": PASSWORD}, format="json")
    assert response.status_code == 400
    assert response.json()["type"].endswith("/invitation-invalid")


def test_a_weak_password_is_refused_and_the_invitation_stays_open(signup):
    token = _invite(signup(), "weak@example.com")["invitation"]["token"]
    # when the password is all digits
    response = APIClient().post(ACCEPT, {"token": token, "password": "12345678901"},
                                format="json")
    # then the password is named, nothing changed, and the link still works
    assert response.status_code == 400
    assert "entirely numeric" in " ".join(response.json()["errors"]["password"])
    assert not User.objects.get(email="weak@example.com").is_active
    assert APIClient().post(ACCEPT, {"token": token, "password": PASSWORD},
                            format="json").status_code == 200


def test_the_token_is_stored_nowhere_in_clear(signup):
    # given an invitation asked for with an Idempotency-Key
    owner = signup()
    first = _invite(owner, "secret@example.com", HTTP_IDEMPOTENCY_KEY="invite-1")
    token = first["invitation"]["token"]
    # then the invitation's row holds the token's SHA-256 only
    row = Invitation.objects.get(membership__user__email="secret@example.com")
    assert row.digest == hashlib.sha256(token.encode()).hexdigest()
    stored = [Invitation.objects.filter(pk=row.pk).values().get(),
              *IdempotencyRecord.objects.values(), *AuditEvent.objects.values()]
    assert token not in json.dumps(stored, default=str)
    assert token.removeprefix("bfi_") not in json.dumps(stored, default=str)
    # and a replay of the request answers the same member, without the token
    replay = owner.post("/api/v1/tenant/members/", {"email": "secret@example.com",
                                                    "role": "operator"},
                        format="json", HTTP_IDEMPOTENCY_KEY="invite-1")
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == first["id"]
    assert replay.json()["invitation"] == {"token": None, "url": None,
                                           "expires_at": first["invitation"]["expires_at"]}
    assert Invitation.objects.filter(membership__user__email="secret@example.com").count() == 1


def test_inviting_again_replaces_the_pending_invitation(signup, mailoutbox,
                                                        django_capture_on_commit_callbacks):
    # given a pending invitation as operator
    owner = signup()
    with django_capture_on_commit_callbacks(execute=True):
        old = _invite(owner, "again@example.com", "operator")
    # when the same address is invited again, as admin
        new = _invite(owner, "again@example.com", "admin")
    # then it is the same member, with the new role, and a second email
    assert new["id"] == old["id"] and new["role"] == "admin"
    assert new["invitation"]["token"] != old["invitation"]["token"]
    assert [m.to for m in mailoutbox] == [["again@example.com"]] * 2
    # and the old link no longer works, while the new one does
    refused = APIClient().post(ACCEPT, {"token": old["invitation"]["token"],
                                        "password": PASSWORD}, format="json")
    assert refused.status_code == 400
    assert refused.json()["type"].endswith("/invitation-replaced")
    assert APIClient().post(ACCEPT, {"token": new["invitation"]["token"],
                                     "password": PASSWORD}, format="json").status_code == 200
    assert owner.get("/api/v1/tenant/members/").json()["count"] == 2


def test_a_member_who_accepted_cannot_be_invited_again(signup):
    owner = signup()
    _member_client(owner, "operator")
    response = owner.post("/api/v1/tenant/members/", {
        "email": f"operator-{owner.tenant['id'][:8]}@example.com", "role": "reader"},
        format="json")
    assert response.status_code == 409
    assert "already a member" in response.json()["detail"]


def test_accepting_is_throttled(anon, db):
    from rest_framework.settings import api_settings
    from rest_framework.throttling import ScopedRateThrottle

    rates = {**api_settings.DEFAULT_THROTTLE_RATES, "invitation": "2/hour"}
    original = ScopedRateThrottle.THROTTLE_RATES
    ScopedRateThrottle.THROTTLE_RATES = rates
    try:
        codes = [anon.post(ACCEPT, {"token": "bfi_x", "password": PASSWORD},
                           format="json").status_code for _ in range(3)]
    finally:
        ScopedRateThrottle.THROTTLE_RATES = original
    assert codes == [400, 400, 429]


@pytest.mark.services
def test_one_invitation_accepted_twice_at_once_activates_once(postgres, transactional_db,
                                                              signup):
    # given an invitation
    token = _invite(signup(), "race@example.com")["invitation"]["token"]
    passwords = [f"racing password {i}" for i in range(4)]

    # when four requests accept it at the same moment, each with its own password
    def accept(i):
        return APIClient().post(ACCEPT, {"token": token, "password": passwords[i]},
                                format="json").status_code

    codes = race(4, accept)
    # then exactly one got in, and its password is the one that works
    assert sorted(codes) == [200, 400, 400, 400]
    person = User.objects.get(email="race@example.com")
    assert person.check_password(passwords[codes.index(200)])


@pytest.mark.services
def test_one_address_invited_twice_at_once_has_one_pending_invitation(postgres,
                                                                      transactional_db, signup):
    owner = signup()
    auth = owner.client._credentials["HTTP_AUTHORIZATION"]

    def invite(_):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=auth)
        return client.post("/api/v1/tenant/members/", {"email": "twice@example.com",
                                                       "role": "reader"}, format="json")

    responses = race(4, invite)
    assert all(r.status_code in {201, 409} for r in responses), [r.content for r in responses]
    assert Membership.objects.filter(user__email="twice@example.com").count() == 1
    assert Invitation.objects.filter(membership__user__email="twice@example.com",
                                     state=InvitationState.PENDING).count() == 1
