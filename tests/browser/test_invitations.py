"""An invitation in the browser: the owner invites a colleague, who opens the link in a
browser of their own, chooses a password and lands logged in on the organisation's page."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_tenant_portal import log_in, nav

pytestmark = pytest.mark.browser

OWNER_PASSWORD = "the owner's long password"
COLLEAGUE_PASSWORD = "the colleague's long password"


def test_an_invited_colleague_joins_from_the_link(page, browser, live_server, signup,
                                                  mailoutbox, screenshot):
    # given an owner logged in to the tenant portal
    from tenants.models import User

    owner = signup()
    user = User.objects.get(email=owner.email)
    user.set_password(OWNER_PASSWORD)
    user.save()
    log_in(page, owner.email, OWNER_PASSWORD)

    # when the owner invites a colleague from the members page
    nav(page).get_by_role("link", name="Members").click()
    page.get_by_label("Email").fill("colleague@example.com")
    page.get_by_role("combobox", name="Role", exact=True).select_option("operator")
    page.get_by_role("button", name="Add member").click()

    # then the page shows the link to pass on, and lists the invitation
    expect(page.get_by_role("status")).to_contain_text("invited by email")
    link = page.get_by_label("Invitation link")
    expect(link).to_have_value(re.compile(rf"^{re.escape(live_server.url)}/invitations/bfi_"))
    url = link.input_value()
    pending = page.get_by_role("region", name="Pending invitations")
    expect(pending.get_by_role("listitem").filter(has_text="colleague@example.com")
           ).to_contain_text("as operator")
    screenshot(page, "members-invited")
    assert [m.to for m in mailoutbox] == [["colleague@example.com"]]
    assert url in mailoutbox[0].body

    # when the colleague opens the link in a browser of their own and chooses a password
    context = browser.new_context(base_url=live_server.url,
                                  viewport={"width": 1366, "height": 900})
    try:
        colleague = context.new_page()
        colleague.goto(url)
        join = f"Join {owner.tenant['name']}"
        expect(colleague.get_by_role("heading", name=join)).to_be_visible()
        expect(colleague.get_by_label("Email")).to_have_value("colleague@example.com")
        colleague.get_by_label("Your name").fill("Cole")
        colleague.get_by_label("Choose a password").fill(COLLEAGUE_PASSWORD)
        screenshot(colleague, "invitation-accept")
        colleague.get_by_role("button", name=join).click()

        # then they land logged in on the organisation's overview
        expect(colleague).to_have_url(f"{live_server.url}/")
        expect(colleague.get_by_role("status")).to_contain_text(
            f"Welcome to {owner.tenant['name']}. You are its operator.")
        expect(colleague.get_by_title("Logged in as colleague@example.com")).to_be_visible()
        expect(nav(colleague).get_by_role("link", name="Members")).to_be_visible()
        screenshot(colleague, "invitation-accepted")
    finally:
        context.close()

    # and the owner's members page no longer lists a pending invitation
    page.goto("/members/")
    expect(page.get_by_role("region", name="Pending invitations")).to_have_count(0)
    expect(page.get_by_role("row", name=re.compile("Cole"))).to_be_visible()
