"""Invitations in the web UI: the accept page, open to anyone with the link, sets the
password and logs the person in."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from tenants.models import Invitation, InvitationState, User
from tests.test_ui_pages import browser_for, field_error, text

PASSWORD = "an invited long password"
NINE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def owner(signup):
    api = signup()
    client = browser_for(api.email)
    client.api, client.tenant_id = api, api.tenant["id"]
    return client


def invite(owner, email: str, role: str = "operator") -> tuple[str, str]:
    """Invite ``email``; the invitation's link and token."""
    response = owner.api.post("/api/v1/tenant/members/", {"email": email, "role": role},
                              format="json")
    assert response.status_code == 201
    invitation = response.json()["invitation"]
    return invitation["url"], invitation["token"]


def test_the_accept_page_sets_the_password_and_logs_the_person_in(owner):
    # given an invitation, opened by someone who is not logged in
    url, token = invite(owner, "lee@example.com", "operator")
    visitor = Client()
    page = visitor.get(url)
    assert page.status_code == 200
    assert "Join " in text(page) and "lee@example.com" in text(page)
    # when they choose a password
    response = visitor.post(url, {"full_name": "Lee", "password": PASSWORD}, follow=True)
    # then they are logged in, on their organisation's overview
    assert response.redirect_chain[-1][0] == "/"
    tenant_name = owner.api.tenant["name"]
    assert f"Welcome to {tenant_name}. You are its operator." in text(response)
    assert response.context["user"].email == "lee@example.com"
    person = User.objects.get(email="lee@example.com")
    assert person.is_active and person.full_name == "Lee" and person.check_password(PASSWORD)
    # and the link is spent
    again = Client().get(url)
    assert again.status_code == 400 and "already used" in text(again)
    assert Invitation.objects.get(membership__user=person).state == InvitationState.ACCEPTED


def test_a_weak_password_is_shown_next_to_the_field(owner):
    url, _ = invite(owner, "kim@example.com")
    response = Client().post(url, {"password": "12345678901"})
    assert response.status_code == 200
    assert "entirely numeric" in field_error(response, "password")
    assert not User.objects.get(email="kim@example.com").is_active


@pytest.mark.parametrize("spoil, message", [
    ("expire", "expired on 09 Mar 2026"),
    ("replace", "replaced by a newer one"),
    ("garble", "not valid"),
])
def test_a_link_that_cannot_be_used_says_why(owner, time_machine, spoil, message):
    # given an invitation sent at nine
    time_machine.move_to(NINE, tick=False)
    url, token = invite(owner, "sam@example.com")
    # when it has expired, was replaced, or is not whole
    if spoil == "expire":
        time_machine.move_to(NINE + timedelta(days=8), tick=False)
    elif spoil == "replace":
        invite(owner, "sam@example.com")
    else:
        url = url.replace(token, token[:-4])
    # then the page says why, and offers no form; posting changes nothing
    page = Client().get(url)
    assert page.status_code == 400 and message in text(page)
    assert 'name="password"' not in text(page)
    assert Client().post(url, {"password": PASSWORD}).status_code == 400
    assert not User.objects.get(email="sam@example.com").is_active
