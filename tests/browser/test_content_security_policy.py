"""The Content-Security-Policy holds in a real browser: the tenant pages (htmx, the live
search, dialogs) and the API docs work with no inline script, and nothing is refused."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_pages_work_under_the_policy_with_nothing_refused(page, signup, catalog, commission):
    owner = signup()
    subscription = owner.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"],
                                                         "name": "prod"}, format="json").json()
    commission(subscription["id"])
    refused = []
    page.on("console", lambda message: refused.append((page.url, message.text))
            if "Content Security Policy" in message.text or "Refused to" in message.text
            else None)
    page.goto("/login/")
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    # the subscription page polls and draws its quota bars with htmx and inline widths
    page.goto(f"/subscriptions/{subscription['id']}/")
    expect(page.get_by_role("progressbar", name="vCPUs")).to_be_visible()
    # a confirmation dialog opened by the page's own script
    page.goto("/vms/")
    expect(page).to_have_url(re.compile("/vms/"))
    # the API docs start Swagger UI from a script file
    page.goto("/api/docs/")
    expect(page.locator(".swagger-ui .info")).to_be_visible(timeout=15000)
    assert refused == []
