"""The provider retires stamps in the browser: a stamp in use is refused with the reason,
an unused one is deleted through the confirmation dialog, and a disabled one is marked."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in_staff

pytestmark = pytest.mark.browser


def test_the_provider_deletes_only_an_unused_stamp(page, staff, catalog, screenshot):
    # given a spare stamp next to the catalog's, and stamp B disabled
    staff.post("/api/v1/admin/stamps/", {"name": "spare", "region": "east",
                                         "driver": "memory", "endpoint": "mem://spare"},
               format="json")
    staff.patch(f"/api/v1/admin/stamps/{catalog['stamp_b']['id']}/", {"enabled": False},
                format="json")
    log_in_staff(page, staff)
    page.get_by_role("navigation", name="Provider admin").get_by_role(
        "link", name="Stamps").click()
    expect(page.get_by_role("row", name=re.compile(catalog["stamp_b"]["name"]))) \
        .to_contain_text("Takes no new work")

    # a stamp that a cloud uses: the dialog asks, the answer says why not
    used = catalog["stamp_a"]["name"]
    page.get_by_role("link", name=f"Delete {used}").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("alert")).to_contain_text(
        f"Stamp '{used}' is in use: cloud {catalog['cloud_a']['name']}.")
    expect(page.get_by_role("row", name=re.compile(used))).to_be_visible()
    screenshot(page, "admin-stamp-in-use")

    # the spare one goes
    page.get_by_role("link", name="Delete spare").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_contain_text("The stamp “spare” was deleted.")
    expect(page.get_by_role("row", name=re.compile("spare"))).to_have_count(0)
