"""Logins that resist guessing: lockout, the same answer for every wrong guess, two-factor
for staff (and tenants who want it), tokens that expire, sessions that end."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client
from rest_framework.test import APIClient

from conftest import STAFF_PASSWORD, web_login
from tenants.models import ApiToken, User, UserSession
from tenants.tests.factories import PASSWORD, UserFactory, totp_code

NINE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OWNER_PASSWORD = "correct horse battery"
LOCKED = "Too many failed logins: try again in 15 minutes."


def token_request(email: str, password: str, client=None, **more):
    return (client or APIClient()).post("/api/v1/auth/token/", {
        "email": email, "password": password, **more}, format="json")


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


@pytest.fixture(autouse=True)
def _quick_codes(settings):
    # django-otp waits 2^n seconds after n wrong codes; these tests send wrong ones on
    # purpose, then the right one at once.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0


# --- lockout --------------------------------------------------------------------------

def test_ten_wrong_passwords_lock_the_account_even_for_the_right_one(signup):
    owner = signup()
    # when someone tries ten wrong passwords
    answers = [token_request(owner.email, f"guess number {n}") for n in range(10)]
    # then the first nine are wrong passwords and the tenth locks the account
    assert [a.status_code for a in answers] == [401] * 9 + [429]
    # and while it lasts even the right password is refused, saying so and for how long
    response = token_request(owner.email, OWNER_PASSWORD)
    assert response.status_code == 429
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["detail"] == LOCKED
    assert response.json()["type"].endswith("/login-locked")
    assert 14 * 60 < int(response["Retry-After"]) <= 15 * 60


def test_a_lockout_ends_by_itself(signup):
    owner = signup()
    with time_machine.travel(datetime.now(UTC), tick=False) as clock:
        for n in range(10):
            token_request(owner.email, f"guess number {n}")
        clock.shift(timedelta(minutes=14))
        refused = token_request(owner.email, OWNER_PASSWORD)
        assert refused.json()["detail"] == "Too many failed logins: try again in 1 minute."
        clock.shift(timedelta(minutes=1, seconds=1))
        assert token_request(owner.email, OWNER_PASSWORD).status_code == 200


def test_an_unknown_email_gets_the_same_answers(signup):
    owner = signup()
    known = [token_request(owner.email, "wrong password!") for _ in range(10)]
    unknown = [token_request("nobody@example.com", "wrong password!") for _ in range(10)]
    assert [r.status_code for r in known] == [r.status_code for r in unknown]
    assert [r.json() for r in known] == [r.json() for r in unknown]
    assert token_request("nobody@example.com", OWNER_PASSWORD).json()["detail"] == LOCKED


def test_an_address_that_keeps_failing_is_locked_for_every_account(signup, settings):
    settings.BUFFET_LOGIN_ADDRESS_FAILURE_LIMIT = 5
    owner = signup()
    # given one address trying one wrong password on many accounts
    for n in range(5):
        token_request(f"someone{n}@example.com", "a guessed password")
    # then that address is refused even the owner's right password
    refused = token_request(owner.email, OWNER_PASSWORD)
    assert refused.status_code == 429 and refused.json()["detail"] == LOCKED
    # while another address logs in the same account
    elsewhere = APIClient(REMOTE_ADDR="192.0.2.10")
    assert token_request(owner.email, OWNER_PASSWORD, client=elsewhere).status_code == 200


def test_the_web_login_says_an_account_is_locked(db):
    UserFactory(email="someone@example.com")
    client = Client()
    for _ in range(10):
        client.post("/login/", {"username": "someone@example.com", "password": "nope nope"})
    response = client.post("/login/", {"username": "Someone@Example.com",
                                        "password": PASSWORD})
    assert response.status_code == 200
    assert LOCKED in text(response)
    assert "_auth_user_id" not in client.session


def test_the_provider_sees_a_lockout_and_lifts_it(staff, signup):
    owner = signup()
    for n in range(10):
        token_request(owner.email, f"guess number {n}")
    provider = web_login(staff.user)
    # the lockout page lists the account and the address
    page = text(provider.get("/admin/lockouts/"))
    assert f'data-lockout="{owner.email}"' in page
    assert 'data-lockout="127.0.0.1"' not in page  # 10 is below the address's limit
    assert "Unlock" in page
    # when the provider unlocks it
    response = provider.post("/admin/lockouts/unlock/", {"account": owner.email})
    assert response.status_code == 302
    # then the owner logs in again and the page no longer lists it
    assert token_request(owner.email, OWNER_PASSWORD).status_code == 200
    assert f'data-lockout="{owner.email}"' not in text(provider.get("/admin/lockouts/"))


def test_only_staff_see_lockouts(signup):
    owner = signup()
    client = web_login(User.objects.get(email=owner.email))
    assert client.get("/admin/lockouts/").status_code == 403
    assert client.post("/admin/lockouts/unlock/", {"account": owner.email}).status_code == 403


# --- two-factor for staff -------------------------------------------------------------

def test_a_staff_token_needs_the_code(staff):
    missing = token_request(staff.email, STAFF_PASSWORD)
    assert missing.status_code == 401
    assert missing.json()["type"].endswith("/otp-required")
    assert "otp" in missing.json()["errors"]
    wrong = token_request(staff.email, STAFF_PASSWORD, otp="000000")
    assert wrong.status_code == 401 and wrong.json()["type"].endswith("/otp-invalid")
    right = token_request(staff.email, STAFF_PASSWORD, otp=staff.code())
    assert right.status_code == 200
    expires = datetime.fromisoformat(right.json()["expires_at"])
    assert timedelta(hours=11) < expires - datetime.now(UTC) <= timedelta(hours=12)


def test_wrong_codes_count_towards_the_lockout(staff):
    answers = [token_request(staff.email, STAFF_PASSWORD, otp="123456").status_code
               for _ in range(10)]
    assert answers == [401] * 9 + [429]
    locked = token_request(staff.email, STAFF_PASSWORD, otp=staff.code())
    assert locked.status_code == 429 and locked.json()["detail"] == LOCKED


def test_staff_without_an_authenticator_get_no_token(db):
    user = UserFactory(staff=True, two_factor=False)
    response = token_request(user.email, PASSWORD)
    assert response.status_code == 403
    assert response.json()["type"].endswith("/otp-enrolment-required")


def test_staff_log_in_to_the_web_with_the_code(staff):
    client = Client()
    response = client.post("/login/", {"username": staff.email, "password": STAFF_PASSWORD,
                                       "next": "/admin/stamps/"})
    # the password leads to the code, and nobody is logged in yet
    assert response.status_code == 302 and response["Location"] == "/login/code/"
    assert client.get("/admin/").status_code == 302
    wrong = client.post("/login/code/", {"code": "000000"})
    assert wrong.status_code == 200 and "not right" in text(wrong)
    right = client.post("/login/code/", {"code": staff.code()})
    assert right.status_code == 302 and right["Location"] == "/admin/stamps/"
    assert client.get("/admin/").status_code == 200
    assert client.get("/django-admin/").status_code == 200


def test_the_code_step_does_not_wait_forever(staff):
    client = Client()
    with time_machine.travel(datetime.now(UTC), tick=False) as clock:
        client.post("/login/", {"username": staff.email, "password": STAFF_PASSWORD})
        clock.shift(timedelta(minutes=6))
        response = client.post("/login/code/", {"code": staff.code()})
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert "_auth_user_id" not in client.session


def test_new_staff_set_up_an_authenticator_before_the_provider_portal(db):
    # given a staff account made with createsuperuser: no authenticator yet
    user = User.objects.create_superuser("new-admin@provider.example", PASSWORD)
    client = Client()
    response = client.post("/admin/login/", {"username": user.email, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"].startswith("/account/two-factor/")
    # every provider page (and the data admin, and the admin API) sends them there first
    assert client.get("/admin/stamps/")["Location"].startswith("/account/two-factor/?next=")
    assert client.get("/django-admin/").status_code == 302
    assert client.get("/api/v1/admin/stamps/").status_code == 403
    # the set-up page shows a QR code and the otpauth link, drawn here
    page = client.get("/account/two-factor/")
    body = page.content.decode()
    assert "<svg" in body and "otpauth://totp/Buffet%3Anew-admin%40provider.example" in body
    # a wrong code is refused, the app's code turns it on
    wrong = client.post("/account/two-factor/", {"code": "000000"})
    assert "not right" in text(wrong)
    assert client.get("/admin/stamps/").status_code == 302
    client.post("/account/two-factor/", {"code": pending_code(user)})
    assert client.get("/admin/stamps/").status_code == 200
    assert client.get("/api/v1/admin/stamps/").status_code == 200


def pending_code(user) -> str:
    """The code of the authenticator app being set up (not confirmed yet)."""
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.get(user=user, confirmed=False)
    return f"{totp(device.bin_key):06d}"


def test_staff_cannot_turn_two_factor_off(staff):
    client = web_login(staff.user)
    client.post("/account/two-factor/remove/")
    assert User.objects.get(pk=staff.user.pk).totpdevice_set.filter(confirmed=True).exists()


def test_an_unverified_staff_session_must_give_the_code(staff):
    # given staff whose session passed the password but not the code
    client = Client()
    client.force_login(staff.user)
    assert client.get("/admin/")["Location"].startswith("/account/two-factor/")
    assert client.get("/api/v1/admin/stamps/").status_code == 403
    # the page asks for the code (it does not offer a new authenticator)
    page = text(client.get("/account/two-factor/"))
    assert "Verify it is you" in page and "otpauth://" not in page
    client.post("/account/two-factor/?next=/admin/plans/", {"code": staff.code()})
    assert client.get("/admin/").status_code == 200


# --- two-factor for tenants, by choice ------------------------------------------------

def test_an_owner_turns_two_factor_on_and_then_login_asks_for_the_code(signup):
    owner = signup()
    user = User.objects.get(email=owner.email)
    client = web_login(user)
    # when the owner sets up an authenticator on the account page
    assert "<svg" in client.get("/account/two-factor/").content.decode()
    done = client.post("/account/two-factor/", {"code": pending_code(user)})
    assert done.status_code == 302
    assert "is on" in text(client.get("/account/two-factor/"))
    # then a web login asks for the code
    browser = Client()
    response = browser.post("/login/", {"username": owner.email, "password": OWNER_PASSWORD})
    assert response["Location"] == "/login/code/"
    assert browser.post("/login/code/", {"code": totp_code(user)})["Location"] == "/"
    # and a token needs it too
    assert token_request(owner.email, OWNER_PASSWORD).status_code == 401
    assert token_request(owner.email, OWNER_PASSWORD, otp=totp_code(user)).status_code == 200
    # the owner may turn it off again
    client.post("/account/two-factor/remove/")
    assert token_request(owner.email, OWNER_PASSWORD).status_code == 200


def test_tenant_logins_are_unchanged_without_two_factor(signup):
    owner = signup()
    client = Client()
    response = client.post("/login/", {"username": owner.email, "password": OWNER_PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/subscriptions/").status_code == 200
    assert token_request(owner.email, OWNER_PASSWORD).status_code == 200


# --- tokens ---------------------------------------------------------------------------

def test_a_token_expires_and_its_owner_sees_when_and_when_it_was_last_used(signup, settings):
    settings.BUFFET_TOKEN_TTL_DAYS = 30
    owner = signup()
    with time_machine.travel(NINE, tick=False) as clock:
        key = token_request(owner.email, OWNER_PASSWORD).json()["token"]
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        clock.shift(timedelta(days=2))
        mine = client.get("/api/v1/auth/tokens/").json()["results"]
        token = next(t for t in mine if key.startswith(t["hint"]))
        assert token["state"] == "active"
        assert datetime.fromisoformat(token["last_used_at"]) == NINE + timedelta(days=2)
        assert datetime.fromisoformat(token["expires_at"]) == NINE + timedelta(days=30)
        # the tokens page shows the same
        page = text(web_login(User.objects.get(email=owner.email)).get("/tokens/"))
        assert "1 Apr 2026, 09:00" in page and "4 Mar 2026, 09:00" in page
        # after its expiry it is refused, saying why
        clock.shift(timedelta(days=28))
        response = client.get("/api/v1/tenant/")
        assert response.status_code == 401
        assert response.json()["detail"].startswith("This token expired on 01 Apr 2026")
    assert ApiToken.objects.get(hint=key[:10]).state == "expired"


def test_an_owner_revokes_a_token_through_the_api(signup):
    owner = signup()
    other = token_request(owner.email, OWNER_PASSWORD).json()["token"]
    token = next(t for t in owner.get("/api/v1/auth/tokens/").json()["results"]
                 if other.startswith(t["hint"]))
    assert owner.delete(f"/api/v1/auth/tokens/{token['id']}/").status_code == 204
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {other}")
    assert client.get("/api/v1/tenant/").status_code == 401


def test_tokens_of_others_are_not_there(signup):
    first, second = signup(), signup()
    theirs = first.get("/api/v1/auth/tokens/").json()["results"][0]["id"]
    assert second.get(f"/api/v1/auth/tokens/{theirs}/").status_code == 404
    assert second.delete(f"/api/v1/auth/tokens/{theirs}/").status_code == 404


# --- sessions -------------------------------------------------------------------------

def log_in(email: str, password: str = OWNER_PASSWORD, agent: str = "Browser") -> Client:
    client = Client(HTTP_USER_AGENT=agent)
    assert client.post("/login/", {"username": email, "password": password}).status_code == 302
    return client


def test_an_owner_sees_their_sessions_and_ends_one(signup):
    owner = signup()
    laptop, phone = log_in(owner.email, agent="Laptop"), log_in(owner.email, agent="Phone")
    page = text(laptop.get("/account/sessions/"))
    assert re.search(r"Laptop <span[^>]*>this browser", page) and "Phone" in page
    phone_session = UserSession.objects.get(user__email=owner.email, user_agent="Phone")
    laptop.post(f"/account/sessions/{phone_session.pk}/end/")
    assert phone.get("/subscriptions/")["Location"].startswith("/login/")
    assert laptop.get("/subscriptions/").status_code == 200


def test_logging_out_ends_the_session_in_the_list(signup):
    owner = signup()
    laptop, phone = log_in(owner.email, agent="Laptop"), log_in(owner.email, agent="Phone")
    assert phone.post("/logout/").status_code == 302
    assert "Phone" not in text(laptop.get("/account/sessions/"))
    assert UserSession.objects.get(user__email=owner.email, user_agent="Phone").ended_at


def test_log_out_everywhere(signup):
    owner = signup()
    laptop, phone = log_in(owner.email, agent="Laptop"), log_in(owner.email, agent="Phone")
    response = laptop.post("/account/sessions/end-all/")
    assert response.status_code == 302
    for client in (laptop, phone):
        assert client.get("/subscriptions/")["Location"].startswith("/login/")


def test_a_new_password_ends_the_other_sessions(signup):
    owner = signup()
    laptop, phone = log_in(owner.email, agent="Laptop"), log_in(owner.email, agent="Phone")
    response = laptop.post("/password/", {"old_password": OWNER_PASSWORD,
                                          "new_password1": "another good password",
                                          "new_password2": "another good password"})
    assert response.status_code == 302
    assert laptop.get("/subscriptions/").status_code == 200
    assert phone.get("/subscriptions/")["Location"].startswith("/login/")
    assert UserSession.objects.filter(user__email=owner.email, user_agent="Phone",
                                      ended_at__isnull=False).exists()


def test_an_idle_session_ends(signup, settings):
    settings.BUFFET_SESSION_IDLE_MINUTES = 30
    owner = signup()
    with time_machine.travel(datetime.now(UTC), tick=False) as clock:
        client = log_in(owner.email)
        clock.shift(timedelta(minutes=29))
        assert client.get("/subscriptions/").status_code == 200  # activity: still in
        clock.shift(timedelta(minutes=29))
        assert client.get("/subscriptions/").status_code == 200
        clock.shift(timedelta(minutes=31))
        response = client.get("/subscriptions/", follow=True)
    assert "after 30 minutes without activity" in text(response)
    assert response.redirect_chain[-1][0].startswith("/login/")


def test_a_session_ends_at_its_age_however_busy(signup, settings):
    settings.SESSION_COOKIE_AGE = 3600
    owner = signup()
    with time_machine.travel(datetime.now(UTC), tick=False) as clock:
        client = log_in(owner.email)
        for _ in range(3):
            clock.shift(timedelta(minutes=20))
            client.get("/subscriptions/")
        assert client.get("/subscriptions/")["Location"].startswith("/login/")


def test_staff_sessions_are_listed_too(staff):
    client = web_login(staff.user)
    page = client.get("/account/sessions/")
    assert page.status_code == 200 and 'aria-label="Provider admin"' in text(page)


# --- the demo -------------------------------------------------------------------------

def test_the_demo_admin_logs_in_with_the_key_printed_at_start_up(db, monkeypatch, tmp_path):
    from base64 import b32decode

    from django_otp.oath import totp

    from portal import cli
    from portal.management.commands import demo

    monkeypatch.delenv("BUFFET_ADMIN_EMAIL", raising=False)
    monkeypatch.delenv("BUFFET_ADMIN_PASSWORD", raising=False)
    # given the demo's provider admin (loading the demo twice keeps its key)
    admin = demo.Command()._admin()
    assert demo.Command()._admin() == admin
    # when the runner prints the logins
    welcome = cli._welcome("http://127.0.0.1:8000", [("stamp-a", 8101)], tmp_path)
    key = re.search(r"admin 2FA key\s*: (\S+)", welcome).group(1)
    # then an authenticator app given that key makes codes that log the admin in
    response = token_request(demo.ADMIN_EMAIL, demo.ADMIN_PASSWORD,
                             otp=f"{totp(b32decode(key)):06d}")
    assert response.status_code == 200
