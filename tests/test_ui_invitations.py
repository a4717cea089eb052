"""Invitations in the web UI: the members page sends them and shows the link once; the
accept page, open to anyone with the link, sets the password and logs the person in."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from tenants.models import Invitation, InvitationState, Role, User
from tests.test_ui_pages import browser_for, field_error, member_of, text

PASSWORD = "an invited long password"
NINE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LINK = re.compile(r'id="invitation-url" value="(http://testserver/invitations/bfi_[^"/]+/)"')


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


def test_inviting_shows_the_link_once_and_lists_the_invitation(owner, mailoutbox,
                                                               django_capture_on_commit_callbacks):
    # when the owner invites someone without an account
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.post("/members/", {"email": "pat@example.com", "role": "reader"})
    # then the answer shows the link, which was also sent by email
    page = text(response)
    assert "pat@example.com was added as reader and invited by email." in page
    url = LINK.search(page).group(1)
    assert [m.to for m in mailoutbox] == [["pat@example.com"]] and url in mailoutbox[0].body
    # and the members page lists the invitation, without the link
    later = text(owner.get("/members/"))
    assert "Pending invitations" in later and "pat@example.com" in later
    assert "Invited" in later and url not in later


def test_readers_see_no_pending_invitations(owner):
    owner.post("/members/", {"email": "quiet@example.com", "role": "operator"})
    reader = member_of(owner.tenant_id, Role.READER)
    page = text(reader.get("/members/"))
    assert "quiet@example.com" in page and "Pending invitations" not in page


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
