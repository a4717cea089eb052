"""An account's safety in the browser: two-factor set up from the QR page's key, the code
step of the login, the sessions page, and the provider's view of lockouts."""

import re
import time
from base64 import b32decode

import pytest
from django_otp.oath import TOTP
from playwright.sync_api import expect
from rest_framework.test import APIClient

from conftest import unique
from tests.browser.conftest import log_in_staff

pytestmark = pytest.mark.browser

PASSWORD = "a good long password"


def code_for(secret: str, *, later: int = 0) -> str:
    """What an authenticator app shows for the key it was given, now or ``later`` steps
    on (a code works once: a person waits for the next one, which is let in early)."""
    generator = TOTP(b32decode(secret))
    generator.time = time.time() + 30 * later
    return f"{generator.token():06d}"


def test_an_owner_turns_on_two_factor_and_logs_in_with_a_code(page, screenshot, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    email = f"{unique('erin')}@example.com"
    page.goto("/signup/")
    page.get_by_label("Work email").fill(email)
    page.get_by_label("Organisation").fill(unique("Initech "))
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()

    # the account page shows a QR code and the key to type by hand
    page.get_by_role("navigation", name="Tenant portal").get_by_role(
        "link", name="Two-factor").click()
    expect(page.get_by_role("heading", name="Set up your authenticator app")).to_be_visible()
    expect(page.locator("[data-totp-qr] svg")).to_be_visible()
    screenshot(page, "two-factor-setup")
    secret = page.locator("[data-totp-secret]").inner_text()
    page.get_by_label("Authentication code").fill(code_for(secret))
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_role("status")).to_contain_text("Two-factor authentication is on")

    # the next login asks for the code after the password
    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Authentication code")).to_be_visible()
    screenshot(page, "login-code")
    page.get_by_label("Authentication code").fill("000000")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_text("That code is not right")).to_be_visible()
    page.get_by_label("Authentication code").fill(code_for(secret, later=1))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()

    # the sessions page lists this browser
    page.goto("/account/sessions/")
    expect(page.get_by_text("this browser")).to_be_visible()
    page.get_by_role("button", name="Log out everywhere").click()
    expect(page).to_have_url(re.compile(r"/login/$"))


def test_the_provider_unlocks_a_locked_account(page, staff, signup, screenshot):
    owner = signup()
    for n in range(10):
        APIClient().post("/api/v1/auth/token/", {"email": owner.email,
                                                 "password": f"guess {n}"}, format="json")
    log_in_staff(page, staff, "/admin/login/")
    page.get_by_role("navigation", name="Provider admin").get_by_role(
        "link", name="Login lockouts").click()
    row = page.get_by_role("row", name=re.compile(re.escape(owner.email)))
    expect(row).to_contain_text("Account")
    screenshot(page, "provider-lockouts")
    row.get_by_role("button", name="Unlock").click()
    expect(page.get_by_role("status")).to_contain_text(f"{owner.email} can log in again")
    expect(page.get_by_text("No account or address is locked.")).to_be_visible()
