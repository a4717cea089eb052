"""A new tenant in the browser: sign up, log in, subscribe, quota, members, tokens."""

import re

import pytest
from playwright.sync_api import expect

from conftest import unique

pytestmark = pytest.mark.browser

PASSWORD = "a good long password"


def nav(page):
    return page.get_by_role("navigation", name="Tenant portal")


def log_in(page, email: str, password: str) -> None:
    page.goto("/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_a_new_tenant_serves_itself(page, catalog, screenshot):
    plan = catalog["plan"]["name"]
    email, organisation = f"{unique('dana')}@example.com", unique("Contoso ")

    # sign up
    page.goto("/signup/")
    screenshot(page, "signup")
    page.get_by_label("Your name").fill("Dana")
    page.get_by_label("Work email").fill(email)
    page.get_by_label("Organisation").fill(organisation)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(r"/plans/$"))
    expect(page.get_by_role("status")).to_contain_text(f"Welcome to Buffet, {organisation}")

    # log out and in again
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))
    screenshot(page, "login")
    log_in(page, email, PASSWORD)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_text("You have no subscription yet")).to_be_visible()

    # subscribe to a plan from the catalogue
    nav(page).get_by_role("link", name="Plans").click()
    expect(nav(page).get_by_role("link", name="Plans")).to_have_attribute(
        "aria-current", "page")
    screenshot(page, "plans")
    page.get_by_role("link", name=f"Subscribe to {plan}").click()
    page.get_by_label("Name").fill("production")
    page.get_by_role("button", name=re.compile("^Subscribe for")).click()
    expect(page.get_by_role("heading", name=re.compile("production"))).to_be_visible()
    expect(page.get_by_role("progressbar", name="vCPUs")).to_have_attribute(
        "aria-valuetext", "0 of 8")

    # attach an add-on: the quota grows
    page.get_by_role("button", name=f"Attach {catalog['extra']['name']}").click()
    expect(page.get_by_role("progressbar", name="vCPUs")).to_have_attribute(
        "aria-valuetext", "0 of 12")
    screenshot(page, "subscription")

    # the dashboard draws every dimension of the subscription's quota as a bar
    nav(page).get_by_role("link", name="Overview").click()
    quota = page.get_by_role("region", name="Quota by subscription")
    expect(quota.get_by_role("progressbar")).to_have_count(6)
    expect(page.get_by_text("Subscription created")).to_be_visible()
    screenshot(page, "dashboard")

    # add a member
    nav(page).get_by_role("link", name="Members").click()
    page.get_by_label("Email").fill("teammate@example.com")
    page.get_by_role("combobox", name="Role", exact=True).select_option("operator")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("status")).to_contain_text("teammate@example.com was added")
    expect(page.get_by_role("row", name=re.compile("teammate@example.com"))).to_be_visible()
    screenshot(page, "members")

    # create a token: the key is shown once
    nav(page).get_by_role("link", name="API tokens").click()
    page.get_by_label("Name").fill("deploy")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_label("Token key")).to_have_value(re.compile(r"^bft_"))
    screenshot(page, "tokens")

    # revoke it, after confirming in the dialog
    page.get_by_role("link", name="Revoke deploy").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="Are you sure?")).to_be_visible()
    expect(dialog).to_contain_text("Programs that use it stop working at once")
    expect(dialog.get_by_role("navigation")).to_have_count(0)  # the question, not a page
    screenshot(page, "confirm-dialog")
    dialog.get_by_role("button", name="Revoke token").click()
    expect(page.get_by_role("status")).to_contain_text("was revoked")
    expect(page.get_by_role("row", name=re.compile("deploy"))).to_contain_text("Revoked")


def test_cancel_in_the_dialog_keeps_the_member(page, signup, screenshot):
    owner = signup()
    owner.post("/api/v1/tenant/members/", {"email": "keep@example.com", "role": "reader"},
               format="json")
    from tenants.models import User

    user = User.objects.get(email=owner.email)
    user.set_password(PASSWORD)
    user.save()
    log_in(page, owner.email, PASSWORD)
    page.goto("/members/")
    # the keyboard reaches the main content first through the skip link
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    # when the removal is cancelled with Escape
    remove = page.get_by_role("link", name="Remove keep@example.com")
    remove.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("link", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")
    # then nothing changed and the focus is back where it was
    expect(dialog).to_be_hidden()
    expect(remove).to_be_focused()
    expect(page.get_by_role("row", name=re.compile("keep@example.com"))).to_be_visible()
