"""Accounts, tokens, members and roles, black-box against API.md."""

import pytest
from rest_framework.test import APIClient

PROBLEM = "application/problem+json"


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
    from tenants import services
    from tenants.models import User

    email = f"{role}-{owner.tenant['id'][:8]}@example.com"
    owner.post("/api/v1/tenant/members/", {"email": email, "role": role}, format="json")
    user = User.objects.get(email=email)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {services.issue_token(user).key}")
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
